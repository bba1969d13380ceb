"""/jobs in the staff group, through the local Bot API server on SQLite and PostgreSQL: a
coordinator's listing reaches workers' searches and their alerts, once however often it is
added; counsellors and strangers are refused and nothing changes; the list, taking a
listing down, and a bad field answered with its reason (what was typed shown back escaped)."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from db import jobs
from db.jobs import NewListing
from db.models import JobListing, utcnow
from tests.conversation import replies, say, texts
from tests.desk import ADMIN_WU, COORDINATOR_WU, COUNSELLOR_LI, start_desk
from tests.test_jobs import BOT_TODAY, numbered, to_jobs

EXPIRES = "2027-06-30"


def fields(**values: str) -> str:
    """A listing as /jobs add takes it: the CSV's ten fields on one line, "|" between."""
    base = {
        "title": "Welder",
        "employer": "Kunshan Steel",
        "district": "yushan",
        "trade": "factory",
        "pay_min": "6000",
        "pay_max": "7500",
        "hours": "8:00-17:00",
        "housing": "yes",
        "contact": "0512-5555 1111",
        "expires": EXPIRES,
    }
    return "|".join((base | values).values())


@pytest.fixture
async def desk(api, start_hotline):
    return await start_desk(api, start_hotline, COUNSELLOR_LI, COORDINATOR_WU, ADMIN_WU)


async def command(forum, member, text: str):
    """What the bot answers in the General topic to one staff message."""
    forum.send(member, text)
    return await forum.next_message()


async def listing_count(hotline) -> int:
    async with hotline.sessions() as session:
        return (await session.exec(select(func.count()).select_from(JobListing))).one()


async def search_everything(worker, language: str = "English") -> str:
    await to_jobs(worker, language)
    answers = ("Find a job", "Any district", "Any kind of work", "skip")
    if language == "中文":
        answers = ("查找工作", "不限区镇", "不限工种", "跳过")
    for answer in answers[:-1]:
        await say(worker, answer)
    return texts(await say(worker, answers[-1]))


async def test_a_coordinators_listing_is_found_and_alerted_once(api, desk) -> None:
    hotline, forum = desk
    wu = api.user(COORDINATOR_WU[0], "Wu")
    subscriber = api.user(4301, language_code="en")
    assert "No job matches" in await search_everything(subscriber)
    await say(subscriber, "Tell me about new jobs like this")
    await say(subscriber, "/menu")

    added = (await command(forum, wu, f"/jobs add {fields()}")).plain
    assert "已添加招聘信息 #" in added and "（Welder）" in added
    assert "已为 1 位工友排队发送岗位提醒" in added
    await hotline.telegram.sender.refresh()  # the running bot's poll, without its wait
    alert = await replies(subscriber)
    assert len(alert) == 1 and "1 new job(s) for your alert" in alert[0].plain
    assert "Welder" in alert[0].plain and "Kunshan Steel" in alert[0].plain

    searcher = api.user(4302)  # a Chinese Telegram
    found = await search_everything(searcher, "中文")
    assert "共 1 个岗位" in found and "Welder" in found
    assert "联系方式：0512-5555 1111" in texts(await say(searcher, "1"))

    # The same listing again, with other spacing and case: stored and alerted once.
    again = (await command(forum, wu, "/jobs add " + fields(title="  WELDER ", housing="是"))).plain
    assert "已经有了" in again and "没有重复添加" in again
    await hotline.telegram.sender.refresh()
    assert await subscriber.quiet(1.0) == []
    assert await listing_count(hotline) == 1


async def test_counsellors_and_strangers_are_refused_and_nothing_changes(api, desk) -> None:
    hotline, forum = desk
    li, stranger = api.user(COUNSELLOR_LI[0], "Li"), api.user(4399, "Stranger")
    for member in (li, stranger):
        refused = (await command(forum, member, f"/jobs add {fields()}")).plain
        assert "已添加" not in refused
        if member is li:
            assert refused == "只有协调员和管理员可以管理招聘信息。"
        else:
            assert "只有登记过的工作人员" in refused
    assert await listing_count(hotline) == 0
    async with hotline.sessions() as session, session.begin():
        added = await jobs.add_listings(session, listings=[_listing("Cook")], now=utcnow())
    for member in (li, stranger):
        for text in ("/jobs", f"/jobs expire {added.ids[0]}"):
            answer = (await command(forum, member, text)).plain
            assert "Cook" not in answer and "下架" not in answer
    worker = api.user(4303, language_code="en")
    assert "1 job(s)" in await search_everything(worker)  # still listed


