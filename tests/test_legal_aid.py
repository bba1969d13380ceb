"""Legal-aid referral, through the local Bot API as a worker and a counsellor would use it:
the directory's places for the chosen district with their map pins (venues), sample data
said to be sample, the arbitration deadline warning, a lawyer's call-back as a ticket in the
staff forum, bad input, and counsellors' Refer offering the same directory. Also the
directory's own checks, on the packaged content and on a broken copy."""

from __future__ import annotations

import asyncio
import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import select
from telegram import Bot
from telegram.error import BadRequest

from content.catalog import PACKAGED, Catalog
from content.legal_aid import directory
from db.models import Ticket
from handlers.legal_aid import arbitration_deadline, parse_when
from handlers.messages import Choice, Place, Reply
from local_servers.telegram import BotMessage, LocalBotApi
from tests import conversation
from tests.conversation import replies, say
from tests.desk import COUNSELLOR_LI, start_desk
from tests.test_bad_input import state_of

TODAY = date(2026, 11, 23)  # the suite's clock (tests/conftest.py OfficeClock): a Monday
DIRECTORY = directory(PACKAGED)


def texts(messages: list[BotMessage]) -> str:
    return "\n".join(m.plain or "" for m in messages)


def venues(messages: list[BotMessage]) -> list[dict]:
    return [m.raw["venue"] for m in messages if m.kind == "venue"]


def coordinates(key: str) -> tuple[float, float]:
    entry = DIRECTORY.get(key)
    return entry.latitude, entry.longitude


async def walk(person, *answers: str) -> list[BotMessage]:
    """Sends each answer; returns the replies to the last."""
    got: list[BotMessage] = []
    for answer in answers:
        got = await say(person, answer)
    return got


async def settle(seconds: float = 0.4) -> None:
    await asyncio.sleep(seconds)


# -- the directory --------------------------------------------------------------------------


def test_the_packaged_content_has_no_problems() -> None:
    assert Catalog().check() == []


