"""Jobs, as a worker meets them through the local Bot API server, in English and Chinese, on
SQLite and PostgreSQL: browsing five to a page, a page past the end, a listing's details,
a filter that matches nothing and how to widen it, a pay that cannot be read, expired
listings never shown, the fairs and housing; and alerts: one message per worker with all
the new matches, never the same listing twice, stopped from the alert itself."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta

import yaml
from sqlalchemy import update
from sqlmodel import func, select

from bot.jobs_admin import import_csv
from content.catalog import PACKAGED, Catalog
from db import jobs
from db.jobs import NewListing
from db.models import JobAlertSent, JobSubscription, OutboxItem, Pace, Person, utcnow
from tests.conversation import replies, say, texts
from tests.test_jobs_import import csv_text, future, row

BOT_TODAY = date(2026, 11, 23)  # the date of the test hotline's clock (tests/conftest.py)


async def post(hotline, *rows: dict[str, str]):
    """Imports the rows as `hotline jobs import` does, then lets the sender pick up what
    the import queued (the running bot reads it within a few seconds anyway)."""
    report = await import_csv(
        hotline.sessions, catalog=hotline.catalog, text=csv_text(*rows), now=utcnow()
    )
    await hotline.telegram.sender.refresh()
    return report


async def to_jobs(worker, language: str = "English"):
    await say(worker, "/start")
    await say(worker, language)
    return await say(worker, "/jobs")


def numbered(text: str) -> list[str]:
    return re.findall(r"^\d+\. .*$", text, flags=re.M)


def live(**values: str) -> dict[str, str]:
    return row(expires=future(), **values)


async def test_browse_five_a_page_next_previous_past_the_end_and_a_detail(api, hotline) -> None:
    await post(
        hotline,
        *(live(title=f"Assembler {n:02d}", pay_min=str(5000 + n)) for n in range(12)),
        live(title="Cook", trade="catering"),
    )
    worker = api.user(4201, language_code="en")
    start = texts(await to_jobs(worker))
    assert "1. Find a job" in start and "2. Job fairs this week" in start
    await say(worker, "Find a job")
    await say(worker, "Yushan")
    assert "lowest monthly pay" in texts(await say(worker, "Electronics assembly"))
    first = await say(worker, "skip")
    page = texts(first)
    assert "12 job(s)" in page and "Yushan · Electronics assembly · any pay" in page
    assert "Page 1 of 3" in page and "Cook" not in page
    assert len(numbered(page)) == 5 and all("Assembler" in line for line in numbered(page))
    assert "Next ▶" in first[-1].button_texts and "◀ Previous" not in first[-1].button_texts
    worker.press("Next ▶")
    second = await replies(worker)
    assert "Page 2 of 3" in texts(second) and "◀ Previous" in second[-1].button_texts
    assert "Page 3 of 3" in texts(await say(worker, "next"))  # typed, not pressed
    past = texts(await say(worker, "page 9"))
    assert "There are only 3 page(s) of jobs" in past and "Page 3 of 3" in past
    assert len(numbered(past)) == 2
    assert "There is no job number 4 on this page" in texts(await say(worker, "4"))
    assert "Page 1 of 3" in texts(await say(worker, "第1页"))
    detail = texts(await say(worker, "1"))
    for fragment in (
        "Assembler 11",  # newest first; the same import, so the last row
        "Employer: Sunrise Electronics",
        "Pay: 5011 to 6500 yuan a month",
        "Hours: 8:00-20:00, two shifts",
        "Housing: provided",
        "Contact: 0512-5555 0000",
        "never pay a fee",
    ):
        assert fragment in detail
    assert "Page 1 of 3" in texts(await say(worker, "Back to the list"))


async def test_browse_in_chinese_with_words_and_numbers(api, hotline) -> None:
    await post(
        hotline,
        live(title="普工", housing="否"),
        live(title="低薪", pay_min="2500", pay_max="3000"),
    )
    worker = api.user(4202)  # a Chinese Telegram
    assert "找工作" in texts(await to_jobs(worker, "中文"))
    await say(worker, "1")
    await say(worker, "玉山镇")
    await say(worker, "电子装配")
    page = texts(await say(worker, "５千"))  # full-width digits and 千
    assert "共 1 个岗位" in page and "月薪 5000 元以上" in page and "低薪" not in page
    detail = texts(await say(worker, "1"))
    assert "普工" in detail and "住宿：不提供" in detail and "联系方式：0512-5555 0000" in detail


async def test_a_pay_that_cannot_be_read_is_asked_again(api, hotline) -> None:
    await post(hotline, live())
    worker = api.user(4203, language_code="en")
    await to_jobs(worker)
    for answer in ("Find a job", "Any district", "Any kind of work"):
        await say(worker, answer)
    for typed, answer in (
        ("abc", "could not read that as a monthly pay"),
        ("-1", "Pay cannot be below zero"),
        ("1e9", "could not read that as a monthly pay"),
        ("200000", "more than 100000 yuan a month"),
    ):
        got = texts(await say(worker, typed))
        assert answer in got, typed
        assert "job(s)" not in got  # still at the question
    assert "from 5000 yuan a month" in texts(await say(worker, "5千"))
    assert "lowest monthly pay" in texts(await say(worker, "back"))
    assert "from 5000 yuan a month" in texts(await say(worker, "５０００"))


async def test_a_filter_that_matches_nothing_offers_to_widen_it(api, hotline) -> None:
    await post(hotline, live(title="Assembler"))
    worker = api.user(4204, language_code="en")
    await to_jobs(worker)
    for answer in ("Find a job", "Zhoushi", "Construction"):
        await say(worker, answer)
    none = texts(await say(worker, "8000"))
    assert "No job matches Zhoushi · Construction · from 8000 yuan a month" in none
    assert numbered(none) == [
        "1. Any district",
        "2. Any kind of work",
        "3. Any pay",
        "4. 🔔 Tell me about new jobs like this",
        "5. 🔍 New search",
    ]
    assert "No job matches any district · Construction" in texts(await say(worker, "1"))
    assert "No job matches any district · any kind of work · from 8000" in texts(
        await say(worker, "Any kind of work")
    )
    found = texts(await say(worker, "Any pay"))
    assert "1 job(s)" in found and "Assembler" in found


async def test_expired_listings_are_never_shown(api, hotline) -> None:
    def listing(title: str, expires_on: date) -> NewListing:
        return NewListing(
            title, "Acme", "yushan", "factory", 5000, 6000, "", False, "call", expires_on, title
        )

    async with hotline.sessions() as session, session.begin():
        added = await jobs.add_listings(
            session,
            listings=[
                listing("Live", BOT_TODAY + timedelta(days=30)),
                listing("Last day today", BOT_TODAY),
                listing("Ended yesterday", BOT_TODAY - timedelta(days=1)),
                listing("Taken down", BOT_TODAY + timedelta(days=30)),
                listing("Taken down later", BOT_TODAY + timedelta(days=30)),
            ],
            now=utcnow(),
        )
        await jobs.expire_listing(session, listing_id=added.ids[3], now=utcnow())
    worker = api.user(4205, language_code="en")
    await to_jobs(worker)
    for answer in ("Find a job", "Any district", "Any kind of work"):
        await say(worker, answer)
    page = texts(await say(worker, "skip"))
    assert "3 job(s)" in page
    assert "Live" in page and "Last day today" in page and "Taken down later" in page
    assert "Ended yesterday" not in page and "Taken down ·" not in page
    position = next(n for n, line in enumerate(numbered(page), 1) if "Taken down later" in line)
    async with hotline.sessions() as session, session.begin():  # gone while it is on screen
        await jobs.expire_listing(session, listing_id=added.ids[4], now=utcnow())
    gone = texts(await say(worker, str(position)))
    assert "That job is no longer listed" in gone and "2 job(s)" in gone


async def test_one_alert_with_all_new_matches_never_twice_stopped_from_the_alert(
    api, hotline
) -> None:
    worker = api.user(4206, language_code="en")
    await to_jobs(worker)
    for answer in ("Find a job", "Yushan", "Any kind of work"):
        await say(worker, answer)
    assert "No job matches" in texts(await say(worker, "5000"))
    subscribed = texts(await say(worker, "Tell me about new jobs like this"))
    assert "when new jobs come in for Yushan · any kind of work · from 5000 yuan a month" in (
        subscribed
    )
    assert "already have an alert" in texts(await say(worker, "3"))  # the same, by number
    await say(worker, "/menu")
    batch = (
        live(title="Welder", trade="factory", pay_max="7000"),
        live(title="Packer", pay_min="4000", pay_max="5200"),
        live(title="Far away", district="zhoushi"),
        live(title="Too low", pay_min="3000", pay_max="4500"),
    )
    assert (await post(hotline, *batch)).alerted == 1
    alert = await replies(worker)
    assert len(alert) == 1  # one message, not one per listing
    text = alert[0].plain
    assert "2 new job(s) for your alert" in text and "Welder" in text and "Packer" in text
    assert "Far away" not in text and "Too low" not in text
    assert alert[0].button_texts == ["Stop these alerts"]
    assert (await post(hotline, *batch)).alerted == 0  # the same file again
    assert await worker.quiet(1.0) == []
    assert (await post(hotline, live(title="Forklift driver", trade="logistics"))).alerted == 1
    second = texts(await replies(worker))
    assert "1 new job(s)" in second and "Forklift driver" in second and "Welder" not in second
    async with hotline.sessions() as session:
        bulk = await session.exec(
            select(func.count()).select_from(OutboxItem).where(OutboxItem.pace == Pace.BULK)
        )
        assert bulk.one() == 2  # alerts go as bulk, behind conversation replies
    await say(worker, "/jobs")  # busy elsewhere: the alert's button still answers
    worker.press("Stop these alerts", message=alert[0])
    assert "no more alerts like these" in texts(await replies(worker))
    assert (await post(hotline, live(title="Electrician"))).alerted == 0
    assert await worker.quiet(1.0) == []


async def test_alerts_in_chinese_and_stopping_them_from_my_alerts(api, hotline) -> None:
    worker = api.user(4207)
    await to_jobs(worker, "中文")
    for answer in ("查找工作", "不限区镇", "不限工种", "跳过"):
        await say(worker, answer)
    assert "有新的 不限区镇 · 不限工种 · 不限工资 岗位时" in texts(
        await say(worker, "有类似新岗位时告诉我")
    )
    await say(worker, "/menu")
    await post(hotline, live(title="电子厂普工"), live(title="仓管", trade="logistics"))
    alert = texts(await replies(worker))
    assert "您订的提醒有 2 个新岗位" in alert and "电子厂普工" in alert and "仓管" in alert
    assert "每月 5000 至 6500 元" in alert and "玉山镇" in alert
    await say(worker, "/jobs")
    mine = texts(await say(worker, "我的岗位提醒"))
    assert "您的岗位提醒（1 个）" in mine and "1. 不限区镇 · 不限工种 · 不限工资" in mine
    assert "已停止 不限区镇 · 不限工种 · 不限工资 的提醒" in texts(await say(worker, "1"))
    assert (await post(hotline, live(title="保安"))).alerted == 0


async def test_no_alert_for_a_worker_who_blocked_the_bot_or_was_forgotten(api, hotline) -> None:
    async def subscribed(user_id: int):
        worker = api.user(user_id, language_code="en")
        await to_jobs(worker)
        for answer in ("Find a job", "Any district", "Any kind of work", "skip"):
            await say(worker, answer)
        await say(worker, "Tell me about new jobs like this")
        return worker

    blocking, forgetting = await subscribed(4208), await subscribed(4209)
    assert (await post(hotline, live(title="First"))).alerted == 2
    await replies(blocking)
    await replies(forgetting)
    await say(forgetting, "/forget")
    assert "deleted" in texts(await say(forgetting, "Yes, delete"))
    async with hotline.sessions() as session, session.begin():
        await session.exec(
            update(Person).where(Person.external_id == "4208").values(blocked_at=utcnow())
        )
    assert (await post(hotline, live(title="Second"))).alerted == 0
    assert await blocking.quiet(1.0) == [] and await forgetting.quiet(0.1) == []
    async with hotline.sessions() as session:
        forgotten = (
            await session.exec(select(Person).where(Person.forgotten_at.is_not(None)))
        ).one()
        for table in (JobSubscription, JobAlertSent):
            left = await session.exec(select(table).where(table.person_id == forgotten.id))
            assert left.all() == []  # /forget took their alerts and what they were sent


async def test_the_menu_entry_the_fairs_and_where_to_live(api, hotline) -> None:
    worker = api.user(4210, language_code="en")
    await say(worker, "/start")
    menu = texts(await say(worker, "English"))
    assert "Find a job" in menu
    await say(worker, "Find a job")
    fairs = texts(await say(worker, "Job fairs this week"))
    assert "Monday 08:30-11:30: Kunshan Human Resources Market" in fairs
    assert fairs.count("08:30-11:30") == 5  # five a week
    assert "Sample data: check it before relying on it" in fairs
    assert "1. Find a job" in fairs  # and the question again
    housing = texts(await say(worker, "Where to live"))
    assert "blue-collar apartments" in housing and "Sample data" in housing
    assert "You have no job alerts" in texts(await say(worker, "My job alerts"))


def test_content_check_names_what_to_fix_in_jobs_yaml(tmp_path) -> None:
    folder = tmp_path / "content"
    shutil.copytree(PACKAGED, folder)
    path = folder / "jobs.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["trades"].append("mining")  # no label in any language
    data["venues"]["station_market"]["district"] = "atlantis"
    data["fairs"][0] = {"day": "funday", "hours": "11:30-08:30", "venue": "nowhere"}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    problems = Catalog(folder).check()
    for expected in (
        "zh: no text jobs.trades.mining",
        "en: no text jobs.trades.mining",
        "jobs.yaml: venue station_market is in district 'atlantis', which is not in districts.yaml",
        "jobs.yaml: fair 1 (funday 11:30-08:30): day must be one of monday",
        "jobs.yaml: fair 1 (funday 11:30-08:30): the fair must end after it starts",
        "jobs.yaml: fair 1 (funday 11:30-08:30): venue 'nowhere' is not under venues",
    ):
        assert any(problem.startswith(expected) for problem in problems), (expected, problems)
    assert Catalog().check() == []  # the shipped content is fine
