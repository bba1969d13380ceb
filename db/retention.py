"""Retention (`hotline purge`): what identifies workers and what they told us goes once their
tickets have ended long enough ago; the anonymous remainder the figures need stays.

PIPL art. 47 asks for personal data to be deleted once its purpose is served. A ticket ended
(resolved, referred, closed or withdrawn) before a cutoff, and untouched since, loses what a
worker told or sent: the card's personal fields (employer, address, story, wage months,
phone, "may see my name"), its messages' texts and evidence file ids, the relay's map of
message ids on both sides, and every stored update and outbox row of its topic. A person
with no ticket left open and no trace after the cutoff (no turn, no update, no ticket
written to or changed) is then forgotten as /forget does (db/people.py), without being told:
the Telegram id becomes `forgotten:N`, the names, consent, conversation and drafts and the
record of job alerts go, and their chat's stored updates and outbox rows are emptied.

What stays is exactly what db/stats.py reads, so /stats and `hotline stats` give the same
figures before and after a purge: every ticket row with its reference, kind, category,
district, status, dates, amount, urgency and feedback; every audit event; every ticket
message's row with its direction, author (a staff alias or "worker") and time, empty; every
person's row with its creation date; every broadcast's delivery rows (they name an anonymous
person row, and the broadcast figures count them). Unlike /forget, the messages' rows are
kept (emptied, not deleted): the time to a first reply and the active workers are read from
them.

A person who keeps a job alert (job_subscription) is still being served and is kept, with
their tickets purged as any others; /forget or stopping the alert ends that.

The functions work on one batch in the caller's transaction; bot/purge_admin.py commits one
batch at a time. Every UPDATE repeats the conditions it was chosen by, so a ticket reopened
or a person who wrote between the choice and the write is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, and_, cast, delete, exists, func, literal, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from db import inbox, media_files, outbox
from db.models import (
    OPEN_STATUSES,
    Conversation,
    InboxUpdate,
    JobAlertSent,
    JobSubscription,
    Person,
    Ticket,
    TicketEvent,
    TicketMessage,
    TicketStatus,
)
from db.people import TICKET_DETAILS_ERASED

BATCH = 500  # tickets (or people) per transaction: short locks, and never half a ticket
ENDED = tuple(status for status in TicketStatus if status not in OPEN_STATUSES)


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge erased (or, in a dry run, would erase)."""

    tickets: int = 0
    messages: int = 0  # ticket messages emptied (text, file id, message ids)
    evidence: int = 0  # of them, those that carried a file (a photo, document, voice note)
    people: int = 0  # forgotten

    def __add__(self, other: Purged) -> Purged:
        return Purged(
            self.tickets + other.tickets,
            self.messages + other.messages,
            self.evidence + other.evidence,
            self.people + other.people,
        )


def _ticket_ended_before(cutoff: datetime):
    """A ticket that ended before `cutoff` and has not changed since (its last status
    change and its last write both before it), not purged since it was last written to."""
    last_change = (
        select(func.max(TicketEvent.created_at))
        .where(TicketEvent.ticket_id == Ticket.id)
        .scalar_subquery()
    )
    return and_(
        col(Ticket.status).in_(ENDED),
        col(Ticket.updated_at) < cutoff,
        func.coalesce(last_change, Ticket.updated_at) < cutoff,
        or_(col(Ticket.purged_at).is_(None), col(Ticket.updated_at) > col(Ticket.purged_at)),
    )


def _person_inactive_since(cutoff: datetime):
    """A person not forgotten yet, first seen before `cutoff`, with no job alert kept, no
    ticket open, and nothing after it: no turn (the conversation is written at every turn's
    end), no update waiting in the inbox, no ticket opened, written to or changed."""
    theirs = Ticket.person_id == Person.id
    person_lane = Person.channel.concat(literal(":")).concat(Person.external_id)
    return and_(
        col(Person.forgotten_at).is_(None),
        Person.created_at < cutoff,
        ~exists().where(JobSubscription.person_id == Person.id),
        ~exists().where(
            theirs, or_(col(Ticket.status).in_(OPEN_STATUSES), Ticket.updated_at >= cutoff)
        ),
        ~exists().where(Conversation.person_id == Person.id, Conversation.updated_at >= cutoff),
        # Uncorrelated, so read once (inbox_update.person_key has no index): the lanes of the
        # updates received since, few, since a done update's lane is emptied.
        person_lane.not_in(
            select(InboxUpdate.person_key).where(
                InboxUpdate.person_key != "", InboxUpdate.received_at >= cutoff
            )
        ),
        ~exists().where(
            theirs, TicketEvent.ticket_id == Ticket.id, TicketEvent.created_at >= cutoff
        ),
        ~exists().where(
            theirs, TicketMessage.ticket_id == Ticket.id, TicketMessage.created_at >= cutoff
        ),
    )


async def tickets_to_purge(
    session: AsyncSession, *, closed_before: datetime, limit: int = BATCH
) -> list[int]:
    """The next `limit` tickets a purge with this cutoff erases, oldest first."""
    result = await session.exec(
        select(Ticket.id)
        .where(_ticket_ended_before(closed_before))
        .order_by(col(Ticket.id))
        .limit(limit)
    )
    return list(result.all())


