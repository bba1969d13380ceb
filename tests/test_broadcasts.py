"""Broadcasts, through the local Bot API server on SQLite and PostgreSQL: a coordinator
composes a notice in the staff group, workers get it in their own language (Chinese where
theirs was not written), once, with the way to stop them; /stop and /start; who may send."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from db.models import Broadcast, BroadcastDelivery, BroadcastStatus, DeliveryStatus, Person
from tests.conversation import say, texts
from tests.desk import COORDINATOR_WU, COUNSELLOR_LI, start_desk

ZH, EN = "工资维权活动周一开始", "The wage campaign starts on Monday"


@pytest.fixture
async def desk(api, start_hotline):
    return await start_desk(api, start_hotline, COUNSELLOR_LI, COORDINATOR_WU)


async def worker_in(api, user_id: int, language: str):
    worker = api.user(user_id)
    await say(worker, "/start")
    answer = texts(await say(worker, language))
    return worker, answer


async def staff_says(forum, member, text: str) -> list:
    forum.send(member, text)
    return await answer(forum)


async def staff_presses(forum, member, button: str) -> list:
    message = next(m for m in reversed(forum.messages) if any(button in b for b in m.button_texts))
    label = next(b for b in message.button_texts if button in b)  # numbered: "1. …"
    forum.press(member, label, message=message)
    return await answer(forum)


async def answer(forum) -> list:
    """The turn's messages in the group: the first however long it takes (a loaded machine),
    then the rest until it has been quiet a while."""
    first = await forum.next_message(timeout=10)
    return [first, *await forum.quiet(0.5)]


async def compose(forum, wu, *, en: str | None = EN) -> list:
    """/broadcast up to the preview, to everyone subscribed; returns the preview messages."""
    await staff_says(forum, wu, "/broadcast")
    await staff_says(forum, wu, ZH)
    if en is None:
        await staff_presses(forum, wu, "跳过")
    else:
        await staff_says(forum, wu, en)
    await staff_presses(forum, wu, "不要图片")
    return await staff_presses(forum, wu, "所有订阅的工友")


async def notices(hotline, *workers, timeout: float = 10.0) -> list[list]:
    """Each worker's messages once the broadcast is done."""
    for _ in range(int(timeout / 0.1)):
        async with hotline.sessions() as session:
            broadcast = (await session.exec(select(Broadcast))).first()
        if broadcast is not None and broadcast.status == BroadcastStatus.DONE:
            break
        await asyncio.sleep(0.1)
    assert await hotline.telegram.sender.idle()
    return [await worker.quiet(0.3) for worker in workers]


async def test_a_notice_reaches_each_worker_in_their_language_once(api, desk) -> None:
    hotline, forum = desk
    wu = api.user(COORDINATOR_WU[0], "Wu")
    chinese, welcome = await worker_in(api, 6101, "中文")
    assert "/stop" in welcome, "the welcome says notices will come, and how to leave"
    english, _ = await worker_in(api, 6102, "English")
    leaving, _ = await worker_in(api, 6103, "English")
    assert "no more notices" in texts(await say(leaving, "/stop"))

    preview = await compose(forum, wu)
    shown = "\n".join(m.plain or "" for m in preview)
    assert "2</b>" in (preview[0].text or "") or "2 位" in shown
    assert ZH in shown and EN in shown, "the notice in each language, as workers will see it"
    await staff_presses(forum, wu, "现在发送")

    got_zh, got_en, got_none = await notices(hotline, chinese, english, leaving)
    assert [m.plain for m in got_zh] == [f"{ZH}\n\n—— 服务中心通知 · 不想再收请发 /stop"]
    assert len(got_en) == 1 and got_en[0].plain.startswith(EN)
    assert got_none == [], "a worker who sent /stop gets nothing"
    await forum.quiet(1.5)
    final = [m.plain for m in forum.messages if m.plain and "发送完毕" in m.plain]
    assert final and "2 位收到" in final[-1]
    async with hotline.sessions() as session:
        rows = (await session.exec(select(BroadcastDelivery))).all()
    assert sorted(r.status for r in rows) == [DeliveryStatus.SENT] * 2


