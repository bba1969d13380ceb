"""Queries about tickets: opening them with a readable reference, listing, adding, changing
their status (compare-and-set, audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import (
    OPEN_STATUSES,
    Direction,
    Ticket,
    TicketCounter,
    TicketEvent,
    TicketKind,
    TicketMessage,
    TicketStatus,
)


async def next_reference(session: AsyncSession, *, prefix: str, now: datetime) -> str:
    """PREFIX-YEAR-NNNNNN from a per-year counter row; the row lock keeps it unique."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.exec(insert(TicketCounter).values(year=now.year, last=0).on_conflict_do_nothing())
    result = await session.exec(
        update(TicketCounter)
        .where(TicketCounter.year == now.year)
        .values(last=TicketCounter.last + 1)
        .returning(TicketCounter.last)
    )
    return f"{prefix}-{now.year}-{result.scalar_one():06d}"


async def open_ticket(
    session: AsyncSession,
    *,
    person_id: int,
    kind: str,
    language: str,
    prefix: str,
    now: datetime,
    fields: dict[str, Any],
    evidence: list[dict[str, Any]],
    author: str,
) -> tuple[Ticket, list[TicketMessage]]:
    """Creates the ticket, its evidence messages and its first audit event in one go."""
    ticket = Ticket(
        reference=await next_reference(session, prefix=prefix, now=now),
        kind=kind,
        person_id=person_id,
        language=language,
        status=TicketStatus.NEW,
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(ticket)
    await session.flush()
    messages = [
        TicketMessage(
            ticket_id=ticket.id,
            direction=Direction.FROM_WORKER,
            author=author,
            text=item.get("caption"),
            media_kind=item["kind"],
            media_file_id=item["file_id"],
            worker_message_id=item.get("message_id"),
            created_at=now,
        )
        for item in evidence
    ]
    session.add_all(messages)
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            actor=author,
            from_status=None,
            to_status=TicketStatus.NEW,
            created_at=now,
        )
    )
    await session.flush()
    return ticket, messages


async def tickets_of(session: AsyncSession, *, person_id: int) -> list[Ticket]:
    result = await session.exec(
        select(Ticket).where(Ticket.person_id == person_id).order_by(col(Ticket.id).desc())
    )
    return list(result.all())


async def ticket_of(session: AsyncSession, *, person_id: int, ticket_id: int) -> Ticket | None:
    """A ticket only if it belongs to this person: workers never see each other's tickets."""
    result = await session.exec(
        select(Ticket).where(Ticket.id == ticket_id, Ticket.person_id == person_id)
    )
    return result.first()


async def add_ticket_message(
    session: AsyncSession,
    *,
    ticket: Ticket,
    direction: str,
    author: str,
    now: datetime,
    text: str | None = None,
    media_kind: str | None = None,
    media_file_id: str | None = None,
) -> TicketMessage:
    message = TicketMessage(
        ticket_id=ticket.id,
        direction=direction,
        author=author,
        text=text,
        media_kind=media_kind,
        media_file_id=media_file_id,
        created_at=now,
    )
    session.add(message)
    ticket.updated_at = now
    await session.flush()
    return message


async def change_status(
    session: AsyncSession,
    *,
    ticket: Ticket,
    to_status: str,
    actor: str,
    now: datetime,
    fields: dict[str, Any] | None = None,
) -> bool:
    """The one way a ticket's status changes: compare-and-set, with its audit event.

    A worker's lane and the ticket topic's lane run at once, so the row is written only if
    its status, and each of `fields` (assignee_id, referred_to, ...) changed with it, still
    hold what this turn read. Otherwise nothing is written, the ticket is read again (the
    other turn's change, committed) and False returned: the caller tells its person what
    happened instead. The audit trail thus never shows an impossible path."""
    expected = ticket.status
    values = {**(fields or {}), "status": to_status, "updated_at": now}
    guards = [Ticket.id == ticket.id, Ticket.status == expected]
    for name in fields or {}:
        current = getattr(ticket, name)
        column = getattr(Ticket, name)
        guards.append(col(column).is_(None) if current is None else column == current)
    await session.flush()  # this turn's other changes to the row first
    result = await session.exec(
        update(Ticket).where(*guards).values(**values).execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        await session.refresh(ticket)
        return False
    for name, value in values.items():
        set_committed_value(ticket, name, value)
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            actor=actor,
            from_status=expected,
            to_status=to_status,
            created_at=now,
        )
    )
    await session.flush()
    return True


async def lock_ticket(session: AsyncSession, *, ticket: Ticket) -> None:
    """Reads the ticket again and holds its row until the turn commits (SELECT … FOR UPDATE;
    SQLite has one writer anyway), for work that depends on the status without changing
    it, such as relaying a message: another turn's change waits, or is seen here."""
    await session.flush()
    await session.refresh(ticket, with_for_update=True)


async def count_open_tickets(session: AsyncSession, *, person_id: int) -> int:
    """Open tickets of every kind, for the per-person cap (limits.open_tickets_per_person)."""
    result = await session.exec(
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.person_id == person_id, col(Ticket.status).in_(OPEN_STATUSES))
    )
    return result.one()


