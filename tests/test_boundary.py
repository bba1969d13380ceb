"""What crosses from Telegram into the hotline is fit to store: control characters that
PostgreSQL's text refuses (NUL above all) never roll back a turn, least of all a crisis."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from bot.channels.telegram.inbound import clean_text
from db.models import InboxStatus, InboxUpdate, Person, Ticket, TicketMessage
from local_servers.telegram import LocalBotApi
from tests.conversation import say, texts
from tests.desk import COUNSELLOR_LI, start_desk


def test_control_characters_are_removed_and_lone_surrogates_replaced() -> None:
    assert clean_text("跳\x00楼\x07\x1b[0m\r\n\tok") == "跳楼[0m\n\tok"
    assert clean_text("broken \ud83d half") == "broken \ufffd half"
    assert clean_text("😀 stays") == "😀 stays"
    assert clean_text(None) is None


async def test_a_nul_in_a_crisis_message_still_brings_help(api: LocalBotApi, start_hotline) -> None:
    hotline, forum = await start_desk(api, start_hotline, COUNSELLOR_LI)
    worker = api.user(4101, "Wang\x00 Fang\x1b", username="wang\x00fang", language_code="zh-hans")
    for answer in ("/start", "中文", "和工作人员聊聊", "同意"):
        await say(worker, answer)
    got = texts(await say(worker, "老板不给钱\x00，我真的不想活了\x00"))
    assert "110" in got and "12356" in got
    await asyncio.sleep(0.5)
    thread = next(iter(forum.topics))
    said = [m.plain or "" for m in forum.topic_messages(thread)]
    assert any("🚨" in text and "不想活" in text for text in said)
    assert any(text.startswith("老板不给钱") for text in said[2:])  # Telegram's copy of it
    async with hotline.sessions() as session:
        ticket = (await session.exec(select(Ticket))).one()
        person = (await session.exec(select(Person))).one()
        kept = (await session.exec(select(TicketMessage.text))).all()
        rows = (await session.exec(select(InboxUpdate))).all()
    assert ticket.urgent is True
    assert "老板不给钱，我真的不想活了" in kept
    assert (person.display_name, person.username) == ("Wang Fang", "wangfang")
    assert rows and all(row.status == InboxStatus.DONE for row in rows)