async def test_a_missing_translation_falls_back_to_chinese_and_the_preview_says_so(
    api, desk
) -> None:
    hotline, forum = desk
    wu = api.user(COORDINATOR_WU[0], "Wu")
    english, _ = await worker_in(api, 6201, "English")
    preview = await compose(forum, wu, en=None)
    assert any("1 位没有自己语言的版本" in (m.plain or "") for m in preview)
    await staff_presses(forum, wu, "现在发送")
    (got,) = await notices(hotline, english)
    assert len(got) == 1 and got[0].plain.startswith(ZH)
    assert "/stop to stop notices" in got[0].plain, "the way out in the worker's language"


async def test_stop_then_start_rejoins(api, desk) -> None:
    hotline, forum = desk
    wu = api.user(COORDINATOR_WU[0], "Wu")
    worker, _ = await worker_in(api, 6301, "English")
    await say(worker, "/stop")
    assert "already get no notices" in texts(await say(worker, "/stop"))
    assert "notices again" in texts(await say(worker, "/start"))
    await compose(forum, wu)
    await staff_presses(forum, wu, "现在发送")
    (got,) = await notices(hotline, worker)
    assert len(got) == 1 and got[0].plain.startswith(EN)


async def test_only_coordinators_may_broadcast(api, desk) -> None:
    hotline, forum = desk
    li = api.user(COUNSELLOR_LI[0], "Li")
    stranger = api.user(9999, "Stranger")
    assert "只有协调员和管理员" in (await staff_says(forum, li, "/broadcast"))[0].plain
    refused = await staff_says(forum, stranger, "/broadcast")
    assert refused and "staff" in (refused[0].plain or "").lower() or "工作人员" in refused[0].plain
    async with hotline.sessions() as session:
        assert (await session.exec(select(Broadcast))).all() == []


async def test_bad_input_while_composing_is_answered_and_nothing_is_sent(api, desk) -> None:
    hotline, forum = desk
    wu = api.user(COORDINATOR_WU[0], "Wu")
    await staff_says(forum, wu, "/broadcast")
    forum.send_photo(wu)  # a picture where the text was asked
    assert "这里需要文字" in (await answer(forum))[0].plain
    assert "最多 4096" in " ".join(m.plain for m in await staff_says(forum, wu, "字" * 5000))
    html = "<b>周一</b> & <script>x</script>"
    await staff_says(forum, wu, html)  # shown as typed, never as markup
    await staff_presses(forum, wu, "跳过")
    forum.send_photo(wu)
    await answer(forum)
    assert "没有订阅通知的工友" in " ".join(
        m.plain for m in await staff_presses(forum, wu, "所有订阅的工友")
    ), "an audience of nobody"
    worker, _ = await worker_in(api, 6401, "中文")
    preview = await staff_presses(forum, wu, "所有订阅的工友")
    pictured = [m for m in preview if m.kind == "photo"]
    assert pictured and pictured[0].plain.startswith(html), "the preview: the photo, as typed"
    await staff_presses(forum, wu, "定时发送")
    assert "没看懂这个时间" in (await staff_says(forum, wu, "next Monday"))[0].plain
    assert "已经过去" in (await staff_says(forum, wu, "2020-01-01 09:00"))[0].plain
    await staff_presses(forum, wu, "取消")
    await asyncio.sleep(1.5)  # a broadcaster round
    assert await worker.quiet(0.3) == []
    async with hotline.sessions() as session:
        assert (await session.exec(select(Broadcast))).all() == []


async def test_a_long_text_cannot_take_a_picture(api, desk) -> None:
    hotline, forum = desk
    wu = api.user(COORDINATOR_WU[0], "Wu")
    await staff_says(forum, wu, "/broadcast")
    await staff_says(forum, wu, "长" * 1500)
    await staff_presses(forum, wu, "跳过")
    forum.send_photo(wu)
    refused = (await answer(forum))[0].plain  # Telegram's 1,024, less the way out
    assert "配图片时文字最多 998 个字" in refused and "1500" in refused


