"""Broadcasts: who is in an audience, the delivery rows written when sending starts, the
window of them handed to the outbox, and what became of each (read back from the outbox).

A delivery is pending until it is handed to the outbox (then "sending", with the outbox row's
id), and takes that row's outcome once the row has one: sent, failed, blocked, or unknown when
the hotline died while it was being sent (outbox rows of broadcasts are never sent twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, exists, func, insert, literal, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import (
    OPEN_STATUSES,
    Broadcast,
    BroadcastDelivery,
    BroadcastStatus,
    DeliveryStatus,
    JobSubscription,
    OutboxItem,
    OutboxStatus,
    Person,
    Ticket,
)

AUDIENCES = ("all", "language", "district", "jobs", "open_ticket")  # "value": language, district
ENDED_IN_OUTBOX = {
    OutboxStatus.SENT: DeliveryStatus.SENT,
    OutboxStatus.FAILED: DeliveryStatus.FAILED,
    OutboxStatus.BLOCKED: DeliveryStatus.BLOCKED,
    OutboxStatus.UNKNOWN: DeliveryStatus.UNKNOWN,
}
RUNNING = (BroadcastStatus.SENDING, BroadcastStatus.PAUSED)


def _audience(audience: dict[str, Any]):
    """Who a notice reaches: subscribed, reachable, not forgotten, and in the segment. By
    district: workers with a ticket or a job alert there (people carry no district)."""
    kind, value = audience.get("kind", "all"), audience.get("value")
    where = [
        col(Person.notices_off_at).is_(None),
        col(Person.blocked_at).is_(None),
        col(Person.forgotten_at).is_(None),
    ]
    if kind == "language":
        where.append(Person.language == value)
    elif kind == "district":
        where.append(
            or_(
                exists().where(Ticket.person_id == Person.id, Ticket.district == value),
                exists().where(
                    JobSubscription.person_id == Person.id, JobSubscription.district == value
                ),
            )
        )
    elif kind == "jobs":
        where.append(exists().where(JobSubscription.person_id == Person.id))
    elif kind == "open_ticket":
        where.append(
            exists().where(Ticket.person_id == Person.id, col(Ticket.status).in_(OPEN_STATUSES))
        )
    elif kind != "all":
        raise ValueError(f"unknown audience {kind!r}")
    return and_(*where)


@dataclass(frozen=True, slots=True)
class AudienceSize:
    total: int
    by_language: dict[str | None, int]  # the workers' languages (None: never chose one)


async def audience_size(session: AsyncSession, *, audience: dict[str, Any]) -> AudienceSize:
    result = await session.exec(
        select(Person.language, func.count()).where(_audience(audience)).group_by(Person.language)
    )
    by_language = dict(result.all())
    return AudienceSize(sum(by_language.values()), by_language)


def text_language(texts: dict[str, str], language: str | None, *, fallback: str) -> str:
    """The language of the text a worker gets: their own when it was written, else the
    fallback (Chinese)."""
    return language if language in texts and texts[language].strip() else fallback


async def start_sending(
    session: AsyncSession, *, broadcast: Broadcast, fallback: str, now: datetime
) -> int:
    """Writes one delivery row per recipient (one statement) and marks it sending; returns
    how many. The audience is fixed here: who joins later is not added."""
    written = [lang for lang, text in broadcast.texts.items() if text.strip()]
    chosen = case((col(Person.language).in_(written), Person.language), else_=literal(fallback))
    await session.exec(
        insert(BroadcastDelivery).from_select(
            ["broadcast_id", "person_id", "language", "status"],
            select(
                literal(broadcast.id),
                Person.id,
                chosen,
                literal(DeliveryStatus.PENDING.value),
            )
            .where(_audience(broadcast.audience))
            .order_by(Person.id),
        )
    )
    count = await session.exec(
        select(func.count()).where(BroadcastDelivery.broadcast_id == broadcast.id)
    )
    broadcast.recipients = count.one()
    broadcast.status = BroadcastStatus.SENDING
    broadcast.started_at = broadcast.started_at or now
    broadcast.updated_at = now
    session.add(broadcast)
    return broadcast.recipients


@dataclass(frozen=True, slots=True)
class Recipient:
    delivery_id: int
    language: str  # of the text they get
    channel: str
    external_id: str
    reads: str | None  # their own language (the notice's footer is in it)
    person_id: int


async def next_recipients(
    session: AsyncSession, *, broadcast_id: int, limit: int
) -> list[Recipient]:
    """The next pending deliveries in order, with where they go."""
    result = await session.exec(
        select(
            BroadcastDelivery.id,
            BroadcastDelivery.language,
            Person.channel,
            Person.external_id,
            Person.language,
            Person.id,
        )
        .join(Person, Person.id == BroadcastDelivery.person_id)
        .where(
            BroadcastDelivery.broadcast_id == broadcast_id,
            BroadcastDelivery.status == DeliveryStatus.PENDING,
        )
        .order_by(col(BroadcastDelivery.id))
        .limit(limit)
    )
    return [Recipient(*row) for row in result.all()]


async def notices_sent_since(
    session: AsyncSession, *, person_ids: Sequence[int], since: datetime
) -> dict[int, int]:
    """How many broadcasts each of these people was sent since `since` (WeChat's monthly
    allowance of mass messages is counted from these)."""
    if not person_ids:
        return {}
    result = await session.exec(
        select(BroadcastDelivery.person_id, func.count())
        .where(
            col(BroadcastDelivery.person_id).in_(list(person_ids)),
            BroadcastDelivery.status == DeliveryStatus.SENT,
            col(BroadcastDelivery.sent_at) >= since,
        )
        .group_by(BroadcastDelivery.person_id)
    )
    return dict(result.all())


async def end_deliveries(session: AsyncSession, *, ids: Sequence[int], status: str) -> None:
    """Deliveries that end without the outbox (a person past their channel's allowance)."""
    if ids:
        await session.exec(
            update(BroadcastDelivery)
            .where(col(BroadcastDelivery.id).in_(list(ids)))
            .values(status=status)
            .execution_options(synchronize_session=False)
        )


async def handed_to_outbox(session: AsyncSession, *, pairs: Sequence[tuple[int, int]]) -> None:
    """(delivery id, outbox row id): those deliveries are in the outbox now."""
    if not pairs:
        return
    table = BroadcastDelivery.__table__
    await session.exec(
        update(table)
        .where(table.c.id == bindparam("delivery"))
        .values(status=DeliveryStatus.SENDING, outbox_id=bindparam("row")),
        params=[{"delivery": d, "row": r} for d, r in pairs],
    )


async def take_outcomes(session: AsyncSession, *, broadcast_id: int) -> int:
    """Deliveries in the outbox whose row has ended take its outcome, in one statement;
    returns how many. Correlated by row id: only the window's few deliveries in the outbox
    are probed, however many rows the outbox holds."""
    row = select(OutboxItem).where(OutboxItem.id == BroadcastDelivery.outbox_id)
    outcome = case(
        *(
            (OutboxItem.status == ended, literal(status.value))
            for ended, status in ENDED_IN_OUTBOX.items()
        )
    )
    result = await session.exec(
        update(BroadcastDelivery)
        .where(
            BroadcastDelivery.broadcast_id == broadcast_id,
            BroadcastDelivery.status == DeliveryStatus.SENDING,
            row.where(col(OutboxItem.status).in_(list(ENDED_IN_OUTBOX))).exists(),
        )
        .values(
            status=row.with_only_columns(outcome).scalar_subquery(),
            sent_at=row.with_only_columns(OutboxItem.sent_at).scalar_subquery(),
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


async def counts(session: AsyncSession, *, broadcast_id: int) -> dict[str, int]:
    """Deliveries per status (every status present, zero when none)."""
    result = await session.exec(
        select(BroadcastDelivery.status, func.count())
        .where(BroadcastDelivery.broadcast_id == broadcast_id)
        .group_by(BroadcastDelivery.status)
    )
    found = dict(result.all())
    return {status.value: found.get(status.value, 0) for status in DeliveryStatus}


async def running(session: AsyncSession) -> list[Broadcast]:
    """Broadcasts sending or paused, oldest first."""
    result = await session.exec(
        select(Broadcast).where(col(Broadcast.status).in_(RUNNING)).order_by(col(Broadcast.id))
    )
    return list(result.all())


async def due(session: AsyncSession, *, now: datetime) -> list[Broadcast]:
    """Scheduled broadcasts whose time has come."""
    result = await session.exec(
        select(Broadcast)
        .where(
            Broadcast.status == BroadcastStatus.SCHEDULED,
            or_(col(Broadcast.scheduled_at).is_(None), col(Broadcast.scheduled_at) <= now),
        )
        .order_by(col(Broadcast.id))
    )
    return list(result.all())


async def listed(session: AsyncSession, *, limit: int = 50) -> list[Broadcast]:
    result = await session.exec(
        select(Broadcast)
        .where(Broadcast.status != BroadcastStatus.DRAFT)
        .order_by(col(Broadcast.id).desc())
        .limit(limit)
    )
    return list(result.all())


async def draft_of(
    session: AsyncSession, *, staff_id: int, thread_id: int | None
) -> Broadcast | None:
    """The staff member's broadcast being composed in this thread of the staff group."""
    where = [Broadcast.status == BroadcastStatus.DRAFT, Broadcast.staff_id == staff_id]
    where.append(
        col(Broadcast.thread_id).is_(None)
        if thread_id is None
        else Broadcast.thread_id == thread_id
    )
    result = await session.exec(select(Broadcast).where(*where).order_by(col(Broadcast.id).desc()))
    return result.first()


async def drop_drafts(session: AsyncSession, *, staff_id: int) -> None:
    """A new /broadcast replaces whatever the same coordinator left half-composed."""
    await session.exec(
        delete(Broadcast)
        .where(Broadcast.status == BroadcastStatus.DRAFT, Broadcast.staff_id == staff_id)
        .execution_options(synchronize_session=False)
    )


async def set_status(
    session: AsyncSession, *, broadcast_id: int, to: str, allowed_from: Sequence[str], now: datetime
) -> bool:
    """Pause, resume, cancel: one conditional update, so two presses cannot cross."""
    values: dict[str, Any] = {"status": to, "updated_at": now}
    if to in (BroadcastStatus.DONE, BroadcastStatus.CANCELLED):
        values["finished_at"] = now
    result = await session.exec(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, col(Broadcast.status).in_(list(allowed_from)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def forget_recipient(session: AsyncSession, *, person_id: int) -> None:
    """/forget: the person leaves every audience, and no row says they were in one."""
    await session.exec(
        delete(BroadcastDelivery)
        .where(BroadcastDelivery.person_id == person_id)
        .execution_options(synchronize_session=False)
    )
