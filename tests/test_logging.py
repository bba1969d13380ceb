"""What the logs show: never the bot's token, at any level; nobody's name, phone, employer,
username or Telegram id at INFO and above; no SQL statement's parameters."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from sqlalchemy.exc import IntegrityError

from bot.cli import QUIET_LOGGERS, configure_logging
from bot.log_redaction import MASK
from db.models import Person
from db.session import create_engine, session_factory
from tests.conversation import file_complaint, say
from tests.desk import COUNSELLOR_LI, start_desk

SEPARATOR = "\x1e"  # between records, so that a record's traceback stays with it


@pytest.fixture
def captured(api):
    """The CLI's logging set-up at DEBUG, writing records into a string."""
    root = logging.getLogger()
    level, quiet = root.level, {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    stream = io.StringIO()
    handler = configure_logging("DEBUG", token=api.token, stream=stream)
    handler.setFormatter(logging.Formatter(f"{SEPARATOR}%(levelno)d %(name)s: %(message)s"))
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


def records(stream: io.StringIO, *, at_least: int = logging.DEBUG) -> list[str]:
    found = []
    for record in stream.getvalue().split(SEPARATOR)[1:]:
        number, _, rest = record.partition(" ")
        if int(number) >= at_least:
            found.append(rest)
    return found


async def test_debug_logs_hide_the_token_and_info_logs_hide_people(
    api, start_hotline, captured
) -> None:
    hotline, forum = await start_desk(api, start_hotline, COUNSELLOR_LI)
    worker = api.user(5101, "Meiling", username="meiling_w", language_code="en")
    await file_complaint(
        worker, employer="Golden Harvest Textiles", phone="13812345678", anonymous=False
    )
    await asyncio.sleep(0.4)
    thread = max(forum.topics)
    worker.blocked = True  # a delivery that fails, and an outage: both are logged
    forum.send(api.user(771, "Li"), "Did they pay?", thread_id=thread)
    await asyncio.sleep(0.4)
    worker.blocked = False
    api.fail("sendMessage", status=502, chat_id=worker.id)
    await say(worker, "/menu")

    everything = captured.getvalue()
    secret = api.token.split(":", 1)[1]
    assert api.token not in everything and secret not in everything
    assert MASK in everything  # python-telegram-bot's "Set Bot API URL: …/bot<token>"
    assert "13812345678" in everything, "DEBUG shows what was sent, people included"
    above_debug = "\n".join(records(captured, at_least=logging.INFO))
    assert "blocked the bot" in above_debug and "attempt 1" in above_debug
    for personal in ("13812345678", "Golden Harvest", "Meiling", "meiling_w", "5101"):
        assert personal not in above_debug


async def test_a_failing_sql_statement_does_not_show_its_parameters(database_url, captured) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            session.add(Person(channel="telegram", external_id="5102", display_name="Zhang Wei"))
        with pytest.raises(IntegrityError) as failure:
            async with sessions() as session, session.begin():
                session.add(Person(channel="telegram", external_id="5102", display_name="Zhao Li"))
    finally:
        await engine.dispose()
    assert "parameters hidden" in str(failure.value)
    assert "Zhao Li" not in str(failure.value)
    logging.getLogger("bot.engine").error("turn failed", exc_info=failure.value)
    (logged,) = records(captured, at_least=logging.ERROR)
    assert "INSERT INTO person" in logged and "parameters hidden" in logged
    assert "Zhao Li" not in logged and "5102" not in logged  # PostgreSQL's DETAIL quotes it


def test_a_traceback_carrying_the_token_is_masked(captured) -> None:
    token = "987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # not the bot's: any token's shape
    try:
        raise ConnectionError(f"POST https://api.telegram.org/bot{token}/getMe failed")
    except ConnectionError:
        logging.getLogger("telegram.ext.Application").exception("polling failed")
    (logged,) = records(captured, at_least=logging.ERROR)
    assert "Traceback" in logged and "ConnectionError" in logged
    assert token not in logged and "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in logged
    assert f"https://api.telegram.org/{MASK}/getMe" in logged
