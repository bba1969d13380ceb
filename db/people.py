"""Queries about the people who write to the hotline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.conversations import SavedConversation
from db.models import (
    Conversation,
    InboxStatus,
    InboxUpdate,
    Person,
    Ticket,
    TicketMessage,
)

_PERSON_AND_CONVERSATION = (
    select(Person, Conversation.flow, Conversation.step, Conversation.data, Conversation.history)
    .outerjoin(Conversation, Conversation.person_id == Person.id)
    .where(Person.channel == bindparam("channel"), Person.external_id == bindparam("external_id"))
)


async def find_person_and_conversation(
    session: AsyncSession, *, channel: str, external_id: str
) -> tuple[Person | None, SavedConversation | None]:
    """Both in one prepared query: this runs on every turn."""
    result = await session.exec(
        _PERSON_AND_CONVERSATION, params={"channel": channel, "external_id": external_id}
    )
    found = result.first()
    if found is None:
        return None, None
    person, flow, step, data, history = found
    return person, (SavedConversation(flow, step, data, history) if flow is not None else None)


async def add_person(session: AsyncSession, *, channel: str, external_id: str) -> Person:
    person = Person(channel=channel, external_id=external_id)
    session.add(person)
    await session.flush()
    return person


def note_names(person: Person, *, display_name: str | None, username: str | None) -> None:
    """Keeps the channel's current names (written only when they changed)."""
    if display_name is not None and person.display_name != display_name[:200]:
        person.display_name = display_name[:200]
    if username is not None and person.username != username[:64]:
        person.username = username[:64]


async def forget_person(session: AsyncSession, *, person: Person, now: datetime) -> None:
    """Erases what identifies the person and what they told us; keeps anonymous ticket figures
    (kind, category, district, status, dates) for the centre's statistics."""
    ticket_ids = select(Ticket.id).where(Ticket.person_id == person.id)
    await session.exec(delete(TicketMessage).where(TicketMessage.ticket_id.in_(ticket_ids)))
    await session.exec(
        update(Ticket)
        .where(Ticket.person_id == person.id)
        .values(
            employer=None,
            address=None,
            story=None,
            phone=None,
            wage_months=None,
            share_identity=False,
            updated_at=now,
        )
    )
    await session.exec(delete(Conversation).where(Conversation.person_id == person.id))
    # The inbox keeps each update as it came, with what the person typed: those go too,
    # except the update being handled right now (still "received" until this turn commits;
    # the person's earlier ones are past that, since their updates are handled in order).
    await session.exec(
        delete(InboxUpdate).where(
            InboxUpdate.person_key == f"{person.channel}:{person.external_id}",
            InboxUpdate.status != InboxStatus.RECEIVED,
        )
    )
    person.external_id = f"forgotten:{person.id}"
    person.display_name = None
    person.username = None
    person.consented_at = None
    person.forgotten_at = now
    await session.flush()
