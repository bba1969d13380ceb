"""Tickets and the staff group: a topic per ticket with its card, messages relayed both ways,
and status changes told to both sides.

Used from the worker's side (a ticket opened, a message for the counsellor) and from the
staff's side (a counsellor's answer, a button on the card). Everything here only records
and queues `Outgoing` items; the channel sends them once the turn has committed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import Choice, Inbound, Outgoing, Reply
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

CARD_ACTIONS = ("claim", "refer", "resolve", "close")
ENDED = (TicketStatus.RESOLVED, TicketStatus.REFERRED, TicketStatus.CLOSED)


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


def card(
    catalog: Catalog,
    ticket: Ticket,
    person: Person,
    *,
    evidence: int,
    assignee: Staff | None = None,
) -> Reply:
    """The ticket card: the answers, and the worker's name only if they agreed to share it."""
    t = staff_texts(catalog)
    text = t.render(
        "ticket_card.html.j2",
        ticket=ticket,
        evidence=evidence,
        kind=t(f"kinds.{ticket.kind}"),
        category=t(f"categories.{ticket.category}") if ticket.category else None,
        district=t(f"districts.{ticket.district}") if ticket.district else None,
        status=t(f"statuses.{ticket.status}"),
        assignee=assignee.alias if assignee else None,
        worker=_identity(person) if ticket.share_identity else None,
    )
    choices = [Choice(action, str(t(f"card.{action}")), numbered=False) for action in CARD_ACTIONS]
    return Reply(str(text), choices, choice_tag=f"ticket.{ticket.id}")


def _identity(person: Person) -> dict[str, Any]:
    return {"name": person.display_name, "username": person.username, "id": person.external_id}


def queue(outgoing: list[Outgoing], catalog: Catalog, ticket: Ticket, **fields: Any) -> None:
    outgoing.append(
        Outgoing(ticket_id=ticket.id, topic_title=topic_title(catalog, ticket), **fields)
    )


def post_card(
    outgoing: list[Outgoing],
    catalog: Catalog,
    ticket: Ticket,
    person: Person,
    evidence: list[TicketMessage],
) -> None:
    """Opens the ticket's topic with its card, then copies the evidence into it."""
    queue(
        outgoing,
        catalog,
        ticket,
        action="post",
        to="topic",
        reply=card(catalog, ticket, person, evidence=len(evidence)),
    )
    for item in evidence:
        if item.worker_message_id is not None:
            queue(
                outgoing,
                catalog,
                ticket,
                action="copy",
                to="topic",
                worker=person.external_id,
                copy_of=item.worker_message_id,
                record=item.id,
            )


def notice_in_topic(
    outgoing: list[Outgoing], catalog: Catalog, ticket: Ticket, key: str, **variables: Any
) -> None:
    queue(
        outgoing,
        catalog,
        ticket,
        action="post",
        to="topic",
        reply=Reply(str(staff_texts(catalog)(key, **variables))),
    )


def tell_worker(
    outgoing: list[Outgoing],
    catalog: Catalog,
    ticket: Ticket,
    person: Person,
    key: str,
    *,
    choices: list[Choice] | None = None,
    tag: str | None = None,
    **variables: Any,
) -> None:
    """A message to the worker in their ticket's language; a failure is said in the topic."""
    text = catalog.translator(ticket.language)(key, reference=ticket.reference, **variables)
    queue(
        outgoing,
        catalog,
        ticket,
        action="post",
        to="worker",
        worker=person.external_id,
        reply=Reply(str(text), choices or [], tag),
        on_failure=Reply(str(staff_texts(catalog)("mediation.not_delivered"))),
    )


async def relay_from_worker(
    session: AsyncSession,
    outgoing: list[Outgoing],
    catalog: Catalog,
    *,
    ticket: Ticket,
    person: Person,
    message: dict[str, Any],
    now,
) -> TicketMessage:
    """Keeps the worker's message in the transcript and copies it into the ticket's topic.
    `message`: message_id, text, media_kind, media_file_id, reply_to (worker-side ids)."""
    stored = await ticket_queries.add_ticket_message(
        session,
        ticket=ticket,
        direction=Direction.FROM_WORKER,
        author="worker",
        now=now,
        text=message.get("text"),
        media_kind=message.get("media_kind"),
        media_file_id=message.get("media_file_id"),
    )
    stored.worker_message_id = message.get("message_id")
    stored.delivery_status = Delivery.PENDING
    replied = await ticket_queries.message_by_worker_id(
        session, ticket_id=ticket.id, worker_message_id=message.get("reply_to")
    )
    queue(
        outgoing,
        catalog,
        ticket,
        action="copy",
        to="topic",
        worker=person.external_id,
        copy_of=message.get("message_id"),
        record=stored.id,
        reply_to=replied.staff_message_id if replied else None,
    )
    return stored


async def relay_from_staff(
    session: AsyncSession,
    outgoing: list[Outgoing],
    catalog: Catalog,
    *,
    ticket: Ticket,
    person: Person,
    staff: Staff,
    inbound: Inbound,
    now,
) -> TicketMessage:
    """Keeps the counsellor's message and delivers it to the worker, signed with the alias."""
    media = inbound.media
    stored = await ticket_queries.add_ticket_message(
        session,
        ticket=ticket,
        direction=Direction.TO_WORKER,
        author=staff.alias,
        now=now,
        text=inbound.text,
        media_kind=media.kind if media else None,
        media_file_id=media.file_id if media else None,
    )
    stored.staff_message_id = inbound.message_id
    stored.delivery_status = Delivery.PENDING
    replied = await ticket_queries.message_by_staff_id(
        session, ticket_id=ticket.id, staff_message_id=inbound.reply_to
    )
    worker_t = catalog.translator(ticket.language)
    common = dict(
        to="worker",
        worker=person.external_id,
        record=stored.id,
        reply_to=replied.worker_message_id if replied else None,
        on_failure=Reply(str(staff_texts(catalog)("mediation.not_delivered"))),
    )
    if media is None:
        signed = worker_t("mediation.signed", alias=staff.alias, text=inbound.text or "")
        queue(outgoing, catalog, ticket, action="post", reply=Reply(str(signed)), **common)
    else:
        caption = worker_t("mediation.signed", alias=staff.alias, text=inbound.text or "")
        queue(
            outgoing,
            catalog,
            ticket,
            action="copy",
            copy_of=inbound.message_id,
            caption=str(caption),
            **common,
        )
    return stored


async def set_status(
    session: AsyncSession,
    outgoing: list[Outgoing],
    catalog: Catalog,
    *,
    ticket: Ticket,
    to_status: str,
    actor: str,
    now: datetime,
) -> None:
    """Changes the status with its audit event, and closes or reopens the topic with it."""
    previous = ticket.status
    await ticket_queries.change_status(
        session, ticket=ticket, to_status=to_status, actor=actor, now=now
    )
    if to_status in (TicketStatus.CLOSED, TicketStatus.WITHDRAWN):
        queue(outgoing, catalog, ticket, action="topic", to="topic", topic_state="close")
    elif previous == TicketStatus.CLOSED:
        queue(outgoing, catalog, ticket, action="topic", to="topic", topic_state="reopen")


def reopenable(catalog: Catalog, ticket: Ticket, now: datetime) -> bool:
    """An ended ticket comes back to life when its worker writes within the reopen period."""
    return ticket.status in ENDED and now - ticket.updated_at <= timedelta(days=catalog.reopen_days)
