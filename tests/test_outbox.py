"""One outbox, paced per destination: a worker's reply never waits behind the staff group's
20 messages a minute; a 429 pauses only the destination that got it; a blocked worker stops
the sending to them alone; order per topic and nothing lost across a restart or a kill -9 at
"sending" (which may repeat that one message, and says so).

Tests of pacing run against a local Bot API server with Telegram's limits. The staff group's
minute is played 20 times faster, on the server's clock and the hotline's pacer alike, so a
surge drains in seconds instead of minutes."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from sqlmodel import select

from bot.channels.telegram import CHANNEL
from bot.delivery.items import to_person
from bot.delivery.pacing import Pacer, Paces
from db import outbox
from db.models import OutboxItem, OutboxStatus, Pace, Person, Ticket, TicketMessage, utcnow
from handlers.messages import Reply
from local_servers.telegram import LocalBotApi, TelegramLimits, busiest_window
from tests import desk
from tests.conversation import replies, say, texts, wage_complaint
from tests.processes import hotline_process, killed_after
from tests.test_mediation import card_of

SPEED = 20  # the staff group's minute lasts three seconds


def fast_clock() -> float:
    return time.monotonic() * SPEED


@pytest.fixture
async def limited_api():
    """Telegram's group limit, its minute sped up. The private chats' and the bot's overall
    limits are lifted: the sped-up clock would make their seconds twenty times shorter than
    the pacer's, and their pace is tested in tests/test_pacing.py and bench/surge.py."""
    limits = TelegramLimits(private_burst=None, private_per_second=None, overall_per_second=None)
    async with LocalBotApi(limits=limits, clock=fast_clock) as server:
        yield server


async def start_desk(api: LocalBotApi, start_hotline, **settings):
    hotline, forum = await desk.start_desk(api, start_hotline, **settings)
    # The hotline paces the group by the same sped-up minute; its margin for the time between
    # taking a slot and the message arriving stays the real second that GROUP_WINDOW (61 s)
    # keeps, not a twentieth of it. A quarter of a second was too little on a loaded 2-core
    # machine: one window's first message arrived late and its 21st in time (a 429 in CI).
    hotline.telegram.pacer = Pacer(
        Paces(
            overall_per_second=1000,  # as start_hotline lifts it: only the group is paced here
            chat_burst=1000,
            chat_per_second=1000,
            group_window=60 / SPEED + 1.0,
        )
    )
    await desk.register(hotline, desk.COUNSELLOR_LI)
    return hotline, forum


async def to_review(worker) -> None:
    for answer in (*wage_complaint(), "done", "skip", "Stay anonymous"):
        await say(worker, answer)


@pytest.fixture
def api(limited_api):  # the hotline under test talks to the limited server
    return limited_api


async def test_a_surge_of_complaints_waits_on_the_staff_group_not_on_each_other(
    api: LocalBotApi, start_hotline
) -> None:
    hotline, forum = await start_desk(api, start_hotline)
    workers = [api.user(5100 + n, language_code="en") for n in range(15)]
    await asyncio.gather(*(to_review(worker) for worker in workers))
    for worker in workers:
        worker.press("Submit")
    got = await asyncio.gather(*(replies(worker) for worker in workers))
    group_when_all_answered = len(forum.messages)
    assert all("complaint number is HL-" in texts(answer) for answer in got)
    # 15 topics and 15 cards are 30 messages, more than a group takes in a minute: every
    # worker had their answer while the staff group was still being paced.
    assert group_when_all_answered < 30
    for _ in range(200):
        if len([m for m in forum.messages if m.button_texts]) == 15:
            break
        await asyncio.sleep(0.1)
    cards = [m for m in forum.messages if m.button_texts]
    references = sorted(texts(got[n]).split("number is ")[1].split(".")[0] for n in range(15))
    assert sorted(next(r for r in references if r in c.plain) for c in cards) == references
    assert len(forum.topics) == 15, "one topic a ticket"
    for card in cards:  # each card is the first message of its own topic
        assert forum.topic_messages(card.message_thread_id)[0] is card
    assert api.rate_limited == [], "the hotline kept Telegram's pace: nothing was refused"
    assert busiest_window(api.sent_at[desk.STAFF_CHAT], 60.0) <= 20