async def test_pause_resume_and_cancel_from_the_progress_message(api, start_hotline) -> None:
    # One notice a second, two handed to the outbox at a time: a pause stops the rest.
    hotline, forum = await start_desk(
        api, start_hotline, COUNSELLOR_LI, COORDINATOR_WU, broadcast_per_second=1
    )
    wu = api.user(COORDINATOR_WU[0], "Wu")
    li = api.user(COUNSELLOR_LI[0], "Li")
    workers = [(await worker_in(api, 6500 + n, "English"))[0] for n in range(8)]
    await compose(forum, wu)
    await staff_presses(forum, wu, "现在发送")
    progress = None
    for _ in range(100):
        progress = next((m for m in forum.messages if "⏸ 暂停" in m.button_texts), None)
        if progress:
            break
        await asyncio.sleep(0.1)
    assert progress is not None, "the progress message, with its buttons"
    forum.press(li, "⏸ 暂停", message=progress)
    forum.press(wu, "⏸ 暂停", message=progress)
    await forum.quiet(0.3)
    async with hotline.sessions() as session:
        broadcast = (await session.exec(select(Broadcast))).one()
    assert broadcast.status == BroadcastStatus.PAUSED
    for _ in range(100):
        if "已暂停" in (progress.plain or ""):
            break
        await asyncio.sleep(0.1)
    assert "已暂停" in progress.plain and "▶ 继续" in progress.button_texts
    await asyncio.sleep(3)  # what the outbox held goes; nothing more is handed to it
    got = [await w.quiet(0.1) for w in workers]
    paused_at = sum(len(g) for g in got)
    assert 1 <= paused_at <= 5, "the pause held the rest back"
    forum.press(wu, "▶ 继续", message=progress)
    for _ in range(100):
        if "⏸ 暂停" in progress.button_texts:
            break
        await asyncio.sleep(0.1)
    assert "⏸ 暂停" in progress.button_texts and "已发送" in progress.plain, "sending again"
    await asyncio.sleep(1.5)
    got = [g + await w.quiet(0.1) for g, w in zip(got, workers, strict=True)]
    assert sum(len(g) for g in got) > paused_at, "the resume sent more"
    forum.press(wu, "⏹ 取消发送", message=progress)
    for _ in range(100):
        if "已取消" in (progress.plain or ""):
            break
        await asyncio.sleep(0.1)
    assert "已取消" in progress.plain and progress.button_texts == []
    await asyncio.sleep(2)
    got = [g + await w.quiet(0.1) for g, w in zip(got, workers, strict=True)]
    assert sum(len(g) for g in got) < 8 and all(len(g) <= 1 for g in got)


async def test_the_command_line_schedules_lists_and_cancels(api, desk, database_url) -> None:
    from tests.test_cli import hotline as run_cli

    hotline, forum = desk
    await worker_in(api, 6601, "English")
    env = {"DATABASE_URL": database_url}
    empty = run_cli("broadcast", "send", "--text-zh", " ", env=env)
    assert empty.returncode == 1 and "needed and not empty" in empty.stderr
    past = run_cli("broadcast", "send", "--text-zh", ZH, "--at", "2020-01-01 09:00", env=env)
    assert past.returncode == 1 and "has passed" in past.stderr
    nobody = run_cli("broadcast", "send", "--text-zh", ZH, "--district", "yushan", env=env)
    assert nobody.returncode == 1 and "nobody" in nobody.stderr
    later = run_cli("broadcast", "send", "--text-zh", ZH, "--at", "2099-01-01 09:00", env=env)
    assert later.returncode == 0 and "to 1 worker(s)" in later.stdout, later.stderr
    listed = run_cli("broadcast", "list", env=env)
    assert "scheduled" in listed.stdout and "command line" in listed.stdout
    await asyncio.sleep(1.5)  # a round of the broadcaster: not its time yet
    async with hotline.sessions() as session:
        assert (await session.get(Broadcast, 1)).status == BroadcastStatus.SCHEDULED
    assert run_cli("broadcast", "cancel", "1", env=env).returncode == 0
    again = run_cli("broadcast", "resume", "1", env=env)
    assert again.returncode == 1 and "cancelled" in again.stderr


