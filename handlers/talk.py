"""A worker writes to a counsellor: "talk to a person" from the menu opens a ticket of its
own (one at a time: asking again returns to it); afterwards, anything the worker sends
outside a question goes to their ticket's topic (asking which one when several are open),
reopening a ticket that ended recently."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from db.models import OPEN_STATUSES, Ticket, TicketKind, TicketStatus
from db.tickets import (
    count_open_tickets,
    current_talk_ticket,
    last_from_worker,
    lock_ticket,
    open_ticket,
    ticket_of,
    tickets_to_write_to,
)
from handlers.complaint import consent
from handlers.flow import FINISHED, STAY, Flow, Goto, Outcome, Turn
from handlers.mediation import (
    post_card,
    relay_from_worker,
    relayed_already,
    reopenable,
    set_status,
)
from handlers.messages import Choice
from handlers.office_hours import say_if_after_hours

talk = Flow("talk", commands=["talk"])
AFTER_HOURS_REMINDER = timedelta(hours=3)  # say "we are closed" again after this much quiet
relay = Flow("relay")


async def ask_consent(turn: Turn) -> None:
    turn.say("complaint.consent.ask")


talk.step(
    "consent",
    expects="choice",
    when=lambda turn: turn.person.consented_at is None,
    options=lambda turn: [turn.option("agree"), turn.option("decline")],
    ask=ask_consent,
)(consent)


async def ask_first(turn: Turn) -> Outcome | None:
    """A worker has at most one open conversation: a new one returns to it. Over the cap on
    open tickets (limits.open_tickets_per_person) none is opened."""
    current = await current_talk_ticket(turn.session, person_id=turn.person.id)
    if current is not None:
        turn.say("talk.continue", reference=current.reference)
        return None
    if await at_ticket_cap(turn):
        turn.say("talk.too_many_open", limit=turn.catalog.open_tickets_per_person)
        return FINISHED
    turn.say("talk.first.ask")
    return None


@talk.step("first", expects="any", max_chars=4000, ask=ask_first)
async def first(turn: Turn) -> Outcome:
    """Sends the worker's message to their open conversation, or opens one with it."""
    if relayed_already(turn, turn.inbound.message_id):
        return FINISHED  # crisis words: the message went to an open or a new urgent ticket
    message = message_of(turn)
    if message is None:
        turn.say("talk.unsupported")
        return STAY
    current = await current_talk_ticket(turn.session, person_id=turn.person.id)
    if current is not None and await pass_on(turn, current, message):
        turn.say("talk.relayed", reference=current.reference)
        return FINISHED
    if await at_ticket_cap(turn):  # filed meanwhile: the message goes to an open ticket
        turn.say("talk.too_many_open", limit=turn.catalog.open_tickets_per_person)
        outcome = await write_to_counsellor(turn)
        return outcome if isinstance(outcome, Goto) else FINISHED
    ticket = await open_talk_ticket(turn)
    await relay_from_worker(turn, ticket, turn.person, message)
    turn.say("talk.opened", reference=ticket.reference)
    say_if_after_hours(turn)
    return FINISHED


async def at_ticket_cap(turn: Turn) -> bool:
    """Whether the worker has as many open tickets as one person may have."""
    count = await count_open_tickets(turn.session, person_id=turn.person.id)
    return count >= turn.catalog.open_tickets_per_person


async def open_talk_ticket(turn: Turn, *, urgent: bool = False) -> Ticket:
    """A ticket of kind "talk" (no form filled), with its topic and card."""
    ticket, _ = await open_ticket(
        turn.session,
        person_id=turn.person.id,
        kind=TicketKind.TALK,
        language=turn.t.language,
        prefix=turn.catalog.ticket_prefix,
        now=turn.now,
        evidence=[],
        author="worker",
        fields={"share_identity": False, "urgent": urgent},
    )
    post_card(turn, ticket, turn.person, [])
    return ticket


async def write_to_counsellor(
    turn: Turn, *, otherwise: Callable[[Turn], Outcome] | None = None
) -> Outcome:
    """A message outside any question: for the worker's ticket, if there is one to take it;
    typed text with no ticket to take it goes to `otherwise` (the city guide's search)."""
    if relayed_already(turn, turn.inbound.message_id):
        return STAY  # the crisis alert passed it on already
    message = message_of(turn)
    if message is None:
        turn.say("common.not_a_choice")
        return "main"
    since = turn.now - timedelta(days=turn.catalog.reopen_days)
    candidates = await tickets_to_write_to(
        turn.session, person_id=turn.person.id, ended_since=since
    )
    if not candidates:
        if otherwise is not None and turn.inbound.media is None and turn.text:
            return otherwise(turn)
        turn.say("common.not_a_choice")
        return "main"
    if len(candidates) == 1:
        _say_passed_on(turn, candidates[0], await pass_on(turn, candidates[0], message))
        return STAY
    listed = {str(t.id): f"{t.reference} · {turn.t(f'kinds.{t.kind}')}" for t in candidates}
    return Goto("relay", answers={"message": message, "listed": listed})


@relay.step(
    "which",
    expects="choice",
    options=lambda turn: [Choice(key, label) for key, label in turn.data["listed"].items()],
)
async def which(turn: Turn) -> Outcome:
    """Sends the waiting message to the ticket the worker chose."""
    ticket = await ticket_of(turn.session, person_id=turn.person.id, ticket_id=int(turn.choice))
    if ticket is not None:
        _say_passed_on(turn, ticket, await pass_on(turn, ticket, turn.data["message"]))
    return FINISHED


def _say_passed_on(turn: Turn, ticket: Ticket, passed: bool) -> None:
    turn.say("talk.relayed" if passed else "tickets.not_open", reference=ticket.reference)


async def pass_on(turn: Turn, ticket: Ticket, message: dict[str, Any]) -> bool:
    """Relays the message; an ended ticket is reopened by it, a waiting one is the worker's
    answer. The row is held from here to the commit: a counsellor's button waits for it.
    False, and nothing relayed, when the ticket can no longer take it (withdrawn, ended
    too long ago), perhaps a moment ago."""
    await lock_ticket(turn.session, ticket=ticket)
    if ticket.status not in OPEN_STATUSES and not reopenable(turn.catalog, ticket, turn.now):
        return False
    if reopenable(turn.catalog, ticket, turn.now):
        back_to = TicketStatus.CLAIMED if ticket.assignee_id else TicketStatus.NEW
        notice = ("mediation.reopened", {})
        await set_status(turn, ticket, back_to, actor="worker", notice=notice)
    elif ticket.status == TicketStatus.WAITING:
        await set_status(turn, ticket, TicketStatus.CLAIMED, actor="worker")
    last = await last_from_worker(turn.session, ticket_id=ticket.id)
    if last is None or turn.now - last > AFTER_HOURS_REMINDER:
        say_if_after_hours(turn)
    await relay_from_worker(turn, ticket, turn.person, message)
    return True


def message_of(turn: Turn) -> dict[str, Any] | None:
    """What of the inbound message a relay needs; None for what cannot be relayed."""
    inbound = turn.inbound
    media = inbound.media
    if media is not None and media.kind in ("sticker", "animation"):
        return None
    if media is None and not (inbound.text or "").strip():
        return None
    return {
        "message_id": inbound.message_id,
        "text": inbound.text,
        "reply_to": inbound.reply_to,
        "media_kind": media.kind if media else None,
        "media_file_id": media.file_id if media else None,
    }