async def test_a_429_on_the_staff_group_does_not_hold_up_the_workers(
    api: LocalBotApi, start_hotline
) -> None:
    hotline, forum = await start_desk(api, start_hotline)
    first = api.user(5201, language_code="en")
    await to_review(first)
    api.fail("createForumTopic", status=429, retry_after=2, times=3)  # 2 s each: 6 s paused
    assert "complaint number is HL-" in texts(await say(first, "Submit"))
    others = [api.user(5202 + n, language_code="en") for n in range(3)]
    for worker in others:  # answered at once, while the group waits out its 429s
        assert "Choose a language" in texts(await say(worker, "/start"))
        assert "How can we help?" in texts(await say(worker, "English"))
    assert not [m for m in forum.messages if m.button_texts], "the group is still paused"
    for _ in range(150):
        if [m for m in forum.messages if m.button_texts]:
            break
        await asyncio.sleep(0.1)
    assert len([m for m in forum.messages if m.button_texts]) == 1, "the card came after"


async def test_a_worker_who_blocked_the_bot_is_sent_nothing_more(
    api: LocalBotApi, start_hotline
) -> None:
    hotline, forum = await start_desk(api, start_hotline)
    li = api.user(771, "Li")
    worker = api.user(5301, language_code="en")
    await to_review(worker)
    await say(worker, "Submit")
    await hotline.telegram.sender.idle()
    thread = max(forum.topics)
    forum.press(li, "认领", message=card_of(forum, thread))
    await worker.next_message()
    worker.blocked = True
    forum.send(li, "Are you there?", thread_id=thread)
    await hotline.telegram.sender.idle()
    await forum.quiet(0.5)
    assert "屏蔽了机器人" in forum.topic_messages(thread)[-1].plain  # blocked the bot
    async with hotline.sessions() as session:
        person = (await session.exec(select(Person).where(Person.external_id == "5301"))).one()
        rows = (await session.exec(select(OutboxItem))).all()
    assert person.blocked_at is not None
    assert any(row.status == OutboxStatus.BLOCKED for row in rows)
    # The worker comes back: they are no longer marked, and answered as usual.
    worker.blocked = False
    assert "How can we help?" in texts(await say(worker, "/menu"))
    async with hotline.sessions() as session:
        person = (await session.exec(select(Person).where(Person.external_id == "5301"))).one()
    assert person.blocked_at is None


async def test_a_topics_order_holds_across_a_restart(api: LocalBotApi, start_hotline) -> None:
    hotline, forum = await start_desk(api, start_hotline)
    worker = api.user(5401, language_code="en")
    await to_review(worker)
    await say(worker, "Submit")
    await hotline.telegram.sender.idle()
    api.hold("copyMessage")  # the relays into the topic are stuck on their way
    for n in range(5):
        await say(worker, f"more detail {n}")
    await api.until_held("copyMessage")
    api.fail("copyMessage", status=502, times=1)  # the stuck one fails as the bot stops
    stopping = asyncio.create_task(hotline.stop())
    await asyncio.sleep(0.2)
    api.release("copyMessage")
    await stopping
    restarted, _ = await start_desk(api, start_hotline)
    thread = max(forum.topics)
    for _ in range(100):
        relayed = [m.plain for m in forum.topic_messages(thread) if "more detail" in m.plain]
        if len(set(relayed)) == 5:
            break
        await asyncio.sleep(0.1)
    firsts = list(dict.fromkeys(relayed))  # a message in flight at the stop may repeat
    assert firsts == [f"more detail {n}" for n in range(5)]


