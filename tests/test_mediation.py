"""Counsellors in the staff forum: a topic and card per ticket, the two-way relay, notes,
claims, referral, resolution with feedback, closing and reopening, and who may act."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from db.models import Delivery, Direction, Ticket, TicketEvent, TicketMessage
from local_servers.telegram import LocalBotApi
from tests import conversation
from tests.conversation import say, texts
from tests.desk import ADMIN_WU, COUNSELLOR_LI, COUNSELLOR_ZHOU, STAFF_CHAT, start_desk


@pytest.fixture
async def desk(api: LocalBotApi, start_hotline):
    """A running hotline with a staff forum and two registered counsellors and an admin."""
    return await start_desk(api, start_hotline, COUNSELLOR_LI, COUNSELLOR_ZHOU, ADMIN_WU)


async def file_complaint(worker, *, anonymous: bool = True, photo: bool = True) -> str:
    return await conversation.file_complaint(
        worker,
        employer="Sunrise <b>Ltd</b>",
        photo="pay slip" if photo else None,
        anonymous=anonymous,
    )


def counsellor_alias(user) -> str:
    return {771: "Counsellor Li", 772: "Counsellor Zhou"}[user.id]


async def case(api, forum, worker_id: int):
    """A worker who filed a complaint without evidence, and its topic in the staff group."""
    worker = api.user(worker_id, language_code="en")
    reference = await file_complaint(worker, photo=False)
    await settle()
    thread = max(forum.topics)
    return worker, reference, thread


async def settle(seconds: float = 0.4) -> None:
    await asyncio.sleep(seconds)


def card_of(forum, thread_id: int):
    return next(m for m in forum.topic_messages(thread_id) if m.button_texts)


async def stored_messages(hotline, reference: str) -> list[TicketMessage]:
    async with hotline.sessions() as session:
        ticket = (await session.exec(select(Ticket).where(Ticket.reference == reference))).one()
        found = await session.exec(
            select(TicketMessage)
            .where(TicketMessage.ticket_id == ticket.id)
            .order_by(TicketMessage.id)
        )
        return list(found.all())


async def test_a_complaint_opens_one_topic_with_its_card_and_evidence(api, desk) -> None:
    hotline, forum = desk
    worker = api.user(1101, "Wang Secret", username="wangsecret", language_code="en")
    reference = await file_complaint(worker)
    await settle()
    assert len(forum.topics) == 1
    thread_id, topic = next(iter(forum.topics.items()))
    assert topic["name"] == f"{reference} · 投诉 · 拖欠工资 · 玉山镇"
    card = card_of(forum, thread_id)
    for fragment in (
        reference,
        "拖欠工资",
        "Sunrise <b>Ltd</b>",
        "8500 元",
        "Aug-Oct",
        "证据: 1 份",
        "工友: 匿名工友",
    ):
        assert fragment in card.plain
    assert card.button_texts == ["认领", "转介", "已解决", "关闭"]
    copies = [m for m in forum.topic_messages(thread_id) if m.kind == "photo"]
    assert len(copies) == 1 and copies[0].text == "pay slip"
    everything = " ".join((m.plain or "") for m in forum.messages) + topic["name"]
    assert "Wang" not in everything and "wangsecret" not in everything and "1101" not in everything


async def test_a_worker_who_shares_their_name_is_named_on_the_card(api, desk) -> None:
    hotline, forum = desk
    worker = api.user(1102, "Chen Ming", username="chenming", language_code="en")
    await file_complaint(worker, anonymous=False, photo=False)
    await settle()
    card = card_of(forum, next(iter(forum.topics)))
    assert "工友: Chen Ming @chenming (id 1102)" in card.plain


async def test_counsellor_and_worker_talk_through_the_topic(api, desk) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    worker, reference, thread = await case(api, forum, 1103)
    forum.press(li, "认领", message=card_of(forum, thread))
    assert "Counsellor Li is now handling your case" in (await worker.next_message()).plain
    sent = forum.send(li, "Do you have <your> contract?", thread_id=thread)
    signed = await worker.next_message()
    assert signed.plain == "Counsellor Li: Do you have <your> contract?"
    own = worker.send("No, never signed one.", reply_to=signed.message_id)
    assert "Passed on to the staff" in (await worker.next_message()).plain
    await settle()
    relayed = [m for m in forum.topic_messages(thread) if m.plain == "No, never signed one."]
    assert len(relayed) == 1 and relayed[0].reply_to_message_id == sent["message_id"]
    forum.send(li, "I will call them.", thread_id=thread, reply_to=relayed[0].message_id)
    answer = await worker.next_message()
    assert answer.plain == "Counsellor Li: I will call them."
    assert answer.reply_to_message_id == own["message_id"]
    forum.send(li, "! employer number is in the file", thread_id=thread)
    await settle()
    assert "内部备注已保存" in forum.topic_messages(thread)[-1].plain
    assert all("employer number" not in (m.plain or "") for m in worker.messages)
    transcript = await stored_messages(hotline, reference)
    kinds = [(m.direction, m.delivery_status) for m in transcript]
    assert kinds == [
        (Direction.TO_WORKER, Delivery.SENT),
        (Direction.FROM_WORKER, Delivery.SENT),
        (Direction.TO_WORKER, Delivery.SENT),
        (Direction.NOTE, None),
    ]


async def test_two_workers_and_two_counsellors_at_once_never_cross(api, desk) -> None:
    hotline, forum = desk
    counsellors = [api.user(771, "Li"), api.user(772, "Zhou")]
    workers = [api.user(1104, language_code="en"), api.user(1105, language_code="en")]
    for worker in workers:
        await file_complaint(worker, photo=False)
    await settle()
    threads = sorted(forum.topics)
    for counsellor, thread in zip(counsellors, threads, strict=True):
        forum.press(counsellor, "认领", message=card_of(forum, thread))
    await settle()
    for n in range(5):
        for counsellor, worker, thread in zip(counsellors, workers, threads, strict=True):
            forum.send(counsellor, f"to {worker.id} #{n}", thread_id=thread)
            worker.send(f"from {worker.id} #{n}")
    await settle(1.5)
    for counsellor, worker, thread in zip(counsellors, workers, threads, strict=True):
        got = [m.plain for m in worker.messages if ": to " in m.plain]
        assert got == [f"{counsellor_alias(counsellor)}: to {worker.id} #{n}" for n in range(5)]
        other = next(w for w in workers if w is not worker)
        topic_texts = [m.plain or "" for m in forum.topic_messages(thread)]
        assert [t for t in topic_texts if t.startswith("from")] == [
            f"from {worker.id} #{n}" for n in range(5)
        ]
        assert not any(str(other.id) in t for t in topic_texts)


async def test_someone_not_on_the_staff_cannot_act(api, desk) -> None:
    hotline, forum = desk
    stranger = api.user(990, "Stranger")
    worker, reference, thread = await case(api, forum, 1106)
    forum.press(stranger, "认领", message=card_of(forum, thread))
    forum.send(stranger, "hello worker", thread_id=thread)
    await settle()
    assert stranger.callback_answers[-1]["show_alert"] is True
    assert "只有登记过的工作人员" in stranger.callback_answers[-1]["text"]
    assert "只有登记过的工作人员" in forum.topic_messages(thread)[-1].plain
    assert all("hello worker" not in m.plain for m in worker.messages)
    async with hotline.sessions() as session:
        ticket = (await session.exec(select(Ticket).where(Ticket.reference == reference))).one()
    assert ticket.assignee_id is None and ticket.status == "new"


async def test_a_second_claim_is_told_who_has_the_ticket(api, desk) -> None:
    hotline, forum = desk
    li, zhou = api.user(771, "Li"), api.user(772, "Zhou")
    worker = api.user(1107, language_code="en")
    await file_complaint(worker, photo=False)
    await settle()
    card = card_of(forum, next(iter(forum.topics)))
    forum.press(li, "认领", message=card)
    await settle()
    forum.press(zhou, "认领", message=card)
    await settle()
    assert zhou.callback_answers[-1]["text"] == "这个工单已经由 Counsellor Li 认领了。"


async def test_a_worker_who_blocked_the_bot_shows_as_not_delivered(api, desk) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    worker, reference, thread = await case(api, forum, 1108)
    worker.blocked = True
    forum.send(li, "Are you there?", thread_id=thread)
    await settle()
    assert "没有送达工友" in forum.topic_messages(thread)[-1].plain
    assert (await stored_messages(hotline, reference))[-1].delivery_status == Delivery.BLOCKED


async def test_a_restart_between_worker_and_counsellor_loses_nothing(
    api, desk, start_hotline
) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    worker = api.user(1109, language_code="en")
    await file_complaint(worker, photo=False)
    await settle()
    thread = next(iter(forum.topics))
    await say(worker, "Please help quickly")
    await settle()
    await hotline.stop()
    await start_hotline(staff_chat_id=STAFF_CHAT)
    forum.send(li, "We are on it.", thread_id=thread)
    assert (await worker.next_message()).plain == "Counsellor Li: We are on it."
    assert any(m.plain == "Please help quickly" for m in forum.topic_messages(thread))


async def test_talk_to_a_person_and_choose_between_open_tickets(api, desk) -> None:
    hotline, forum = desk
    worker = api.user(1110, language_code="en")
    for answer in ("/start", "English", "Talk to a person", "I agree"):
        await say(worker, answer)
    for n in range(5):  # the first opens the ticket; the others, sent at once, follow it
        worker.send(f"hello {n}") if n else await say(worker, "hello 0")
    await settle(1.0)
    assert len(forum.topics) == 1
    first_thread = next(iter(forum.topics))
    assert [
        m.plain for m in forum.topic_messages(first_thread) if (m.plain or "").startswith("hello")
    ] == [f"hello {n}" for n in range(5)]
    assert "already have a conversation open" in texts(await say(worker, "Talk to a person"))
    for answer in ("/complaint", *conversation.wage_complaint()[4:], "done", "skip"):
        await say(worker, answer)
    await say(worker, "Stay anonymous")
    await say(worker, "Submit")  # a second open ticket: a complaint
    got = texts(await say(worker, "which one is this?"))
    assert "Which one is this message about?" in got
    second = texts(await say(worker, "1"))
    assert "Passed on to the staff" in second
    second_thread = max(forum.topics)
    assert any(m.plain == "which one is this?" for m in forum.topic_messages(second_thread))


async def test_refer_resolve_rate_close_and_reopen(api, desk) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    worker, reference, thread = await case(api, forum, 1111)
    card = card_of(forum, thread)
    forum.press(li, "认领", message=card)
    await settle()
    forum.press(li, "转介", message=card)
    await settle()
    forum.press(li, "法律援助中心")
    referred = await worker.next_messages(2)
    assert "Legal Aid Centre" in referred[-1].plain and "12348" in referred[-1].plain
    worker.send("Thank you, and they said to come back to you")
    await settle()
    forum.press(li, "已解决", message=card)
    question = (await worker.next_messages(2))[-1]
    assert "Was your problem solved?" in question.plain
    worker.press("Yes, solved")
    assert "rate the help" in (await worker.next_message()).plain
    worker.press("4")
    assert "Thank you for your rating" in (await worker.next_message()).plain
    forum.press(li, "关闭", message=card)
    await settle()
    assert forum.topics[thread]["closed"] is True
    assert "is closed" in worker.messages[-1].plain
    await say(worker, "They still have not paid")
    await settle()
    assert forum.topics[thread]["closed"] is False
    async with hotline.sessions() as session:
        ticket = (await session.exec(select(Ticket).where(Ticket.reference == reference))).one()
        events = (
            await session.exec(
                select(TicketEvent)
                .where(TicketEvent.ticket_id == ticket.id)
                .order_by(TicketEvent.id)
            )
        ).all()
    assert (ticket.solved, ticket.rating, ticket.referred_to) == (True, 4, "legal_aid")
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, "new"),
        ("new", "claimed"),
        ("claimed", "referred"),
        ("referred", "claimed"),
        ("claimed", "resolved"),
        ("resolved", "closed"),
        ("closed", "claimed"),
    ]
    assert {e.actor for e in events} == {"worker", "Counsellor Li"}


async def test_staff_command_is_for_admins(api, desk) -> None:
    hotline, forum = desk
    admin, li = api.user(779, "Wu"), api.user(771, "Li")
    forum.send(li, "/staff list")
    await settle()
    assert "只有管理员" in forum.messages[-1].plain
    forum.send(admin, "/staff add 773 counsellor Counsellor Sun")
    await settle()
    assert "已添加 Counsellor Sun（counsellor）" in forum.messages[-1].plain
    forum.send(admin, "/staff list")
    await settle()
    assert (
        "工作人员（4 人）" in forum.messages[-1].plain
        and "Counsellor Sun" in forum.messages[-1].plain
    )


async def test_forget_deletes_the_tickets_topics_in_the_staff_group(api, desk) -> None:
    hotline, forum = desk
    worker = api.user(1112, language_code="en")
    await file_complaint(worker)
    await settle()
    assert len(forum.topics) == 1
    await say(worker, "/forget")
    await say(worker, "Yes, delete")
    await settle()
    assert forum.topics == {} and len(api.calls("deleteForumTopic")) == 1
    async with hotline.sessions() as session:
        assert (await session.exec(select(Ticket))).one().status == "closed"
