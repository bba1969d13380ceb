"""A flood holds replies back, never throws them away: whatever the engine decided during it
reaches the worker when it ends, or after a restart."""

from __future__ import annotations

import asyncio

from local_servers.telegram import LocalBotApi
from tests.conversation import texts, wage_complaint

REST_OF_COMPLAINT = ("done", "skip", "Stay anonymous", "Submit")


async def test_a_ticket_filed_during_a_flood_still_tells_its_reference(
    api: LocalBotApi, start_hotline
) -> None:
    await start_hotline(flood_messages=5, flood_seconds=2)
    worker = api.user(6201, language_code="en")
    for answer in (*wage_complaint(), *REST_OF_COMPLAINT):
        worker.send(answer)  # as fast as a thumb can, without reading the answers
    await asyncio.sleep(0.5)
    during = worker.messages[:]
    assert sum("sending messages very fast" in m.plain for m in during) == 1
    assert "complaint number is" not in texts(during)
    after = await worker.quiet(3.0)  # the flood window passes and the held replies come
    got = texts(after)
    assert "complaint number is HL-" in got
    # Every answer the engine gave, in order: e.g. the questions it asked on the way.
    assert got.index("Anything to add?") < got.index("complaint number is")
    assert after[-1].button_texts, "the last message carries the open question's buttons"


async def test_replies_held_by_a_flood_survive_a_restart(api: LocalBotApi, start_hotline) -> None:
    first = await start_hotline(flood_messages=5, flood_seconds=3)
    worker = api.user(6202, language_code="en")
    for answer in (*wage_complaint(), *REST_OF_COMPLAINT):
        worker.send(answer)
    await asyncio.sleep(1.0)
    assert "complaint number is" not in texts(worker.messages)
    await first.stop()  # before the flood window ends: the held replies are only stored
    await start_hotline(flood_messages=5, flood_seconds=3)
    got = ""
    while "complaint number is HL-" not in got:
        got += (await worker.next_message(timeout=6)).plain