async def test_the_list_and_taking_a_listing_down(api, desk) -> None:
    hotline, forum = desk
    wu, admin = api.user(COORDINATOR_WU[0], "Wu"), api.user(ADMIN_WU[0], "Admin")
    await command(forum, wu, f"/jobs add {fields()}")
    added = await command(forum, admin, "/jobs add " + fields(title="Cook", trade="catering"))
    assert "已添加招聘信息" in added.plain  # admins may too
    shown = (await command(forum, wu, "/jobs")).plain
    assert "/jobs add" in shown and "title|employer|district|trade|pay_min" in shown
    assert "工友能看到的招聘信息共 2 条" in shown
    async with hotline.sessions() as session:
        ids = {row.title: row.id for row in (await session.exec(select(JobListing))).all()}
    assert f"#{ids['Welder']} Welder · Kunshan Steel · 玉山镇 · 6000-7500 元 · 截止 {EXPIRES}" in (
        shown
    )
    assert shown.index("Cook") < shown.index("Welder")  # newest first

    gone = (await command(forum, wu, f"/jobs expire {ids['Welder']}")).plain
    assert gone == f"招聘信息 #{ids['Welder']}（Welder）已下架，工友不会再看到。"
    again = (await command(forum, wu, f"/jobs expire {ids['Welder']}")).plain
    assert "之前已经下架了" in again
    assert "没有编号为 #99999 的招聘信息" in (await command(forum, wu, "/jobs expire 99999")).plain
    usage = (await command(forum, wu, "/jobs expire soon")).plain  # not a number
    assert "/jobs expire 编号" in usage and "已下架" not in usage
    after = (await command(forum, wu, "/jobs")).plain
    assert "共 1 条" in after and "Welder" not in after and "Cook" in after
    worker = api.user(4304, language_code="en")
    page = await search_everything(worker)
    assert "1 job(s)" in page and "Cook" in page and "Welder" not in page


async def test_the_list_shows_twenty_and_counts_the_rest(api, desk) -> None:
    hotline, forum = desk
    async with hotline.sessions() as session, session.begin():
        await jobs.add_listings(
            session, listings=[_listing(f"Job {n:02d}") for n in range(23)], now=utcnow()
        )
    shown = (await command(forum, api.user(COORDINATOR_WU[0], "Wu"), "/jobs")).plain
    assert "共 23 条" in shown and "还有 3 条" in shown
    assert sum(1 for line in shown.splitlines() if line.startswith("#")) == 20


async def test_a_bad_field_is_answered_with_its_reason_and_nothing_stored(api, desk) -> None:
    hotline, forum = desk
    wu = api.user(COORDINATOR_WU[0], "Wu")
    bad = await command(
        forum,
        wu,
        "/jobs add "
        + fields(pay_min="9000", pay_max="6000", district="<b>Atlantis</b>", expires="2027/06/30"),
    )
    assert "这条招聘信息没有添加" in bad.plain
    assert "最低月薪 9000 高于最高月薪 6000" in bad.plain
    assert "区镇“<b>Atlantis</b>”不认识（可用：yushan" in bad.plain  # shown as typed
    assert "&lt;b&gt;Atlantis&lt;/b&gt;" in bad.text  # escaped, not markup
    assert "截止日期“2027/06/30”不是 YYYY-MM-DD 格式的日期" in bad.plain
    for typed, reason in (
        (fields(expires="2026-11-01"), f"已经过去了（今天是 {BOT_TODAY.isoformat()}）"),
        (fields(pay_min="五千"), "最低月薪（pay_min）“五千”不是整数"),
        (fields(housing="maybe"), "住宿“maybe”不是“是”或“否”"),
        (fields(title=""), "职位（title）没有填写"),
        ("Welder|Kunshan Steel|yushan", "这里有 3 项，但一条招聘信息要 10 项"),
    ):
        answer = (await command(forum, wu, f"/jobs add {typed}")).plain
        assert reason in answer, (typed, answer)
    assert await listing_count(hotline) == 0
    shown = await command(forum, wu, "/jobs add " + fields(title="<i>Boss</i> & co"))
    assert "（<i>Boss</i> & co）" in shown.plain
    assert "&lt;i&gt;Boss&lt;/i&gt; &amp; co" in shown.text
    worker = api.user(4305, language_code="en")
    page = await search_everything(worker)
    assert "1 job(s)" in page and numbered(page) and "<i>Boss</i> & co" in page


def _listing(title: str) -> NewListing:
    return NewListing(
        title, "Acme", "yushan", "catering", 4000, 5000, "", False, "call", _far(), title
    )


def _far():
    return BOT_TODAY.replace(year=BOT_TODAY.year + 1)