async def current_talk_ticket(session: AsyncSession, *, person_id: int) -> Ticket | None:
    """The worker's open "talk to a person" ticket: there is at most one."""
    result = await session.exec(
        select(Ticket)
        .where(
            Ticket.person_id == person_id,
            Ticket.kind == TicketKind.TALK,
            col(Ticket.status).in_(OPEN_STATUSES),
        )
        .order_by(col(Ticket.id).desc())
    )
    return result.first()


async def ticket_events(session: AsyncSession, *, ticket_id: int) -> list[TicketEvent]:
    """The ticket's status changes, oldest first (was it resolved, and closed right after?)."""
    result = await session.exec(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(col(TicketEvent.id))
    )
    return list(result.all())


async def message_by_worker_id(
    session: AsyncSession, *, ticket_id: int, worker_message_id: int | None
) -> TicketMessage | None:
    """The transcript entry of a message in the worker's chat (to keep replies replies)."""
    if worker_message_id is None:
        return None
    result = await session.exec(
        select(TicketMessage).where(
            TicketMessage.ticket_id == ticket_id,
            TicketMessage.worker_message_id == worker_message_id,
        )
    )
    return result.first()


async def message_by_staff_id(
    session: AsyncSession, *, ticket_id: int, staff_message_id: int | None
) -> TicketMessage | None:
    """The transcript entry of a message in the ticket's topic."""
    if staff_message_id is None:
        return None
    result = await session.exec(
        select(TicketMessage).where(
            TicketMessage.ticket_id == ticket_id, TicketMessage.staff_message_id == staff_message_id
        )
    )
    return result.first()


async def ticket_by_topic(session: AsyncSession, *, topic_id: int) -> Ticket | None:
    result = await session.exec(select(Ticket).where(Ticket.topic_id == topic_id))
    return result.first()


async def ticket_by_id(session: AsyncSession, *, ticket_id: int) -> Ticket | None:
    return await session.get(Ticket, ticket_id)


async def tickets_to_write_to(
    session: AsyncSession, *, person_id: int, ended_since: datetime
) -> list[Ticket]:
    """The tickets a worker's free message can belong to: the open ones, and those ended
    recently enough to be reopened by it."""
    result = await session.exec(
        select(Ticket)
        .where(
            Ticket.person_id == person_id,
            or_(col(Ticket.status).in_(OPEN_STATUSES), col(Ticket.updated_at) >= ended_since),
            Ticket.status != TicketStatus.WITHDRAWN,
        )
        .order_by(col(Ticket.id).desc())
    )
    return list(result.all())


async def set_topic(session: AsyncSession, *, ticket_id: int, topic_id: int) -> int:
    """Stores the topic unless another process was first; returns the topic to use."""
    await session.exec(
        update(Ticket)
        .where(Ticket.id == ticket_id, col(Ticket.topic_id).is_(None))
        .values(topic_id=topic_id)
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(select(Ticket.topic_id).where(Ticket.id == ticket_id))
    return result.one()


async def note_topic_request(session: AsyncSession, *, ticket_id: int, at: datetime | None) -> None:
    """Records that a topic is being asked of Telegram (None: the request was refused), so
    that a topic whose answer was lost can be claimed later instead of opened again."""
    await session.exec(
        update(Ticket)
        .where(Ticket.id == ticket_id)
        .values(topic_requested_at=at)
        .execution_options(synchronize_session=False)
    )


async def topic_requests_since(session: AsyncSession, *, since: datetime) -> list[datetime]:
    """When topics were asked of Telegram since `since` (each is a message into the group)."""
    result = await session.exec(
        select(Ticket.topic_requested_at).where(col(Ticket.topic_requested_at) >= since)
    )
    return sorted(result.all())


async def claim_topic(session: AsyncSession, *, reference: str, topic_id: int) -> bool:
    """Takes a topic the bot opened (seen from its service message, named after the ticket's
    reference) for the ticket that asked for one and has none stored; whether it did."""
    result = await session.exec(
        update(Ticket)
        .where(
            Ticket.reference == reference,
            col(Ticket.topic_id).is_(None),
            col(Ticket.topic_requested_at).is_not(None),
        )
        .values(topic_id=topic_id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def record_delivery(
    session: AsyncSession,
    *,
    message_id: int,
    status: str,
    worker_message_id: int | None = None,
    staff_message_id: int | None = None,
) -> None:
    values: dict = {"delivery_status": status}
    if worker_message_id is not None:
        values["worker_message_id"] = worker_message_id
    if staff_message_id is not None:
        values["staff_message_id"] = staff_message_id
    await session.exec(
        update(TicketMessage)
        .where(TicketMessage.id == message_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def last_from_worker(session: AsyncSession, *, ticket_id: int) -> datetime | None:
    result = await session.exec(
        select(TicketMessage.created_at)
        .where(
            TicketMessage.ticket_id == ticket_id, TicketMessage.direction == Direction.FROM_WORKER
        )
        .order_by(col(TicketMessage.id).desc())
        .limit(1)
    )
    return result.first()