@pytest.mark.slow
async def test_kill_9_while_sending_sends_it_again_and_says_so(
    api: LocalBotApi, database_url: str
) -> None:
    worker = api.user(5501, language_code="en")
    with killed_after(hotline_process(api, database_url)):
        worker.send("/start")
        assert "Choose a language" in texts(await replies(worker, timeout=30))
        api.hold("sendMessage")
        worker.send("English")
        await api.until_held("sendMessage", timeout=15)  # the row is "sending" now
    api.release("sendMessage")  # whether Telegram took the dead bot's call, nobody knows
    restarted = hotline_process(api, database_url)
    try:
        answer, menu = "I will write to you in English", "How can we help?"
        # The held call may arrive now; the menu, behind it in the turn, only from the new run.
        for _ in range(3):
            if menu in texts(await replies(worker, timeout=30)):
                break
        await worker.quiet(1.0)
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(20) == 0
        log = restarted.stderr.read()
    # The turn's two replies were marked "sending" together, just before the first's call.
    assert "2 message(s) were being sent when the last run stopped" in log
    copies = sum(answer in m.plain for m in worker.messages)
    assert 1 <= copies <= 2, "the row in flight may repeat"
    assert sum(menu in m.plain for m in worker.messages) == 1, "the one behind it was not sent"


async def test_nothing_is_left_pending_and_sent_rows_keep_nothing(
    api: LocalBotApi, start_hotline
) -> None:
    hotline, forum = await start_desk(api, start_hotline)
    worker = api.user(5601, "Qiu Ling", language_code="en")
    await to_review(worker)
    await say(worker, "Submit")
    assert await hotline.telegram.sender.idle()
    async with hotline.sessions() as session:
        rows = (await session.exec(select(OutboxItem))).all()
        ticket = (await session.exec(select(Ticket))).one()
    assert rows and {row.status for row in rows} == {OutboxStatus.SENT}
    assert all(row.body == {} and row.lane == "" for row in rows)
    assert ticket.topic_id is not None


async def test_texts_waiting_for_the_staff_group_go_as_one_post(
    api: LocalBotApi, start_hotline
) -> None:
    hotline, forum = await start_desk(api, start_hotline)
    hotline.telegram.pacer = Pacer(  # one message into the group every two seconds
        Paces(chat_burst=1000, chat_per_second=1000, group_messages=1, group_window=2.0)
    )
    worker = api.user(5701, language_code="en")
    await to_review(worker)
    await say(worker, "Submit")
    for n in range(3):  # while the topic and the card wait their turn
        await say(worker, f"and another thing {n}")
    assert await hotline.telegram.sender.idle(timeout=20)
    thread = max(forum.topics)
    posted = forum.topic_messages(thread)
    assert posted[0].button_texts, "the card first"
    merged = [m for m in posted if "another thing" in m.plain]
    assert len(merged) == 1, [m.plain for m in posted]
    text = merged[0].plain
    assert text.index("another thing 0") < text.index("another thing 1") < text.index("thing 2")
    assert text.count("工友") == 3, "each merged text says who wrote it"
    async with hotline.sessions() as session:
        entries = (await session.exec(select(TicketMessage))).all()
    relayed = [e for e in entries if e.text and "another thing" in e.text]
    assert {e.staff_message_id for e in relayed} == {merged[0].message_id}


async def test_a_turns_replies_go_as_one_message_while_the_bot_is_at_its_rate(
    api: LocalBotApi, start_hotline
) -> None:
    hotline = await start_hotline()
    hotline.telegram.pacer = Pacer(Paces(overall_per_second=1, chat_burst=1000))
    worker = api.user(5801, language_code="en")
    assert "Choose a language" in texts(await say(worker, "/start"))
    got = await say(worker, "English")  # the bot's second is spent: its two replies wait
    assert len(got) == 1
    assert "I will write to you in English" in got[0].plain and "How can we help?" in got[0].plain
    assert got[0].button_texts, "with the question's buttons"


