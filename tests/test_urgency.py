"""Time and urgency: office hours, reminders for unclaimed tickets, and crisis words."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from db.models import Ticket
from local_servers.telegram import LocalBotApi
from tests.conftest import OfficeClock
from tests.conversation import say, texts
from tests.desk import COUNSELLOR_LI, start_desk

SATURDAY_EVENING = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai


async def talk(worker, first_message: str) -> str:
    for answer in ("/start", "English", "Talk to a person", "I agree"):
        await say(worker, answer)
    return texts(await say(worker, first_message))


async def test_outside_office_hours_the_worker_is_told_when_to_expect_an_answer(
    api: LocalBotApi, start_hotline
) -> None:
    await start_desk(api, start_hotline, COUNSELLOR_LI, clock=OfficeClock(SATURDAY_EVENING))
    worker = api.user(1201, language_code="en")
    got = await talk(worker, "My boss took my ID card")
    assert "The office is closed now" in got
    assert "Monday 30/11 at 09:00" in got and "110" in got


async def test_in_office_hours_nothing_is_said_about_closing(
    api: LocalBotApi, start_hotline
) -> None:
    await start_desk(api, start_hotline, COUNSELLOR_LI, clock=OfficeClock())
    worker = api.user(1202, language_code="en")
    assert "closed" not in await talk(worker, "My boss took my ID card")


async def test_an_unclaimed_ticket_is_recalled_each_sla_period_until_claimed(
    api: LocalBotApi, start_hotline
) -> None:
    clock = OfficeClock()
    hotline, forum = await start_desk(
        api, start_hotline, COUNSELLOR_LI, clock=clock, sla_minutes=30
    )
    worker = api.user(1203, language_code="en")
    await talk(worker, "Nobody paid us")
    await asyncio.sleep(0.3)
    thread = next(iter(forum.topics))
    assert await hotline.remind_unclaimed() == 0
    clock.advance(timedelta(minutes=31))
    assert await hotline.remind_unclaimed() == 1
    assert await hotline.telegram.sender.idle(), "the reminder goes out through the outbox"
    assert "31 分钟" in forum.topic_messages(thread)[-1].plain
    assert await hotline.remind_unclaimed() == 0, "at most once per SLA period"
    clock.advance(timedelta(minutes=30))
    assert await hotline.remind_unclaimed() == 1
    clock.advance(timedelta(hours=32))  # Tuesday 19:00: the office is closed
    assert await hotline.remind_unclaimed() == 0
    clock.advance(timedelta(hours=14))  # Wednesday 09:00
    forum.press(
        api.user(771, "Li"),
        "认领",
        message=next(m for m in forum.topic_messages(thread) if m.button_texts),
    )
    await asyncio.sleep(0.3)
    assert await hotline.remind_unclaimed() == 0, "claimed tickets are not recalled"
    assert "sla-reminders" in hotline.periodic.names(), "checked every minute"


async def test_crisis_words_bring_emergency_numbers_and_an_urgent_ticket(
    api: LocalBotApi, start_hotline
) -> None:
    hotline, forum = await start_desk(api, start_hotline, COUNSELLOR_LI, clock=OfficeClock())
    worker = api.user(1204, language_code="zh-hans")
    await say(worker, "/start")
    await say(worker, "中文")
    await say(worker, "投诉")
    got = texts(await say(worker, "老板不给钱，我真的不想活了"))
    assert "您不是一个人" in got and "110" in got and "12356" in got
    assert "您同意吗" in got, "the conversation goes on where it was"
    await asyncio.sleep(0.3)
    thread = next(iter(forum.topics))
    said = [m.plain or "" for m in forum.topic_messages(thread)]
    assert "紧急" in said[0] and any("🚨" in text and "不想活" in text for text in said)
    assert "老板不给钱，我真的不想活了" in said
    async with hotline.sessions() as session:
        ticket = (await session.exec(select(Ticket))).one()
    assert ticket.urgent is True and ticket.kind == "talk"


async def test_crisis_words_in_english_flag_the_open_ticket(
    api: LocalBotApi, start_hotline
) -> None:
    hotline, forum = await start_desk(api, start_hotline, COUNSELLOR_LI, clock=OfficeClock())
    worker = api.user(1205, language_code="en")
    await talk(worker, "They beat me at the dormitory")
    await asyncio.sleep(0.3)
    assert len(forum.topics) == 1
    got = texts(await say(worker, "I want to kill myself"))
    assert "110" in got and "12356" in got
    await asyncio.sleep(0.3)
    assert len(forum.topics) == 1, "the open ticket is flagged, no new one"
    thread = next(iter(forum.topics))
    assert sum("🚨" in (m.plain or "") for m in forum.topic_messages(thread)) == 2
    async with hotline.sessions() as session:
        assert (await session.exec(select(Ticket))).one().urgent is True


async def test_a_crisis_reply_is_never_held_back_by_a_flood(
    api: LocalBotApi, start_hotline
) -> None:
    await start_desk(
        api, start_hotline, COUNSELLOR_LI, clock=OfficeClock(), flood_messages=3, flood_seconds=30
    )
    worker = api.user(1206, language_code="en")
    for answer in ("/start", "English", "Talk to a person"):
        await say(worker, answer)
    worker.send("one")  # the fourth message in the window: the flood starts
    assert "sending messages very fast" in texts(await worker.quiet(0.5))
    worker.send("I want to end my life")  # replies are held back now, but not this one
    got = texts(await worker.quiet(0.8))
    assert "12356" in got and "110" in got
    assert "Passed on" not in got, "the ordinary reply is still held back"
