"""Queries about the people who write to the hotline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db import broadcasts, inbox, jobs, media_files, outbox
from db.conversations import SavedConversation
from db.models import (
    Conversation,
    Person,
    Ticket,
    TicketMessage,
)

# What a ticket says about its person, as it stands once erased (/forget, `hotline purge`); the
# kind, category, district, status and dates stay for the centre's figures.
TICKET_DETAILS_ERASED = {
    "employer": None,
    "address": None,
    "story": None,
    "phone": None,
    "wage_months": None,
    "share_identity": False,
}

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


async def mark_blocked(
    session: AsyncSession, *, channel: str, external_id: str, now: datetime
) -> None:
    """The person blocked the bot; cleared when they write again (bot/engine.py)."""
    await session.exec(
        update(Person)
        .where(Person.channel == channel, Person.external_id == external_id)
        .values(blocked_at=now)
        .execution_options(synchronize_session=False)
    )


async def language_of(session: AsyncSession, *, channel: str, external_id: str) -> str | None:
    result = await session.exec(
        select(Person.language).where(Person.channel == channel, Person.external_id == external_id)
    )
    return result.first()


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
    await media_files.forget_evidence_of(session, ticket_ids=ticket_ids)
    await session.exec(delete(TicketMessage).where(TicketMessage.ticket_id.in_(ticket_ids)))
    await session.exec(
        update(Ticket)
        .where(Ticket.person_id == person.id)
        .values(**TICKET_DETAILS_ERASED, updated_at=now)
    )
    await session.exec(delete(Conversation).where(Conversation.person_id == person.id))
    await jobs.forget_jobs_of(session, person_id=person.id)  # no more alerts, no trace of them
    await broadcasts.forget_recipient(session, person_id=person.id)  # in no audience again
    # The inbox keeps each update as it came: the person's own, and the staff's in their
    # tickets' topics (a Claim press carries the card, a reply quotes what they wrote).
    topics = await session.exec(
        select(Ticket.topic_id).where(Ticket.person_id == person.id, Ticket.topic_id.is_not(None))
    )
    topic_ids = topics.all()
    await inbox.scrub_lanes(
        session,
        lanes=[
            inbox.person_lane(person.channel, person.external_id),
            *(inbox.topic_lane(outbox.STAFF_CHANNEL, topic) for topic in topic_ids),
        ],
    )
    # Nothing more goes to them or about them, and what went says nothing any more (the
    # topics' deletion is queued after this, by the turn).
    ticket_rows = await session.exec(select(Ticket.id).where(Ticket.person_id == person.id))
    await outbox.forget_lanes(
        session,
        lanes=[
            outbox.chat_lane(person.channel, person.external_id),
            *(outbox.topic_lane(outbox.STAFF_CHANNEL, ticket) for ticket in ticket_rows.all()),
        ],
    )
    person.external_id = f"forgotten:{person.id}"
    person.display_name = None
    person.username = None
    person.consented_at = None
    person.forgotten_at = now
    await session.flush()