async def test_a_restarted_run_keeps_the_staff_groups_minute(
    api: LocalBotApi, start_hotline
) -> None:
    hotline, forum = await desk.start_desk(api, start_hotline)
    worker = api.user(5801, language_code="en")
    await to_review(worker)
    await say(worker, "Submit")
    assert await hotline.telegram.sender.idle()
    await hotline.stop()
    into_group = len(api.sent_at[desk.STAFF_CHAT])
    assert into_group >= 2, "the topic and the card"
    restarted = await start_hotline(staff_chat_id=desk.STAFF_CHAT)
    pacer, group = restarted.telegram.pacer, str(desk.STAFF_CHAT)
    for _ in range(200):  # the poller seeds the pace once it has drained Telegram's backlog
        if pacer.group_counted(group):
            break
        await asyncio.sleep(0.05)
    assert pacer.group_counted(group) == into_group


async def test_a_topic_request_is_dated_when_it_goes_not_while_it_waits_its_turn(
    api: LocalBotApi, start_hotline
) -> None:
    """A restart counts the group's last minute from these dates: one noted before a wait in
    the pace would leave the minute before the restart undercounted (a 429 after it)."""
    hotline, forum = await start_desk(api, start_hotline)
    worker = api.user(5811, language_code="en")
    await to_review(worker)
    api.fail("createForumTopic", status=429, retry_after=2, times=1)
    pressed = utcnow()
    await say(worker, "Submit")
    for _ in range(150):
        if forum.topics:
            break
        await asyncio.sleep(0.05)
    assert forum.topics, "the topic opened once the 429 was waited out"
    async with hotline.sessions() as session:
        ticket = (await session.exec(select(Ticket))).one()
    waited = ticket.topic_requested_at.replace(tzinfo=None) - pressed.replace(tzinfo=None)
    assert waited.total_seconds() >= 1.5, "dated after the two seconds the group was paused"


async def test_a_stop_sets_back_what_only_waited_for_the_groups_pace(
    api: LocalBotApi, start_hotline, monkeypatch, caplog
) -> None:
    """Rows with the channel that never reached Telegram (the group's minute was full) go
    back to pending at a stop: the next start sends them once, without a "may repeat"."""
    hotline, forum = await desk.start_desk(api, start_hotline)
    group = str(desk.STAFF_CHAT)
    hotline.telegram.pacer.seed_group(group, [0.0] * 20)  # a full minute, just now
    worker = api.user(5821, language_code="en")
    await to_review(worker)
    await say(worker, "Submit")
    for _ in range(100):
        async with hotline.sessions() as session:
            sending = (
                await session.exec(select(OutboxItem).where(OutboxItem.pace == Pace.GROUP))
            ).all()
        if any(row.status == OutboxStatus.SENDING for row in sending):
            break
        await asyncio.sleep(0.05)
    assert any(row.status == OutboxStatus.SENDING for row in sending), "the card waits its pace"
    monkeypatch.setattr("bot.delivery.sender.STOP_GRACE", 0.3)
    await hotline.stop()
    async with hotline.sessions() as session:
        rows = (await session.exec(select(OutboxItem).where(OutboxItem.pace == Pace.GROUP))).all()
    assert rows and {row.status for row in rows} == {OutboxStatus.PENDING}
    assert not forum.topics
    caplog.clear()
    await start_hotline(staff_chat_id=desk.STAFF_CHAT)
    for _ in range(100):
        if [m for m in forum.messages if m.button_texts]:
            break
        await asyncio.sleep(0.1)
    assert len([m for m in forum.messages if m.button_texts]) == 1, "the card, once"
    assert "were being sent when the last run stopped" not in caplog.text


async def at_the_start(api: LocalBotApi, start_hotline, worker_id: int):
    """A hotline without a staff group, and a worker it has greeted."""
    hotline = await start_hotline()
    worker = api.user(worker_id, language_code="en")
    await say(worker, "/start")
    await worker.quiet(0.3)
    return hotline, worker


