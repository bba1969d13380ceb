"""A backlog people can see: `hotline status` (text and --json) and /status in the staff group
report, per destination class, what waits, since when and when it should be out; the ticket
card says when the worker filed it, so a card posted late still tells."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from db import outbox
from db.models import OutboxStatus, Pace, utcnow
from db.outbox import NewItem, chat_lane, group_lane, topic_lane
from db.session import create_engine, session_factory
from local_servers.telegram import LocalBotApi
from tests.conftest import OfficeClock
from tests.conversation import file_complaint
from tests.desk import start_desk
from tests.test_cli import hotline as run_cli


def rows(pace: str, lane: str, count: int = 1) -> list[NewItem]:
    return [NewItem("telegram", pace, lane, {"to": "chat", "reply": {"text": "…"}})] * count


def chat(n: int) -> str:
    return chat_lane("telegram", str(n))


async def fill_outbox(sessions, now: datetime) -> None:
    """Pending rows in every class, written at different times, and some that no longer
    wait: 4 private (3 in one chat, from 10 minutes ago), 40 for the staff group (from 20
    minutes ago), 60 bulk (from 5 minutes ago); 2 failed today, 1 failed two days ago, 1 sent."""
    minutes = [
        (10, rows(Pace.PRIVATE, chat(5001), 3)),
        (8, rows(Pace.PRIVATE, chat(5002))),
        (20, [row for n in range(39) for row in rows(Pace.GROUP, topic_lane("telegram", n % 4))]),
        (2, rows(Pace.GROUP, group_lane("telegram", None))),
        (5, [row for n in range(60) for row in rows(Pace.BULK, chat(6000 + n))]),
    ]
    async with sessions() as session, session.begin():
        for ago, items in minutes:
            await outbox.add_items(session, items=items, now=now - timedelta(minutes=ago))
        for ago, count in ((timedelta(hours=3), 2), (timedelta(days=2), 1)):
            failed = await outbox.add_items(
                session, items=rows(Pace.PRIVATE, chat(5003), count), now=now - ago
            )
            await outbox.mark_ended(
                session, ids=failed, status=OutboxStatus.FAILED, error="Bad Request", now=now
            )
        sent = await outbox.add_items(
            session, items=rows(Pace.GROUP, topic_lane("telegram", 9)), now=now
        )
        await outbox.mark_sent(session, results=[(sent[0], [77])], now=now)


async def _fill(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await fill_outbox(session_factory(engine), utcnow())
    finally:
        await engine.dispose()


def _status(database_url: str, *args: str) -> str:
    result = run_cli(
        "status",
        *args,
        env={"DATABASE_URL": database_url, "HOTLINE_MAX_SENDS_PER_SECOND": "10"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_hotline_status_prints_the_backlog_per_destination(database_url) -> None:
    await _fill(database_url)
    output = await asyncio.to_thread(_status, database_url)
    lines = {line.split("  ")[0].strip(): line.split() for line in output.splitlines()}
    assert lines["destination"] == ["destination", "waiting", "oldest", "drain"]
    # private: the longest chat (3 rows) at 1 a second outlasts 4 rows at 10 a second
    private = lines["private chats"]
    assert private[2] == "4" and private[3].startswith("10m0") and private[4] == "3s"
    # the staff group at 20 a minute (61 s): 40 rows, 122 s
    group = lines["staff group"]
    assert group[2] == "40" and group[3].startswith("20m0") and group[4] == "2m02s"
    # bulk at HOTLINE_MAX_SENDS_PER_SECOND: 60 rows at 10 a second
    bulk = lines["bulk"]
    assert bulk[1] == "60" and bulk[2].startswith("5m0") and bulk[3] == "6s"
    assert "failed in the last 24 h: 2" in output


async def test_hotline_status_json(database_url) -> None:
    await _fill(database_url)
    report = json.loads(await asyncio.to_thread(_status, database_url, "--json"))
    assert set(report) == {"destinations", "failed_last_24h"}
    destinations = report["destinations"]
    assert list(destinations) == ["private", "group", "bulk"]
    assert {k: v["waiting"] for k, v in destinations.items()} == {
        "private": 4,
        "group": 40,
        "bulk": 60,
    }
    assert {k: v["drain_seconds"] for k, v in destinations.items()} == {
        "private": 3,
        "group": 122,
        "bulk": 6,
    }
    ages = {k: v["oldest_age_seconds"] for k, v in destinations.items()}
    assert 600 <= ages["private"] < 660 and 1200 <= ages["group"] < 1260
    assert 300 <= ages["bulk"] < 360
    assert report["failed_last_24h"] == 2


async def test_hotline_status_of_an_empty_outbox(database_url) -> None:
    report = json.loads(await asyncio.to_thread(_status, database_url, "--json"))
    assert report["failed_last_24h"] == 0
    for destination in report["destinations"].values():
        assert destination == {"waiting": 0, "oldest_age_seconds": None, "drain_seconds": 0}


@pytest.fixture
async def staff_group(api: LocalBotApi, start_hotline):
    """A running hotline (its clock the test's), a staff forum and one counsellor, 771."""
    clock = OfficeClock()
    hotline, forum = await start_desk(api, start_hotline, (771, "counsellor", "Li"), clock=clock)
    return hotline, forum, clock


async def test_status_in_the_staff_group_gives_the_figures(api, staff_group) -> None:
    hotline, forum, clock = staff_group
    li = api.user(771, "Li")
    forum.send(li, "/status")  # in the General topic, with nothing waiting
    reply = (await forum.next_message()).plain
    assert "发送队列" in reply
    for name in ("工友私聊", "工作人员群", "群发"):
        assert f"{name}：没有等待发送的消息" in reply
    assert "过去 24 小时发送失败：0 条" in reply
    # The sender has loaded what it had at start: rows written behind its back now are
    # never woken, so they stay waiting.
    await fill_outbox(hotline.sessions, clock())
    thread = forum.open_topic(li.user, "Rota", icon_color=0x6FB9F0)
    forum.send(li, "/status", thread_id=thread)  # in any topic
    answer = await forum.next_message()
    assert answer.message_thread_id == thread
    reply = answer.plain
    # this hotline's paces: 1000 a second overall and per chat; the group's 20 a minute
    assert "工友私聊：等待 4 条，最早的已等 10 分钟，预计 1 秒 内发完" in reply
    assert "工作人员群：等待 40 条，最早的已等 20 分钟，预计 3 分钟 内发完" in reply
    assert "群发：等待 60 条，最早的已等 5 分钟，预计 1 秒 内发完" in reply
    assert "过去 24 小时发送失败：2 条" in reply


async def test_status_is_refused_to_anyone_not_on_the_staff(api, staff_group) -> None:
    hotline, forum, clock = staff_group
    forum.send(api.user(4242, "Stranger"), "/status")
    reply = (await forum.next_message()).plain
    assert "只有登记过的工作人员" in reply
    assert "发送队列" not in reply and "等待" not in reply


async def test_the_card_says_when_the_worker_filed(api, start_hotline) -> None:
    tuesday = datetime(2026, 11, 24, 6, 3, tzinfo=UTC)  # 14:03 in Shanghai, office hours
    _, forum = await start_desk(api, start_hotline, clock=OfficeClock(tuesday))
    worker = api.user(1301, language_code="en")
    reference = await file_complaint(worker, photo=None)
    card = await forum.next_message()
    while not card.button_texts:
        card = await forum.next_message()
    assert reference in card.plain
    assert "提交于 11月24日 14:03" in card.plain
