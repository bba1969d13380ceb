"""Queries about tickets: opening them with a readable reference, listing, adding, withdrawing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import (
    Direction,
    Ticket,
    TicketCounter,
    TicketEvent,
    TicketMessage,
    TicketStatus,
)


async def next_reference(session: AsyncSession, *, prefix: str, now: datetime) -> str:
    """PREFIX-YEAR-NNNNNN from a per-year counter row; the row lock keeps it unique."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.exec(
        insert(TicketCounter).values(year=now.year, last=0).on_conflict_do_nothing()
    )
    result = await session.exec(
        update(TicketCounter)
        .where(TicketCounter.year == now.year)
        .values(last=TicketCounter.last + 1)
        .returning(TicketCounter.last)
    )
    return f"{prefix}-{now.year}-{result.scalar_one():06d}"


async def open_ticket(
    session: AsyncSession, *, person_id: int, kind: str, language: str, prefix: str,
    now: datetime, fields: dict[str, Any], evidence: list[dict[str, Any]], author: str,
) -> Ticket:
    """Creates the ticket, its evidence messages and its first audit event in one go."""
    ticket = Ticket(
        reference=await next_reference(session, prefix=prefix, now=now),
        kind=kind, person_id=person_id, language=language, status=TicketStatus.NEW,
        created_at=now, updated_at=now, **fields,
    )
    session.add(ticket)
    await session.flush()
    for item in evidence:
        session.add(TicketMessage(
            ticket_id=ticket.id, direction=Direction.FROM_WORKER, author=author,
            text=item.get("caption"), media_kind=item["kind"], media_file_id=item["file_id"],
            created_at=now,
        ))
    session.add(TicketEvent(ticket_id=ticket.id, actor=author, from_status=None,
                            to_status=TicketStatus.NEW, created_at=now))
    await session.flush()
    return ticket


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
    session: AsyncSession, *, ticket: Ticket, direction: str, author: str, now: datetime,
    text: str | None = None, media_kind: str | None = None, media_file_id: str | None = None,
) -> TicketMessage:
    message = TicketMessage(
        ticket_id=ticket.id, direction=direction, author=author, text=text,
        media_kind=media_kind, media_file_id=media_file_id, created_at=now,
    )
    session.add(message)
    ticket.updated_at = now
    await session.flush()
    return message


async def change_status(
    session: AsyncSession, *, ticket: Ticket, to_status: str, actor: str, now: datetime
) -> None:
    """Every status change leaves an audit event: who, when, from, to."""
    session.add(TicketEvent(ticket_id=ticket.id, actor=actor, from_status=ticket.status,
                            to_status=to_status, created_at=now))
    ticket.status = to_status
    ticket.updated_at = now
    await session.flush()
