"""What a worker may open and what staff may do with a ticket: one open conversation per
worker, a cap on open tickets (limits.open_tickets_per_person), only the ticket's holder or a
coordinator/admin decides it, and feedback only on a resolution, once."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from content.catalog import PACKAGED
from db.models import Ticket
from local_servers.telegram import LocalBotApi
from tests import conversation
from tests.conversation import press, replies, say, texts
from tests.desk import COORDINATOR_WU, COUNSELLOR_LI, COUNSELLOR_ZHOU, start_desk

CONVERSATION_OPEN = "You already have a conversation open with the staff"


@pytest.fixture
async def desk(api: LocalBotApi, start_hotline):
    return await start_desk(api, start_hotline, COUNSELLOR_LI, COUNSELLOR_ZHOU, COORDINATOR_WU)


def content_with_cap(folder: Path, cap: int) -> Path:
    """The packaged content/ with another limits.open_tickets_per_person."""
    copy = folder / "content"
    shutil.copytree(PACKAGED, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    settings = copy / "hotline.yaml"
    text = settings.read_text(encoding="utf-8")
    assert "open_tickets_per_person: 5" in text
    settings.write_text(
        text.replace("open_tickets_per_person: 5", f"open_tickets_per_person: {cap}"),
        encoding="utf-8",
    )
    return copy


async def all_tickets(hotline) -> list[Ticket]:
    """Every ticket (each test has one worker), oldest first."""
    async with hotline.sessions() as session:
        found = await session.exec(select(Ticket).order_by(Ticket.id))
        return list(found.all())


async def settle(seconds: float = 0.4) -> None:
    await asyncio.sleep(seconds)


def card_of(forum, reference: str):
    thread = next(t for t, topic in forum.topics.items() if topic["name"].startswith(reference))
    return next(m for m in forum.topic_messages(thread) if m.button_texts)


async def filed(api, forum, worker_id: int):
    """A worker who filed a complaint, its reference, and its card once in the staff group."""
    worker = api.user(worker_id, language_code="en")
    reference = await conversation.file_complaint(worker, photo=None)
    await settle()
    return worker, reference, card_of(forum, reference)


async def complaint_up_to_review(worker) -> str:
    """A complaint from the menu of a worker who has consented, up to its summary."""
    for answer in ("/complaint", *conversation.wage_complaint()[4:], "done", "skip"):
        await say(worker, answer)
    return texts(await say(worker, "Stay anonymous"))


# -- one conversation per worker, a cap on open tickets -------------------------------------


async def test_thirty_talks_in_a_row_give_one_ticket_and_one_topic(api, desk) -> None:
    hotline, forum = desk
    worker = api.user(3301, language_code="en")
    for answer in ("/start", "English", "/talk", "I agree"):
        await say(worker, answer)
    opened = texts(await say(worker, "message 0"))
    reference = opened.split("number ")[1].split(".")[0]
    for n in range(1, 15):  # 29 more: /talk, a message, /talk, a message, ...
        assert f"{CONVERSATION_OPEN}, number {reference}" in texts(await say(worker, "/talk"))
        assert f"Passed on to the staff ({reference})" in texts(await say(worker, f"message {n}"))
    assert CONVERSATION_OPEN in texts(await say(worker, "/talk"))
    await settle()
    found = await all_tickets(hotline)
    assert [(t.reference, t.kind, t.status) for t in found] == [(reference, "talk", "new")]
    assert len(forum.topics) == 1
    thread = next(iter(forum.topics))
    relayed = [m.plain for m in forum.topic_messages(thread) if m.plain.startswith("message")]
    assert relayed == [f"message {n}" for n in range(15)]


async def test_talk_to_a_person_in_the_menu_returns_to_the_open_conversation(api, desk) -> None:
    hotline, forum = desk
    worker = api.user(3302, language_code="en")
    for answer in ("/start", "English", "Talk to a person", "I agree"):
        await say(worker, answer)
    await say(worker, "first words")
    await say(worker, "/menu")
    assert CONVERSATION_OPEN in texts(await say(worker, "Talk to a person"))
    await say(worker, "more words")
    await settle()
    assert len(await all_tickets(hotline)) == 1 and len(forum.topics) == 1
    thread = next(iter(forum.topics))
    assert [m.plain for m in forum.topic_messages(thread) if "words" in (m.plain or "")] == [
        "first words",
        "more words",
    ]


async def test_crisis_words_flag_the_open_conversation_rather_than_open_another(api, desk) -> None:
    hotline, forum = desk
    worker = api.user(3308, language_code="en")
    for answer in ("/start", "English", "/talk", "I agree", "my boss shouts at me"):
        await say(worker, answer)
    assert CONVERSATION_OPEN in texts(await say(worker, "/talk"))
    assert "110" in texts(await say(worker, "I want to kill myself"))
    await settle()
    (ticket,) = await all_tickets(hotline)
    assert (ticket.kind, ticket.urgent, ticket.status) == ("talk", True, "new")
    assert len(forum.topics) == 1
    thread = next(iter(forum.topics))
    assert [m.plain for m in forum.topic_messages(thread)].count("I want to kill myself") == 1


async def test_at_the_cap_nothing_is_opened_and_the_worker_is_told_why(
    api: LocalBotApi, start_hotline, tmp_path: Path
) -> None:
    hotline, forum = await start_desk(api, start_hotline, content_dir=content_with_cap(tmp_path, 2))
    worker = api.user(3303, language_code="en")
    first = await conversation.file_complaint(worker, photo=None)
    assert "Please check your complaint" in await complaint_up_to_review(worker)
    second = texts(await say(worker, "Submit")).split("complaint number is ")[1].split(".")[0]
    assert "Please check your complaint" in await complaint_up_to_review(worker)
    refused = texts(await say(worker, "Submit"))
    assert "You already have 2 open cases" in refused and "not submitted" in refused
    assert "withdraw one you no longer need" in refused
    talk = texts(await say(worker, "/talk"))
    assert "You already have 2 open cases" in talk and "no new conversation" in talk
    await settle()
    assert [t.reference for t in await all_tickets(hotline)] == [first, second]
    assert len(forum.topics) == 2
    # Withdrawing one makes room, and the refused complaint's draft is still there.
    await say(worker, "/mytickets")
    await say(worker, "1")  # the newest first
    await say(worker, "Withdraw the complaint")
    await say(worker, "Yes, withdraw")
    resumed = texts(await say(worker, "File a complaint"))
    assert "still here" in resumed and "Please check your complaint" in resumed
    assert "complaint number is" in texts(await say(worker, "Submit"))
    assert len(await all_tickets(hotline)) == 3


# -- who may decide a ticket --------------------------------------------------------------


async def test_only_the_holder_or_a_coordinator_refers_resolves_or_closes(api, desk) -> None:
    hotline, forum = desk
    li, zhou, wu = api.user(771, "Li"), api.user(772, "Zhou"), api.user(778, "Wu")
    worker, _, card = await filed(api, forum, 3304)
    for button in ("转介", "已解决", "关闭"):  # unclaimed: a counsellor must claim it first
        forum.press(zhou, button, message=card)
        await settle(0.3)
        assert "请先认领这个工单" in zhou.callback_answers[-1]["text"]
        assert zhou.callback_answers[-1]["show_alert"] is True
    forum.press(li, "认领", message=card)
    await settle()
    for button in ("转介", "已解决", "关闭"):  # claimed by Li: not Zhou's to decide
        forum.press(zhou, button, message=card)
        await settle(0.3)
        assert "这个工单由 Counsellor Li 负责" in zhou.callback_answers[-1]["text"]
    assert not any("法律援助中心" in (m.plain or "") for m in forum.messages)  # no referral menu
    (ticket,) = await all_tickets(hotline)
    assert ticket.status == "claimed"
    forum.press(wu, "已解决", message=card)  # a coordinator may
    await settle()
    (ticket,) = await all_tickets(hotline)
    assert ticket.status == "resolved"
    assert "Was your problem solved?" in worker.messages[-1].plain


async def test_a_coordinator_may_close_an_unclaimed_ticket(api, desk) -> None:
    hotline, forum = desk
    wu = api.user(778, "Wu")
    worker, reference, card = await filed(api, forum, 3305)
    forum.press(wu, "关闭", message=card)
    await settle()
    (ticket,) = await all_tickets(hotline)
    assert ticket.status == "closed"
    assert f"{reference} is closed" in worker.messages[-1].plain


# -- feedback only on a resolution, once ----------------------------------------------------


async def test_feedback_is_taken_once_and_only_for_a_resolution(api, desk) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    worker, reference, card = await filed(api, forum, 3306)
    forum.press(li, "认领", message=card)
    await settle()
    forum.press(li, "已解决", message=card)
    await settle()
    forum.press(li, "关闭", message=card)  # closed right after it was resolved: still rateable
    await settle()
    await worker.quiet(0.2)
    question = next(m for m in worker.messages if "Was your problem solved?" in m.plain)
    worker.press("Yes, solved", message=question)
    rate = (await replies(worker))[-1]
    assert "rate the help" in rate.plain
    assert "Thank you for your rating" in texts(await press(worker, "4"))
    worker.press("5", message=rate)
    assert f"already rated the help for {reference}" in texts(await replies(worker))
    worker.press("No, not solved", message=question)
    assert f"already answered for {reference}" in texts(await replies(worker))
    (ticket,) = await all_tickets(hotline)
    assert (ticket.solved, ticket.rating) == (True, 4)
    await say(worker, "They have still not paid")  # reopens the ticket
    worker.press("2", message=rate)
    got = texts(await replies(worker))
    assert f"{reference} was opened again" in got and "nothing to rate yet" in got
    (ticket,) = await all_tickets(hotline)
    assert (ticket.status, ticket.rating) == ("claimed", 4)


async def test_feedback_on_a_ticket_never_resolved_is_refused(api, desk) -> None:
    hotline, forum = desk
    worker = api.user(3307, language_code="en")
    await conversation.file_complaint(worker, photo=None)
    (ticket,) = await all_tickets(hotline)
    for data in (f"feedback.{ticket.id}|solved", f"rating.{ticket.id}|5"):
        api.push_update(
            {
                "callback_query": {
                    "id": f"forged-{data}",
                    "from": worker.user,
                    "chat_instance": "x",
                    "data": data,
                    "message": worker.last.raw,
                }
            }
        )
        assert "has not been resolved" in texts(await replies(worker))
    (ticket,) = await all_tickets(hotline)
    assert (ticket.solved, ticket.rating) == (None, None)
