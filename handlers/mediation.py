"""Tickets and the staff group: a topic per ticket with its card, messages relayed both ways,
and status changes told to both sides.

Used from the worker's side (a ticket opened, a message for the counsellor) and from the
staff's side (a counsellor's answer, a button on the card). Everything here only records
and queues `Outgoing` items; the channel sends them once the turn has committed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from content.catalog import Catalog, Translator
from db import tickets as ticket_queries
from db.models import (
    Delivery,
    Direction,
    Person,
    Staff,
    Ticket,
    TicketMessage,
    TicketStatus,
)
from handlers.messages import Choice, Inbound, Outgoing, Reply

CARD_ACTIONS = ("claim", "refer", "resolve", "close")
SIGNED = "mediation.signed"
NOT_DELIVERED = "mediation.not_delivered"
ENDED = (TicketStatus.RESOLVED, TicketStatus.REFERRED, TicketStatus.CLOSED)


class Work(Protocol):
    """What ticket work needs of the turn doing it, a worker's or a staff member's: the
    transaction, the list of what to send after it, the content and the time."""

    session: AsyncSession
    outgoing: list[Outgoing]
    catalog: Catalog
    now: datetime


def staff_texts(catalog: Catalog) -> Translator:
    return catalog.translator(catalog.staff_language)


def topic_title(catalog: Catalog, ticket: Ticket) -> str:
    """REF · category · district, in the staff's language (Telegram allows 128 characters)."""
    t = staff_texts(catalog)
    parts = [ticket.reference, str(t(f"kinds.{ticket.kind}"))]
    if ticket.category:
        parts.append(str(t(f"categories.{ticket.category}")))
    if ticket.district:
        parts.append(str(t(f"districts.{ticket.district}")))
    return " · ".join(parts)[:128]


def card(catalog: Catalog, ticket: Ticket, person: Person, *, evidence: int) -> Reply:
    """The ticket card: the answers, when the worker filed them (a card posted late, behind
    the staff group's backlog, still says when they wrote), and the worker's name only if
    they agreed to share it."""
    t = staff_texts(catalog)
    filed = _as_utc(ticket.created_at).astimezone(catalog.office_hours.timezone)
    text = t.render(
        "ticket_card.html.j2",
        ticket=ticket,
        evidence=evidence,
        kind=t(f"kinds.{ticket.kind}"),
        category=t(f"categories.{ticket.category}") if ticket.category else None,
        district=t(f"districts.{ticket.district}") if ticket.district else None,
        status=t(f"statuses.{ticket.status}"),
        channel=t(f"channels.{person.channel}"),
        worker=_identity(person) if ticket.share_identity else None,
        filed={"month": filed.month, "day": filed.day, "time": f"{filed:%H:%M}"},
    )
    choices = [Choice(action, str(t(f"card.{action}")), numbered=False) for action in CARD_ACTIONS]
    return Reply(str(text), choices, choice_tag=f"ticket.{ticket.id}")


def _as_utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _identity(person: Person) -> dict[str, Any]:
    return {"name": person.display_name, "username": person.username, "id": person.external_id}


def queue(work: Work, ticket: Ticket, **fields: Any) -> None:
    """Adds an Outgoing item about `ticket` to what the turn sends after it commits."""
    title = topic_title(work.catalog, ticket)
    work.outgoing.append(
        Outgoing(ticket_id=ticket.id, topic_title=title, topic_id=ticket.topic_id, **fields)
    )


def post_card(work: Work, ticket: Ticket, person: Person, evidence: list[TicketMessage]) -> None:
    """Opens the ticket's topic with its card, then copies the evidence into it."""
    reply = card(work.catalog, ticket, person, evidence=len(evidence))
    queue(work, ticket, action="post", to="topic", reply=reply)
    for item in evidence:
        if item.worker_message_id is not None:
            queue(
                work,
                ticket,
                action="copy",
                to="topic",
                worker=person.external_id,
                worker_channel=person.channel,
                copy_of=item.worker_message_id,
                record=item.id,
                as_text=_as_post(work, item.text) if item.media_kind is None else None,
            )


def _as_post(work: Work, text: str | None) -> Reply | None:
    """A worker's text as the staff read it in a post of its own (not a copy)."""
    if not text:
        return None
    return Reply(str(staff_texts(work.catalog)("mediation.worker_wrote", text=text)))


def notice_in_topic(work: Work, ticket: Ticket, key: str, **variables: Any) -> None:
    text = staff_texts(work.catalog)(key, **variables)
    queue(work, ticket, action="post", to="topic", reply=Reply(str(text)))


def tell_worker(
    work: Work,
    ticket: Ticket,
    person: Person,
    key: str,
    *,
    choices: list[Choice] | None = None,
    tag: str | None = None,
    **variables: Any,
) -> None:
    """A message to the worker in their ticket's language; a failure is said in the topic."""
    text = work.catalog.translator(ticket.language)(key, reference=ticket.reference, **variables)
    queue(
        work,
        ticket,
        action="post",
        to="worker",
        worker=person.external_id,
        worker_channel=person.channel,
        reply=Reply(str(text), choices or [], tag),
        on_failure=_not_delivered(work),
    )