async def people_to_purge(
    session: AsyncSession, *, inactive_before: datetime, limit: int = BATCH
) -> list[int]:
    """The next `limit` people a purge with this cutoff forgets."""
    result = await session.exec(
        select(Person.id)
        .where(_person_inactive_since(inactive_before))
        .order_by(col(Person.id))
        .limit(limit)
    )
    return list(result.all())


async def count(session: AsyncSession, *, closed_before: datetime) -> Purged:
    """What a purge with this cutoff would erase, changing nothing (`--dry-run`)."""
    chosen = select(Ticket.id).where(_ticket_ended_before(closed_before))
    tickets = (await session.exec(select(func.count()).select_from(chosen.subquery()))).one()
    messages, evidence = await _message_counts(session, chosen)
    people = (
        await session.exec(
            select(func.count()).select_from(Person).where(_person_inactive_since(closed_before))
        )
    ).one()
    return Purged(tickets=tickets, messages=messages, evidence=evidence, people=people)


async def purge_tickets(
    session: AsyncSession, *, ticket_ids: Sequence[int], closed_before: datetime, now: datetime
) -> Purged:
    """Erases these tickets' personal details and evidence, those that still qualify (see
    the module's docstring). `updated_at` is left as it was: a purge is no activity, and a
    ticket it touched must not become one a worker's message can reopen."""
    if not ticket_ids:
        return Purged()
    result = await session.exec(
        update(Ticket)
        .where(col(Ticket.id).in_(ticket_ids), _ticket_ended_before(closed_before))
        .values(**TICKET_DETAILS_ERASED, purged_at=now)
        .returning(Ticket.id, Ticket.topic_id, Ticket.person_id)
        .execution_options(synchronize_session=False)
    )
    purged = result.all()
    if not purged:
        return Purged()
    ids = [row.id for row in purged]
    messages, evidence = await _message_counts(
        session, select(Ticket.id).where(col(Ticket.id).in_(ids))
    )
    await media_files.forget_evidence_of(session, ticket_ids=ids)
    await session.exec(
        update(TicketMessage)
        .where(col(TicketMessage.ticket_id).in_(ids))
        .values(text=None, media_file_id=None, worker_message_id=None, staff_message_id=None)
        .execution_options(synchronize_session=False)
    )
    # The staff's updates in the topic carry the card (a Claim press) or quote the worker
    # (a reply); the topic's outbox rows carry the card and the copies.
    await inbox.scrub_lanes(
        session,
        lanes=[
            inbox.topic_lane(outbox.STAFF_CHANNEL, row.topic_id)
            for row in purged
            if row.topic_id is not None
        ],
    )
    await outbox.forget_lanes(
        session, lanes=[outbox.topic_lane(outbox.STAFF_CHANNEL, row.id) for row in purged]
    )
    return Purged(tickets=len(ids), messages=messages, evidence=evidence)


async def purge_people(
    session: AsyncSession, *, person_ids: Sequence[int], inactive_before: datetime, now: datetime
) -> int:
    """Forgets these people, those that still qualify, as /forget does but keeping what the
    figures read (module docstring); their tickets were purged before. Returns how many."""
    if not person_ids:
        return 0
    lanes = {
        row.id: (row.channel, row.external_id)
        for row in (
            await session.exec(
                select(Person.id, Person.channel, Person.external_id).where(
                    col(Person.id).in_(person_ids)
                )
            )
        ).all()
    }
    result = await session.exec(
        update(Person)
        .where(col(Person.id).in_(person_ids), _person_inactive_since(inactive_before))
        .values(
            external_id=literal("forgotten:").concat(cast(Person.id, String)),
            display_name=None,
            username=None,
            consented_at=None,
            forgotten_at=now,
        )
        .returning(Person.id)
        .execution_options(synchronize_session=False)
    )
    forgotten = list(result.scalars().all())
    if not forgotten:
        return 0
    await session.exec(
        delete(Conversation)
        .where(col(Conversation.person_id).in_(forgotten))
        .execution_options(synchronize_session=False)
    )
    await session.exec(  # no subscription is left (they qualify only without one)
        delete(JobAlertSent)
        .where(col(JobAlertSent.person_id).in_(forgotten))
        .execution_options(synchronize_session=False)
    )
    await inbox.scrub_lanes(
        session, lanes=[inbox.person_lane(*lanes[person]) for person in forgotten]
    )
    await outbox.forget_lanes(
        session, lanes=[outbox.chat_lane(*lanes[person]) for person in forgotten]
    )
    return len(forgotten)


async def _message_counts(session: AsyncSession, ticket_ids) -> tuple[int, int]:
    """(messages, of them with a file) of the tickets `ticket_ids` selects."""
    messages, evidence = (
        await session.exec(
            select(func.count(), func.count(TicketMessage.media_file_id)).where(
                col(TicketMessage.ticket_id).in_(ticket_ids)
            )
        )
    ).one()
    return messages, evidence
