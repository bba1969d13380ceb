"""/forget forgets everything: no table, no stored update (the worker's own or the staff's that
quote them), no reply kept for sending, no byte of the SQLite file or its log, no log line at
INFO still holds what identifies the person. And the inbox keeps nothing longer than needed."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text, update
from sqlalchemy.engine import make_url

from db import inbox
from db.models import InboxStatus, InboxUpdate, SQLModel, utcnow
from local_servers.telegram import LocalBotApi
from tests.conversation import replies, say, texts
from tests.desk import COUNSELLOR_LI, start_desk
from tests.test_mediation import card_of, settle

WORKER_ID = 7310042
SECRETS = {
    "first name": "Zhaoxuemei",
    "last name": "Quillfeather",
    "username": "zxm_secret88",
    "telegram id": str(WORKER_ID),
    "phone": "13912345678",
    "employer": "Hongxing Plastics Works",
    "address": "Lane 77 Qianjin Road",
    "story": "Foreman Baolin kept my pay",
    "relayed message": "Baolin threatened me yesterday",
}


async def everything_stored(hotline) -> str:
    """Every row of every table, as text."""
    dumped = []
    async with hotline.sessions() as session:
        for table in SQLModel.metadata.sorted_tables:
            rows = (await session.execute(text(f'SELECT * FROM "{table.name}"'))).all()
            dumped.extend(f"{table.name}: {tuple(row)}" for row in rows)
    return "\n".join(dumped)


def found_in(haystack: str) -> list[str]:
    return [what for what, secret in SECRETS.items() if secret in haystack]


async def inbox_rows(hotline) -> list:
    async with hotline.sessions() as session:
        return list((await session.exec(InboxUpdate.__table__.select())).all())


async def rewrite(hotline, row, **values) -> None:
    """Writes over an inbox row, to make it look received long ago."""
    async with hotline.sessions() as session, session.begin():
        await session.exec(update(InboxUpdate).where(InboxUpdate.id == row.id).values(**values))


async def a_case_claimed_and_talked_over(api: LocalBotApi, start_hotline):
    hotline, forum = await start_desk(api, start_hotline, COUNSELLOR_LI)
    li = api.user(771, "Li")
    worker = api.user(
        WORKER_ID,
        SECRETS["first name"],
        last_name=SECRETS["last name"],
        username=SECRETS["username"],
        language_code="en",
    )
    for answer in (
        "/start",
        "English",
        "File a complaint",
        "I agree",
        "Unpaid wages",
        SECRETS["employer"],
        "Yushan",
        SECRETS["address"],
        f"{SECRETS['story']} since March",
        "done",
        "8500",
        "March to May",
        "done",
        SECRETS["phone"],
        "Mediators may see my name",
    ):
        await say(worker, answer)
    assert "complaint number is" in texts(await say(worker, "Submit"))
    await settle()
    thread = max(forum.topics)
    assert SECRETS["first name"] in card_of(forum, thread).plain  # the card named them
    forum.press(li, "认领", message=card_of(forum, thread))
    await worker.next_message()
    forum.send(li, "Did he say anything else?", thread_id=thread)
    signed = await worker.next_message()
    worker.send(SECRETS["relayed message"], reply_to=signed.message_id)
    await replies(worker)
    await settle()
    relayed = next(m for m in forum.topic_messages(thread) if m.plain == SECRETS["relayed message"])
    forum.send(li, "I will call the factory.", thread_id=thread, reply_to=relayed.message_id)
    await worker.next_message()
    await settle()
    return hotline, worker


async def test_after_forget_nothing_stored_names_the_worker(
    api: LocalBotApi, start_hotline, database_url: str, caplog
) -> None:
    caplog.set_level(logging.INFO)
    hotline, worker = await a_case_claimed_and_talked_over(api, start_hotline)
    before = await everything_stored(hotline)
    assert set(found_in(before)) == set(SECRETS), "the test must start with everything stored"

    await say(worker, "/forget")
    assert "Your personal details are deleted." in texts(await say(worker, "Yes, delete"))
    await settle()

    assert found_in(await everything_stored(hotline)) == []
    if database_url.startswith("sqlite"):
        path = Path(make_url(database_url).database)
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                raw = file.read_bytes()
                left = [what for what, secret in SECRETS.items() if secret.encode() in raw]
                assert left == [], f"{file.name} still holds the worker's {left}"
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert found_in(logged) == []


async def test_done_updates_keep_only_what_dedup_needs(api: LocalBotApi, hotline) -> None:
    worker = api.user(7310043, "Meiling", username="meiling_w", language_code="en")
    await say(worker, "/start")
    await say(worker, "English")
    await asyncio.sleep(0.3)  # the done marks are written in batches
    rows = await inbox_rows(hotline)
    assert len(rows) == 2
    assert all(row.status == "done" and row.payload == {} and row.person_key == "" for row in rows)
    assert all(row.replies is None and row.outgoing is None for row in rows)


async def test_old_dedup_keys_are_deleted(api: LocalBotApi, hotline) -> None:
    worker = api.user(7310044, language_code="en")
    await say(worker, "/start")
    await say(worker, "English")
    await asyncio.sleep(0.3)
    oldest = (await inbox_rows(hotline))[0]
    await rewrite(hotline, oldest, received_at=utcnow() - inbox.DEDUP_WINDOW - timedelta(minutes=1))
    assert await hotline.prune_inbox() == 1
    left = await inbox_rows(hotline)
    assert [row.id for row in left] != [oldest.id] and len(left) == 1


async def test_an_update_id_telegram_reuses_after_a_week_is_a_new_update(
    api: LocalBotApi, hotline
) -> None:
    """After a week without updates Telegram numbers the next one at random: an id the inbox
    still holds from long ago must be taken as new, while a repeat within the window is not."""
    worker = api.user(7310045, language_code="en")
    await say(worker, "/start")
    await asyncio.sleep(0.3)
    [old] = await inbox_rows(hotline)
    await rewrite(hotline, old, received_at=utcnow() - timedelta(days=8), status=InboxStatus.DONE)
    message = worker.compose(worker.user, {"text": "English"})
    api.push_update({"update_id": old.update_id, "message": message})
    assert "I will write to you in English" in texts(await replies(worker))
    # The same id again at once is Telegram repeating itself: ignored.
    api.redeliver({"update_id": old.update_id, "message": message})
    assert await worker.quiet(0.5) == []