async def test_rows_another_process_wrote_are_sent_within_seconds(
    api: LocalBotApi, start_hotline
) -> None:
    hotline, worker = await at_the_start(api, start_hotline, 5901)
    # As `hotline jobs import` does from its own process: rows in the outbox, nothing else.
    async with hotline.sessions() as session, session.begin():
        await outbox.add_items(
            session,
            items=to_person(CHANNEL, str(worker.id), [Reply("New jobs near you")]),
            now=utcnow(),
        )
    got = await worker.next_message(timeout=15)
    assert got.plain == "New jobs near you"


async def test_a_bulk_row_gives_way_to_conversation_in_the_pacer(
    api: LocalBotApi, start_hotline
) -> None:
    hotline, worker = await at_the_start(api, start_hotline, 5902)
    pacer, paced = hotline.telegram.pacer, []
    private = pacer.private

    async def recording(chat: str, *, bulk: bool = False) -> None:
        paced.append(bulk)
        await private(chat, bulk=bulk)

    pacer.private = recording
    alert = to_person(CHANNEL, str(worker.id), [Reply("3 new jobs")])[0]
    alert.pace = Pace.BULK  # as a job alert is queued
    async with hotline.sessions() as session, session.begin():
        await outbox.add_items(session, items=[alert], now=utcnow())
    assert (await worker.next_message(timeout=15)).plain == "3 new jobs"
    await say(worker, "English")
    assert paced[0] is True and paced[-1] is False


async def test_a_row_woken_twice_is_sent_once(database_url) -> None:
    """A refresh may read rows just committed before their writer wakes them; the writer's
    late wake must not send them again."""
    from bot.delivery.items import enqueue
    from bot.delivery.sender import Delivered, Sender
    from db.outbox import NewItem
    from db.session import create_engine, session_factory

    engine = create_engine(database_url)
    sessions = session_factory(engine)
    carried: list[str] = []

    async def carry_out(body: dict, pace: str) -> Delivered:
        carried.append(body["chat"])
        return Delivered("sent", [len(carried)])

    sender = Sender(sessions=sessions, carry_out=carry_out)
    items = [
        NewItem("telegram", Pace.BULK, f"telegram:chat:{7100 + n}", {"to": "chat", "chat": str(n)})
        for n in range(3)
    ]
    async with sessions() as session, session.begin():
        queued = await enqueue(session, items, now=utcnow())
    await sender.start()  # reads them as pending, as a refresh would
    assert await sender.idle()
    sender.wake(queued)  # the writer, late
    assert await sender.idle()
    await sender.stop()
    await engine.dispose()
    assert sorted(carried) == ["0", "1", "2"]


async def test_outbox_ids_never_come_back_after_the_migrations(database_url) -> None:
    """The sender knows rows by id: a row deleted (/forget) must not lend its id to the next.
    On SQLite that is AUTOINCREMENT, which a migration copying the table would lose."""
    from sqlalchemy import delete, text

    from db.outbox import NewItem
    from db.session import create_engine, session_factory

    engine = create_engine(database_url)
    sessions = session_factory(engine)
    item = NewItem("telegram", Pace.PRIVATE, "telegram:chat:1", {"to": "chat", "chat": "1"})
    async with sessions() as session, session.begin():
        (first,) = await outbox.add_items(session, items=[item], now=utcnow())
        await session.exec(delete(OutboxItem).where(OutboxItem.id == first))
    async with sessions() as session, session.begin():
        (second,) = await outbox.add_items(session, items=[item], now=utcnow())
    if engine.dialect.name == "sqlite":
        async with sessions() as session:
            found = await session.exec(text("SELECT sql FROM sqlite_master WHERE name = 'outbox'"))
            assert "AUTOINCREMENT" in found.one()[0]
    await engine.dispose()
    assert second > first
