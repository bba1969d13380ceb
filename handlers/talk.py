"""A worker writes to a counsellor: "talk to a person" from the menu opens a ticket of its
own; afterwards, anything the worker sends outside a question goes to their ticket's topic
(asking which one when several are open), reopening a ticket that ended recently."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.messages import Choice
from db.models import Ticket, TicketKind, TicketStatus
from db.tickets import last_from_worker, open_ticket, ticket_of, tickets_to_write_to
from handlers.complaint import consent
from handlers.flow import FINISHED, STAY, Flow, Goto, Outcome, Turn
from handlers.mediation import (
    notice_in_topic,
    post_card,
    relay_from_worker,
    relayed_already,
    reopenable,
    set_status,
)
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


@talk.step("first", expects="any", max_chars=4000)
async def first(turn: Turn) -> Outcome:
    """Opens a ticket with the worker's first message and sends it to the counsellors."""
    if relayed_already(turn, turn.inbound.message_id):
        return FINISHED  # crisis words: an urgent ticket was opened with this very message
    message = message_of(turn)
    if message is None:
        turn.say("talk.unsupported")
        return STAY
    ticket = await open_talk_ticket(turn)
    await relay_from_worker(turn, ticket, turn.person, message)
    turn.say("talk.opened", reference=ticket.reference)
    say_if_after_hours(turn)
    return FINISHED


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


async def write_to_counsellor(turn: Turn) -> Outcome:
    """A message outside any question: for the worker's ticket, if there is one to take it."""
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
        turn.say("common.not_a_choice")
        return "main"
    if len(candidates) == 1:
        await pass_on(turn, candidates[0], message)
        turn.say("talk.relayed", reference=candidates[0].reference)
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
        await pass_on(turn, ticket, turn.data["message"])
        turn.say("talk.relayed", reference=ticket.reference)
    return FINISHED


async def pass_on(turn: Turn, ticket: Ticket, message: dict[str, Any]) -> None:
    """Relays the message; an ended ticket is reopened by it, a waiting one is the worker's
    answer."""
    if reopenable(turn.catalog, ticket, turn.now):
        back_to = TicketStatus.CLAIMED if ticket.assignee_id else TicketStatus.NEW
        await set_status(turn, ticket, back_to, actor="worker")
        notice_in_topic(turn, ticket, "mediation.reopened")
    elif ticket.status == TicketStatus.WAITING:
        await set_status(turn, ticket, TicketStatus.CLAIMED, actor="worker")
    last = await last_from_worker(turn.session, ticket_id=ticket.id)
    if last is None or turn.now - last > AFTER_HOURS_REMINDER:
        say_if_after_hours(turn)
    await relay_from_worker(turn, ticket, turn.person, message)


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
