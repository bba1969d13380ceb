"""A worker and a counsellor acting on one ticket in the same moment: both presses arrive in
one getUpdates batch, so the worker's lane and the topic's lane run at once (on PostgreSQL
truly at once; on SQLite one after the other, through the same code). Exactly one wins, the
audit trail shows a possible path, and the loser is told what happened."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from db.models import Ticket, TicketEvent
from local_servers.telegram import LocalBotApi
from tests import conversation
from tests.conversation import say, texts
from tests.desk import COUNSELLOR_LI, start_desk

ROUNDS = 4  # each order of the two presses twice
CLAIMED_NOTICE = "is now handling your case"


@pytest.fixture
async def desk(api: LocalBotApi, start_hotline):
    return await start_desk(api, start_hotline, COUNSELLOR_LI)


async def idle(api: LocalBotApi) -> None:
    """Until the bot waits in its long poll with nothing queued: what is pushed next comes
    back in one getUpdates."""
    for _ in range(500):
        if api.polling and api.pending_updates == 0:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the bot never went back to polling")


async def case(api: LocalBotApi, forum, worker_id: int):
    """A worker's complaint and its card in the staff group."""
    worker = api.user(worker_id, language_code="en")
    reference = await conversation.file_complaint(worker, photo=None)
    for _ in range(100):
        card = next(
            (
                m
                for thread in forum.topics
                if forum.topics[thread]["name"].startswith(reference)
                for m in forum.topic_messages(thread)
                if m.button_texts
            ),
            None,
        )
        if card is not None:
            return worker, reference, card
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no card for {reference}")


async def events_of(hotline, reference: str) -> tuple[Ticket, list[tuple[str | None, str]]]:
    async with hotline.sessions() as session:
        ticket = (await session.exec(select(Ticket).where(Ticket.reference == reference))).one()
        events = await session.exec(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        )
        return ticket, [(e.from_status, e.to_status) for e in events.all()]


def assert_possible(path: list[tuple[str | None, str]]) -> None:
    """Every event starts where the one before it ended."""
    previous = None
    for from_status, to_status in path:
        assert from_status == previous, path
        previous = to_status


def press_together(n: int, worker, button: str, forum, counsellor, card) -> None:
    """Queues the worker's press and the counsellor's Claim for the same getUpdates, the
    worker's first in even rounds and the counsellor's first in odd ones."""
    presses = [lambda: worker.press(button), lambda: forum.press(counsellor, "认领", message=card)]
    for press in presses if n % 2 == 0 else reversed(presses):
        press()


async def both_done(worker, li, answers_before: int) -> None:
    """The worker's reply and the counsellor's pop-up have both come back."""
    await worker.quiet(0.4)
    for _ in range(250):
        if len(li.callback_answers) > answers_before:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("the Claim press was never answered")


async def test_withdraw_and_claim_at_once_have_one_winner(api, desk) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    outcomes = []
    for n in range(ROUNDS):
        worker, reference, card = await case(api, forum, 3100 + n)
        await say(worker, "/mytickets")
        await say(worker, "1")
        assert "really want to withdraw" in texts(await say(worker, "Withdraw the complaint"))
        await idle(api)
        answers_before, seen = len(li.callback_answers), len(worker.messages)
        press_together(n, worker, "Yes, withdraw", forum, li, card)
        await both_done(worker, li, answers_before)
        await asyncio.sleep(0.3)  # the winner's notices to the other side
        ticket, path = await events_of(hotline, reference)
        assert_possible(path)
        told_worker = texts(worker.messages[seen:])
        alert = li.callback_answers[-1]
        if ticket.status == "withdrawn":
            assert path == [(None, "new"), ("new", "withdrawn")]
            assert ticket.assignee_id is None
            assert f"{reference} is withdrawn" in told_worker
            assert CLAIMED_NOTICE not in told_worker
            assert alert["show_alert"] is True and "工友刚刚撤回了这个工单" in alert["text"]
        else:
            assert ticket.status == "claimed"
            assert path == [(None, "new"), ("new", "claimed")]
            assert ticket.assignee_id is not None
            assert f"Counsellor Li {CLAIMED_NOTICE} {reference}" in told_worker
            assert f"{reference} has changed in the meantime" in told_worker
            assert "It was not withdrawn" in told_worker and "is withdrawn" not in told_worker
            assert "认领" not in (alert.get("text") or "")  # no "already claimed" pop-up
        outcomes.append(ticket.status)
    assert len(outcomes) == ROUNDS


async def test_forget_and_claim_at_once_end_closed(api, desk) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    for n in range(ROUNDS):
        worker, reference, card = await case(api, forum, 3200 + n)
        assert "really want to delete" in texts(await say(worker, "/forget"))
        await idle(api)
        answers_before, seen = len(li.callback_answers), len(worker.messages)
        press_together(n, worker, "Yes, delete", forum, li, card)
        await both_done(worker, li, answers_before)
        await asyncio.sleep(0.3)
        ticket, path = await events_of(hotline, reference)
        assert_possible(path)
        assert ticket.status == "closed"
        told_worker = [m.plain for m in worker.messages[seen:]]
        assert any("personal details are deleted" in text for text in told_worker)
        alert = li.callback_answers[-1]
        if path == [(None, "new"), ("new", "closed")]:  # the forget came first
            assert not any(CLAIMED_NOTICE in text for text in told_worker), told_worker
            assert ticket.assignee_id is None
            assert alert["show_alert"] is True and "已结束" in alert["text"]
        else:  # the claim committed first, the forget then closed the claimed ticket
            assert path == [(None, "new"), ("new", "claimed"), ("claimed", "closed")]
            assert not alert.get("text")  # the claim went through
            # Its notice was queued before the forget committed: it may reach the worker
            # before the forget's reply, never after (they are nobody to the hotline then).
            deleted_at = next(
                i for i, text in enumerate(told_worker) if "personal details are deleted" in text
            )
            assert not any(CLAIMED_NOTICE in text for text in told_worker[deleted_at:])