def _not_delivered(work: Work) -> Reply:
    return Reply(str(staff_texts(work.catalog)(NOT_DELIVERED)))


async def relay_from_worker(
    work: Work, ticket: Ticket, person: Person, message: dict[str, Any]
) -> TicketMessage:
    """Keeps the worker's message in the transcript and copies it into the ticket's topic.
    `message`: message_id, text, media_kind, media_file_id, reply_to (worker-side ids)."""
    stored = await ticket_queries.add_ticket_message(
        work.session,
        ticket=ticket,
        direction=Direction.FROM_WORKER,
        author="worker",
        now=work.now,
        text=message.get("text"),
        media_kind=message.get("media_kind"),
        media_file_id=message.get("media_file_id"),
    )
    stored.worker_message_id = message.get("message_id")
    stored.delivery_status = Delivery.PENDING
    replied = await ticket_queries.message_by_worker_id(
        work.session, ticket_id=ticket.id, worker_message_id=message.get("reply_to")
    )
    text = message.get("text")
    # How it reads as a post: merged with others when the group's pace bites, and where a
    # copy is not possible (the worker writes on another channel than the staff group's).
    as_text = _as_post(work, text) if message.get("media_kind") is None else None
    queue(
        work,
        ticket,
        action="copy",
        to="topic",
        worker=person.external_id,
        worker_channel=person.channel,
        copy_of=message.get("message_id"),
        record=stored.id,
        reply_to=replied.staff_message_id if replied else None,
        as_text=as_text,
    )
    return stored


async def relay_from_staff(
    work: Work, ticket: Ticket, person: Person, staff: Staff, inbound: Inbound
) -> TicketMessage:
    """Keeps the counsellor's message and delivers it to the worker, signed with the alias:
    a text as a new message, media as a copy with the signature for caption."""
    media = inbound.media
    stored = await ticket_queries.add_ticket_message(
        work.session,
        ticket=ticket,
        direction=Direction.TO_WORKER,
        author=staff.alias,
        now=work.now,
        text=inbound.text,
        media_kind=media.kind if media else None,
        media_file_id=media.file_id if media else None,
    )
    stored.staff_message_id = inbound.message_id
    stored.delivery_status = Delivery.PENDING
    replied = await ticket_queries.message_by_staff_id(
        work.session, ticket_id=ticket.id, staff_message_id=inbound.reply_to
    )
    signed = str(
        work.catalog.translator(ticket.language)(SIGNED, alias=staff.alias, text=inbound.text or "")
    )
    if media is None:
        how = {"action": "post", "reply": Reply(signed)}
    else:
        how = {"action": "copy", "copy_of": inbound.message_id, "caption": signed}
    queue(
        work,
        ticket,
        to="worker",
        worker=person.external_id,
        worker_channel=person.channel,
        record=stored.id,
        reply_to=replied.worker_message_id if replied else None,
        on_failure=_not_delivered(work),
        **how,
    )
    return stored


async def set_status(
    work: Work,
    ticket: Ticket,
    to_status: str,
    *,
    actor: str,
    notice: tuple[str, dict[str, Any]] | None = None,
    **fields: Any,
) -> bool:
    """Changes the status (and `fields` with it) with its audit event, posts `notice` (a
    staff text and its variables) in the topic, and closes or reopens the topic with it.
    False when someone else changed the ticket first (see db.tickets.change_status):
    `ticket` then holds what they made of it, and nothing was done or queued."""
    previous = ticket.status
    changed = await ticket_queries.change_status(
        work.session, ticket=ticket, to_status=to_status, actor=actor, now=work.now, fields=fields
    )
    if not changed:
        return False
    ending = to_status in (TicketStatus.CLOSED, TicketStatus.WITHDRAWN)
    if previous == TicketStatus.CLOSED and not ending:
        queue(work, ticket, action="topic", to="topic", topic_state="reopen")
    if notice is not None:  # while the topic is open: Telegram refuses posts to a closed one
        key, variables = notice
        notice_in_topic(work, ticket, key, **variables)
    if ending:
        queue(work, ticket, action="topic", to="topic", topic_state="close")
    return True


def relayed_already(work: Work, message_id: int | None) -> bool:
    """Whether this turn already copies the message into a topic (a crisis alert did)."""
    return any(
        item.action == "copy" and item.to == "topic" and item.copy_of == message_id
        for item in work.outgoing
    )


def reopenable(catalog: Catalog, ticket: Ticket, now: datetime) -> bool:
    """An ended ticket comes back to life when its worker writes within the reopen period."""
    return ticket.status in ENDED and now - ticket.updated_at <= timedelta(days=catalog.reopen_days)