@pytest.mark.slow
async def test_kill_9_mid_broadcast_resumes_and_sends_nobody_two(api, database_url) -> None:
    from db.session import create_engine, session_factory
    from tests.processes import hotline_process, killed_after
    from tests.test_cli import hotline as run_cli

    engine = create_engine(database_url)
    people = [6700 + n for n in range(12)]
    async with session_factory(engine)() as session, session.begin():
        for user_id in people:
            api.user(user_id, language_code="en")
            session.add(Person(channel="telegram", external_id=str(user_id), language="en"))
    scheduled = run_cli("broadcast", "send", "--text-zh", ZH, env={"DATABASE_URL": database_url})
    assert scheduled.returncode == 0, scheduled.stderr
    api.hold("sendMessage")
    with killed_after(hotline_process(api, database_url, HOTLINE_BROADCAST_PER_SECOND="5")):
        await api.until_held("sendMessage", timeout=30)  # a notice is "sending" now
    api.release("sendMessage")  # whether Telegram took the dead run's calls, nobody knows
    restarted = hotline_process(api, database_url, HOTLINE_BROADCAST_PER_SECOND="5")
    try:
        for _ in range(300):
            async with session_factory(engine)() as session:
                broadcast = (await session.exec(select(Broadcast))).one()
            if broadcast.status == BroadcastStatus.DONE:
                break
            await asyncio.sleep(0.1)
        assert broadcast.status == BroadcastStatus.DONE
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(20) == 0
        log = restarted.stderr.read()
    async with session_factory(engine)() as session:
        statuses = [r.status for r in (await session.exec(select(BroadcastDelivery))).all()]
    await engine.dispose()
    copies = [sum(ZH in (m.plain or "") for m in api.user(u).messages) for u in people]
    assert max(copies) == 1, "nobody got it twice"
    unknown = statuses.count(DeliveryStatus.UNKNOWN)
    assert unknown >= 1 and statuses.count(DeliveryStatus.SENT) == len(people) - unknown
    assert "reported as unknown" in log
    assert sum(copies) >= len(people) - unknown, "everyone not unknown got it"


async def people_with(session, *rows) -> list[Person]:
    """People as the audience sees them: (external id, language, extra fields)."""
    made = []
    for external_id, language, extra in rows:
        person = Person(channel="telegram", external_id=str(external_id), language=language)
        for name, value in extra.items():
            setattr(person, name, value)
        session.add(person)
        made.append(person)
    await session.flush()
    return made


async def test_audiences_by_segment(database_url) -> None:
    from db.broadcasts import audience_size
    from db.models import JobSubscription, Ticket, TicketStatus, utcnow
    from db.session import create_engine, session_factory

    engine = create_engine(database_url)
    now = utcnow()
    async with session_factory(engine)() as session, session.begin():
        zh, en, jobs, ticketed, stopped, blocked, forgotten = await people_with(
            session,
            (1, "zh", {}),
            (2, "en", {}),
            (3, "zh", {}),
            (4, None, {}),
            (5, "zh", {"notices_off_at": now}),
            (6, "en", {"blocked_at": now}),
            (7, "zh", {"forgotten_at": now}),
        )
        session.add(JobSubscription(person_id=jobs.id, district="yushan"))
        session.add(JobSubscription(person_id=stopped.id))
        session.add(
            Ticket(
                reference="HL-2026-000001",
                kind="complaint",
                person_id=ticketed.id,
                language="zh",
                district="zhoushi",
                status=TicketStatus.CLAIMED,
            )
        )
        session.add(
            Ticket(
                reference="HL-2026-000002",
                kind="complaint",
                person_id=en.id,
                language="en",
                district="zhoushi",
                status=TicketStatus.CLOSED,
            )
        )
    async with session_factory(engine)() as session:

        async def size(kind, value=None):
            found = await audience_size(session, audience={"kind": kind, "value": value})
            return found.total, found.by_language

        assert await size("all") == (4, {"zh": 2, "en": 1, None: 1})
        assert (await size("language", "en"))[0] == 1
        assert (await size("district", "yushan"))[0] == 1, "a job alert there"
        assert (await size("district", "zhoushi"))[0] == 2, "a ticket there, open or not"
        assert (await size("jobs"))[0] == 1, "the one who stopped notices is left out"
        assert (await size("open_ticket"))[0] == 1
    await engine.dispose()