def broken_copy(tmp_path: Path) -> Path:
    """The packaged content/ with a place in an unknown district, its pin swapped, a text
    missing in Chinese, a pin in another city and a problem that is no complaint category."""
    copy = tmp_path / "content"
    shutil.copytree(PACKAGED, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    places = copy / "legal_aid.yaml"
    text = places.read_text(encoding="utf-8")
    text = text.replace("districts: [zhoushi]", "districts: [atlantis]")
    swapped = "latitude: 120.9077\n    longitude: 31.1856"
    text = text.replace("latitude: 31.1856\n    longitude: 120.9077", swapped)
    beijing = "latitude: 39.9042\n    longitude: 116.4074"
    text = text.replace("latitude: 31.4463\n    longitude: 120.8840", beijing)
    text = text.replace("problems: [unpaid_wages, contract,", "problems: [gambling, contract,")
    places.write_text(text, encoding="utf-8")
    zh = copy / "locales" / "zh" / "legal_aid.yaml"
    lines = zh.read_text(encoding="utf-8").splitlines(keepends=True)
    at = lines.index("    station_lujia:\n")
    assert lines[at + 2].startswith("      address:")
    del lines[at + 2]
    zh.write_text("".join(lines), encoding="utf-8")
    return copy


def test_a_broken_directory_is_reported(tmp_path: Path) -> None:
    problems = Catalog(broken_copy(tmp_path)).check()
    for expected in (
        "legal_aid.yaml: place station_zhoushi: unknown district 'atlantis'",
        "legal_aid.yaml: place station_jinxi: latitude 120.9077 / longitude 31.1856 is not on",
        "legal_aid.yaml: place station_bacheng: 39.9042, 116.4074 is outside the city's bounds",
        "zh: no text legal_aid.places.station_lujia.address",
        "legal_aid.yaml: place labour_inspection: unknown problem 'gambling'",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert not any("station_yushan" in p for p in problems)  # only what is wrong is said


def test_a_directory_without_places_or_with_an_unknown_kind_is_reported(tmp_path: Path) -> None:
    copy = tmp_path / "content"
    shutil.copytree(PACKAGED, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    places = copy / "legal_aid.yaml"
    text = places.read_text(encoding="utf-8").replace("kind: union", "kind: church")
    places.write_text(text.replace("referable: true", "referable: false"), encoding="utf-8")
    problems = Catalog(copy).check()
    assert any("place trade_union: unknown kind 'church'" in p for p in problems)
    assert any("no place is referable" in p for p in problems)
    places.write_text("places: nothing\n", encoding="utf-8")
    assert Catalog(copy).check() == ["legal_aid.yaml: needs a list of places under `places:`"]


def test_the_nearest_places_are_the_districts_own_first() -> None:
    free = DIRECTORY.nearest(district="lujia", problem="contract", pay="free", deadline="open")
    assert [e.key for e in free] == ["station_lujia", "legal_aid", "trade_union"]
    paying = DIRECTORY.nearest(district="lujia", problem="contract", pay="lawyer", deadline="open")
    assert [e.key for e in paying] == ["station_lujia", "lawyers_desk", "legal_aid"]
    late = DIRECTORY.nearest(district="other", problem="dismissal", pay="free", deadline="past")
    assert [e.key for e in late] == ["arbitration", "legal_aid", "trade_union"]
    housing = DIRECTORY.nearest(district="other", problem="housing", pay="free", deadline="past")
    assert "arbitration" not in [e.key for e in housing]  # not a labour dispute


# -- when it happened ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("2026-03", date(2026, 3, 1)),
        ("2026年3月5日", date(2026, 3, 5)),
        ("２０２５年１０月", date(2025, 10, 1)),
        ("3/2026", date(2026, 3, 1)),
        ("March 2026", date(2026, 3, 1)),
        ("mar 5, 2025", date(2025, 3, 5)),
        ("去年10月", date(2025, 10, 1)),
        ("12月", date(2025, 12, 1)),  # the last December that has begun
        ("十月", date(2026, 10, 1)),
        ("三个月前", date(2026, 8, 23)),
        ("3 months ago", date(2026, 8, 23)),
        ("两个星期前", date(2026, 11, 9)),
        ("上个月", date(2026, 10, 1)),
        ("yesterday", date(2026, 11, 22)),
        ("2025", date(2025, 1, 1)),
    ],
)
def test_dates_as_workers_write_them(typed: str, meant: date) -> None:
    assert parse_when(typed, TODAY) == meant


@pytest.mark.parametrize("typed", ["abc", "", "13月", "2026-13", "2025年2月29日", "早上", "99999"])
def test_what_is_no_date(typed: str) -> None:
    assert parse_when(typed, TODAY) is None


def test_the_arbitration_deadline_is_a_year_from_then() -> None:
    assert arbitration_deadline(date(2025, 10, 1), TODAY, years=1, warn_days=90) == (
        "past",
        date(2026, 10, 1),
        -53,
    )
    assert arbitration_deadline(date(2026, 1, 1), TODAY, years=1, warn_days=90)[::2] == (
        "close",
        39,
    )
    assert arbitration_deadline(date(2026, 6, 1), TODAY, years=1, warn_days=90)[0] == "open"
    assert arbitration_deadline(date(2024, 2, 29), date(2024, 3, 1), years=1, warn_days=9)[1] == (
        date(2025, 2, 28)
    )


def test_a_reply_carries_its_map_pin_through_the_outbox() -> None:
    pin = Place(31.4598, 120.9989, "Zhoushi legal-aid station", "Zhoushi town government")
    reply = Reply("<b>Zhoushi</b>", [Choice("a", "A")], "legal_aid.next", place=pin)
    assert Reply.from_dict(reply.to_dict()) == reply
    assert "place" not in Reply("plain").to_dict()  # rows without a pin stay as they were


async def test_the_local_bot_api_takes_a_venue_as_telegram_does(api: LocalBotApi) -> None:
    worker = api.user(8106)
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as bot:
        sent = await bot.send_venue(worker.id, 31.4598, 120.9989, "42", "Zhoushi")
        assert sent.venue.title == "42" and sent.location.latitude == 31.4598
        with pytest.raises(BadRequest, match="(?i)wrong latitude"):
            await bot.send_venue(worker.id, 91, 120, "x", "y")
        with pytest.raises(BadRequest, match="(?i)venue address is empty"):
            await bot.send_venue(worker.id, 31, 120, "x", " ")
    got = await worker.next_message()
    assert got.kind == "venue" and got.plain == "42\nZhoushi"
    assert len(worker.messages) == 1  # the refused ones made nothing


# -- the conversation ------------------------------------------------------------------------


async def test_an_english_worker_gets_the_districts_places_with_pins(
    api: LocalBotApi, hotline
) -> None:
    worker = api.user(8101, language_code="en")
    await walk(worker, "/start", "English")
    asked = texts(await say(worker, "Free legal help"))
    assert "What is the problem?" in asked and "1. Unpaid wages" in asked
    assert "In which district" in texts(await say(worker, "Unpaid wages"))
    assert "When did it happen" in texts(await say(worker, "Zhoushi"))
    warned = texts(await say(worker, "2025-10"))
    assert "That is more than a year ago" in warned and "time limit may have passed" in warned
    assert "Could you pay a lawyer?" in warned
    shown = await say(worker, "No, I need free help")
    seen = texts(shown)
    assert "Where to get help in Zhoushi" in seen and "Legal aid is free" in seen
    # a past deadline puts the arbitration committee right after the district's own station
    expected = ["station_zhoushi", "arbitration", "legal_aid"]
    pins = venues(shown)
    assert [(v["location"]["latitude"], v["location"]["longitude"]) for v in pins] == [
        coordinates(key) for key in expected
    ]
    assert pins[0]["title"] == "Zhoushi legal-aid station (sample data)"
    assert pins[0]["address"] == "Zhoushi judicial office, Zhoushi town government"
    calls = api.calls("sendVenue")
    assert [(c["latitude"], c["longitude"]) for c in calls] == [coordinates(k) for k in expected]
    kinds = [m.kind for m in shown]
    first_pin = kinds.index("venue")
    card = shown[first_pin - 1]  # each pin right after its card
    assert card.kind == "text" and "Zhoushi legal-aid station" in card.plain
    for fragment in ("0512-57620348", "Bring: your ID card", "pay slips", "Sample data: check"):
        assert fragment in card.plain
    assert kinds.count("venue") == 3 and kinds.count("text") == len(shown) - 3
    assert "12348" in seen and "12333" in seen and "12351" in seen and "110" in seen
    assert "What would you like to do now?" in shown[-1].plain
    assert "Ask a lawyer to call me back" in " ".join(shown[-1].button_texts)


async def test_a_chinese_worker_asks_a_lawyer_to_call_back(api: LocalBotApi, start_hotline) -> None:
    hotline, forum = await start_desk(api, start_hotline, COUNSELLOR_LI)
    worker = api.user(8102, language_code="zh")
    await walk(worker, "/start", "中文")
    assert "遇到的是什么问题" in texts(await say(worker, "/legalaid"))
    await walk(worker, "1", "花桥")
    warned = texts(await say(worker, "2026年1月"))
    assert "要抓紧：大约还剩 39 天" in warned and "2027年1月1日" in warned
    shown = await say(worker, "2")  # 能，可以请律师
    assert "律师值班窗口可以先免费咨询" in texts(shown)
    assert [v["title"] for v in venues(shown)] == [
        "花桥镇法律援助工作站（示例数据）",
        "昆山市劳动人事争议仲裁委员会（示例数据）",
        "昆山市公共法律服务中心 律师值班窗口（示例数据）",
    ]
    assert "您同意吗" in texts(await say(worker, "请律师给我回电话"))
    assert "律师打哪个手机号" in texts(await say(worker, "同意"))
    assert "没看懂这个号码" in texts(await say(worker, "12345"))
    assert "有什么想让律师先知道" in texts(await say(worker, "138 1234 5678"))
    done = texts(await say(worker, "老板说下个月再发"))
    reference = done.split("求助编号是 ")[1].split("。")[0]
    assert "13812345678" in done and "需要什么帮助" in done  # back at the menu
    await settle()
    async with hotline.sessions() as session:
        ticket = (await session.exec(select(Ticket).where(Ticket.reference == reference))).one()
    assert (ticket.kind, ticket.category, ticket.district) == (
        "legal_aid",
        "unpaid_wages",
        "huaqiao",
    )
    assert ticket.phone == "13812345678" and ticket.urgent is True
    assert "能否负担律师费：能" in ticket.story and "老板说下个月再发" in ticket.story
    thread, topic = next(iter(forum.topics.items()))
    assert topic["name"] == f"{reference} · 法律援助回电 · 拖欠工资 · 花桥镇"
    card = next(m for m in forum.topic_messages(thread) if m.button_texts)
    for fragment in (
        reference,
        "紧急",
        "13812345678",
        "劳动仲裁时效大约还剩 39 天",
        "工友: 匿名工友",
    ):
        assert fragment in card.plain
    li = api.user(771, "Li")
    forum.send(li, "明天上午给您打电话", thread_id=thread)
    assert (await worker.next_message()).plain == "Counsellor Li：明天上午给您打电话"


async def test_this_didnt_help_offers_a_person(api: LocalBotApi, hotline) -> None:
    worker = api.user(8103, language_code="en")
    await walk(worker, "/start", "English", "/legalaid", "Housing", "Other")
    await walk(worker, "Not sure when", "Not sure")
    got = texts(await say(worker, "This didn't help: talk to a person"))
    assert "Before you file a complaint" in got or "Write what you would like to say" in got
    assert (await state_of(hotline, 8103)).flow == "talk"


async def test_bad_input_gets_a_clear_answer_and_loses_nothing(api: LocalBotApi, hotline) -> None:
    worker = api.user(8104, language_code="en")
    await walk(worker, "/start", "English", "Free legal help", "Work injury")
    got = texts(await say(worker, "42"))
    assert "I did not understand your choice" in got and "In which district" in got
    assert (await state_of(hotline, 8104)).step == "district"
    await say(worker, "Lujia")
    worker.send_sticker()
    got = texts(await replies(worker))
    assert "Please type your answer here" in got and "When did it happen" in got
    got = texts(await say(worker, "it was " * 20))
    assert "That is too long (139 characters); this answer takes at most 60" in got
    assert "I could not read that date" in texts(await say(worker, "when the boss left"))
    assert "That date is in the future" in texts(await say(worker, "2027-05"))
    state = await state_of(hotline, 8104)
    assert state.step == "when"
    assert state.data["answers"] == {"problem": "work_injury", "district": "lujia"}
    assert "time limit for labour arbitration runs until about 2027-06-01" in texts(
        await say(worker, "2026-06")
    )


async def test_refer_offers_the_directorys_places(api: LocalBotApi, start_hotline) -> None:
    hotline, forum = await start_desk(api, start_hotline, COUNSELLOR_LI)
    li = api.user(771, "Li")
    worker = api.user(8105, language_code="en")
    await conversation.file_complaint(worker, photo=None)
    await settle()
    thread = max(forum.topics)
    card = next(m for m in forum.topic_messages(thread) if m.button_texts)
    forum.press(li, "认领", message=card)
    await settle()
    forum.press(li, "转介", message=card)
    await settle()
    offered = forum.messages[-1].button_texts
    catalog = Catalog()
    zh = catalog.translator("zh")
    assert offered == [str(zh(f"legal_aid.places.{e.key}.name")) for e in DIRECTORY.referable]
    assert "新昆山人服务中心（昆山市总工会）" in offered
    forum.press(li, "新昆山人服务中心")
    referred = (await worker.next_messages(2))[-1].plain
    assert "New Kunshan Residents Service Centre" in referred
    assert "12351" in referred and "Bring: your ID card" in referred
    assert "Sample data: check" in referred
    async with hotline.sessions() as session:
        ticket = (await session.exec(select(Ticket))).one()
    assert ticket.referred_to == "trade_union"
