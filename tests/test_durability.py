"""Nothing a worker sent is lost and nothing is applied twice: restarts in the middle of a
conversation, a repeated update_id, updates stored by a run that died, and kill -9."""

from __future__ import annotations

import asyncio
import signal
import time

from sqlmodel import select

from db import inbox
from db.models import Conversation, Person, utcnow
from local_servers.telegram import LocalBotApi
from tests.conversation import replies, say, texts, wage_complaint
from tests.processes import hotline_process, killed_after


async def test_a_restart_mid_conversation_continues_at_the_same_question(
    api: LocalBotApi, start_hotline
) -> None:
    first = await start_hotline()
    worker = api.user(701, language_code="en")
    answers = wage_complaint("Sunrise")
    for answer in answers[:6]:
        await say(worker, answer)
    await first.stop()
    await start_hotline()
    for answer in (*answers[6:], "done", "skip"):
        await say(worker, answer)
    summary = texts(await say(worker, "Stay anonymous"))
    assert "Employer: Sunrise" in summary and "What happened: Not paid since August" in summary


async def test_a_repeated_update_is_applied_once(api: LocalBotApi, hotline) -> None:
    worker = api.user(702, language_code="en")
    for answer in (
        "/start",
        "English",
        "File a complaint",
        "I agree",
        "Unpaid wages",
        "Sunrise",
        "Yushan",
        "88 Road",
    ):
        await say(worker, answer)
    update = {"message": worker.compose(worker.user, {"text": "The boss left."})}
    api.push_update(update)
    assert "Anything to add?" in texts(await replies(worker))
    api.redeliver(update)
    assert await worker.quiet(0.5) == []
    async with hotline.sessions() as session:
        person = (await session.exec(select(Person).where(Person.external_id == "702"))).one()
        state = await session.get(Conversation, person.id)
    assert state.data["answers"]["story"] == ["The boss left."]


async def test_updates_a_dead_run_stored_are_handled_on_start(
    api: LocalBotApi, database_url, start_hotline
) -> None:
    """The inbox already holds an update (stored, confirmed to Telegram, never handled)."""
    from db.session import create_engine, session_factory

    worker = api.user(703, language_code="en")
    message = worker.compose(
        worker.user,
        {"text": "/start", "entities": [{"type": "bot_command", "offset": 0, "length": 6}]},
    )
    engine = create_engine(database_url)
    async with session_factory(engine)() as session, session.begin():
        await inbox.store_updates(
            session,
            channel="telegram",
            now=utcnow(),
            updates=[(9001, "telegram:703", {"update_id": 9001, "message": message})],
        )
    await engine.dispose()
    await start_hotline()
    assert "Choose a language" in texts(await replies(worker))


async def _until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_kill_9_after_telegram_was_told_loses_nothing(api: LocalBotApi, database_url) -> None:
    """The bot is killed after its getUpdates confirmed the worker's answer to Telegram and
    before the reply went out; the restarted bot still answers it, and the answer is kept."""
    worker = api.user(704, language_code="en")
    with killed_after(hotline_process(api, database_url)):
        worker.send("/start")
        assert "Choose a language" in texts(await replies(worker, timeout=30))
        api.hold("sendMessage")
        api.push_update({"message": worker.compose(worker.user, {"text": "English"})})
        # The reply is stalled at the server (so the turn has committed) and the next
        # getUpdates has confirmed the update: the moment the Updater would lose it.
        await _until(
            lambda: (
                api.pending_updates == 0
                and any(call.get("chat_id") == 704 for call in api.held("sendMessage"))
            )
        )
    api.release("sendMessage")
    assert api.pending_updates == 0, "Telegram will not deliver the update again"
    # The stalled reply may or may not reach the worker (the server finishes the dead bot's
    # request); either way the restarted bot sends the turn's replies, which were stored.
    restarted = hotline_process(api, database_url)
    try:
        seen = []
        while not any("How can we help?" in m.plain for m in seen):
            seen.append(await worker.next_message(timeout=30))
        assert not any("Choose a language" in m.plain for m in seen)
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(20) == 0