async def test_a_blocked_worker_is_marked_and_a_429_is_waited_out(api, desk) -> None:
    hotline, forum = desk
    wu = api.user(COORDINATOR_WU[0], "Wu")
    first, _ = await worker_in(api, 6801, "English")
    second, _ = await worker_in(api, 6802, "English")
    first.blocked = True
    api.fail("sendMessage", status=429, retry_after=1, times=1, chat_id=second.user["id"])
    await compose(forum, wu)
    await staff_presses(forum, wu, "现在发送")
    (got,) = await notices(hotline, second)
    assert len(got) == 1 and got[0].plain.startswith(EN), "sent once the 429 was waited out"
    async with hotline.sessions() as session:
        rows = {r.person_id: r.status for r in (await session.exec(select(BroadcastDelivery)))}
        blocked = (await session.exec(select(Person).where(Person.external_id == str(6801)))).one()
    assert sorted(rows.values()) == [DeliveryStatus.BLOCKED, DeliveryStatus.SENT]
    assert blocked.blocked_at is not None, "skipped by the next broadcast"


async def test_two_broadcasts_at_once_both_arrive(api, desk, database_url) -> None:
    from tests.test_cli import hotline as run_cli

    hotline, forum = desk
    workers = [(await worker_in(api, 6900 + n, "English"))[0] for n in range(4)]
    env = {"DATABASE_URL": database_url}
    for text in ("第一条通知", "第二条通知"):
        sent = run_cli("broadcast", "send", "--text-zh", text, "--text-en", text, env=env)
        assert sent.returncode == 0, sent.stderr
    for _ in range(100):
        async with hotline.sessions() as session:
            done = (await session.exec(select(Broadcast))).all()
        if [b.status for b in done] == [BroadcastStatus.DONE] * 2:
            break
        await asyncio.sleep(0.1)
    assert await hotline.telegram.sender.idle()
    for worker in workers:
        plain = [m.plain for m in await worker.quiet(0.2)]
        assert sorted(p.split("\n")[0] for p in plain) == ["第一条通知", "第二条通知"]


async def test_a_notice_set_for_later_waits_for_its_time(api, desk) -> None:
    hotline, forum = desk
    wu = api.user(COORDINATOR_WU[0], "Wu")
    worker, _ = await worker_in(api, 7001, "English")
    await compose(forum, wu)
    await staff_presses(forum, wu, "定时发送")
    answer = (await staff_says(forum, wu, "2099-01-05 09:00"))[0].plain
    assert "定于 2099-01-05 09:00（上海时间）" in answer
    await asyncio.sleep(1.5)
    assert await worker.quiet(0.3) == [], "not before its time"
    async with hotline.sessions() as session, session.begin():
        broadcast = (await session.exec(select(Broadcast))).one()
        assert broadcast.status == BroadcastStatus.SCHEDULED
        assert broadcast.scheduled_at.astimezone(UTC) == datetime(2099, 1, 5, 1, 0, tzinfo=UTC)
        broadcast.scheduled_at = hotline.engine.clock()  # its time has come
        session.add(broadcast)
    (got,) = await notices(hotline, worker)
    assert len(got) == 1 and got[0].plain.startswith(EN)
