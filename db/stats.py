"""The hotline's figures over a period, for coordinators (/stats in the staff group, `hotline
stats` on the server): tickets, how fast and how well they were answered, broadcasts, workers.

A period is a span of the centre's local dates (`period_bounds`): from 00:00 of the first day
to the end of the last, as UTC instants; every query takes them as `since` (inclusive) and
`until` (exclusive). Every ticket figure is about the tickets *opened* in the period, as they
stand now (their status, their answers, their feedback), so a figure never counts a ticket
twice and the same period asked again later only grows more resolved.

- **Resolution** is defined once, in `is_resolution`: a ticket resolved, referred, or closed
  straight after it was resolved or referred. Time to resolution runs from the ticket's
  creation to its first status change to resolved or referred (a ticket reopened since keeps
  that first time); time to first reply to the first message a counsellor sent the worker.
  Both are given as medians, in office hours (content/office_hours.py) and in calendar time.
- **An SLA breach** is a ticket that waited unclaimed (status "new") for the SLA or longer in
  office hours, the moment the reminder of bot/reminders.py is due: its wait ends at its first
  status change out of "new" (claimed, or ended by a coordinator or the worker), or runs on
  until `now` while it still waits.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, union
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from content.office_hours import OfficeHours
from db.models import (
    Broadcast,
    BroadcastDelivery,
    DeliveryStatus,
    Direction,
    Person,
    Ticket,
    TicketEvent,
    TicketMessage,
    TicketStatus,
)

DEFAULT_SLA = timedelta(minutes=30)  # HOTLINE_SLA_MINUTES' default (bot/settings.py)
DEFAULT_DAYS = 30  # the period when none is given: the last 30 days, today included
NONE = "none"  # the key of tickets without a category or district (conversations)
RESOLUTIONS = (TicketStatus.RESOLVED, TicketStatus.REFERRED)


def is_resolution(status: str, closed_from: str | None = None) -> bool:
    """The one definition of a resolved ticket: it stands resolved or referred, or it was
    closed straight from resolved or referred (`closed_from`: the status its closing left)."""
    if status in RESOLUTIONS:
        return True
    return status == TicketStatus.CLOSED and closed_from in RESOLUTIONS


def period_bounds(first: date, last: date, *, timezone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants of a span of local dates: 00:00 of `first` there, and 00:00 of the day
    after `last` (exclusive), so both days are whole. ValueError when first is after last."""
    if first > last:
        raise ValueError(f"the period starts ({first}) after it ends ({last})")
    start = datetime.combine(first, time(), tzinfo=timezone)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=timezone)
    return start, end


def default_period(now: datetime, *, timezone: ZoneInfo) -> tuple[date, date]:
    """The last DEFAULT_DAYS local dates, today included."""
    today = now.astimezone(timezone).date()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


@dataclass(frozen=True, slots=True)
class Durations:
    """How long something took, over the tickets it happened to (`count`); medians are None
    when it happened to none."""

    count: int
    median_office: timedelta | None
    median_calendar: timedelta | None

    @classmethod
    def of(cls, office: Sequence[timedelta], calendar: Sequence[timedelta]) -> Durations:
        if not calendar:
            return cls(0, None, None)
        return cls(len(calendar), statistics.median(office), statistics.median(calendar))


@dataclass(frozen=True, slots=True)
class Satisfaction:
    """The workers' answers after a resolution (Ticket.solved, Ticket.rating)."""

    answers: int  # said whether the problem was solved
    solved: int  # of them, said it was
    ratings: int
    mean_rating: float | None

    @property
    def solved_share(self) -> float | None:
        return self.solved / self.answers if self.answers else None


@dataclass(frozen=True, slots=True)
class Week:
    """Tickets opened in one week (Monday to Sunday, local dates), per category key."""

    start: date
    by_category: dict[str, int]


@dataclass(frozen=True, slots=True)
class TicketFigures:
    total: int
    by_status: dict[str, int]  # each dict: key -> count, the largest first
    by_kind: dict[str, int]
    by_category: dict[str, int]  # NONE for tickets without one
    by_district: dict[str, int]
    resolved: int  # is_resolution
    first_reply: Durations
    resolution: Durations
    sla: timedelta
    sla_breaches: int
    satisfaction: Satisfaction
    weeks: list[Week]  # every week of the period, empty ones too
    resolution_times: list[timedelta] = field(default_factory=list)  # calendar, for a chart

    @property
    def resolution_rate(self) -> float | None:
        return self.resolved / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class BroadcastLine:
    id: int
    started_at: datetime
    status: str
    deliveries: dict[str, int]  # DeliveryStatus -> rows


@dataclass(frozen=True, slots=True)
class BroadcastFigures:
    """Broadcasts whose sending started in the period, and what became of their deliveries."""

    broadcasts: list[BroadcastLine]
    deliveries: dict[str, int]  # every DeliveryStatus, zeros included, over all of them

    @property
    def recipients(self) -> int:
        return sum(self.deliveries.values())

    @property
    def delivery_rate(self) -> float | None:
        """Sent among every delivery row (those still pending or sending count as not yet)."""
        return self.deliveries[DeliveryStatus.SENT] / self.recipients if self.recipients else None


@dataclass(frozen=True, slots=True)
class WorkerFigures:
    new: int  # people who first wrote to the hotline in the period (Person.created_at)
    active: int  # see worker_figures


@dataclass(frozen=True, slots=True)
class Figures:
    first: date  # the period's local dates, both included
    last: date
    tickets: TicketFigures
    broadcasts: BroadcastFigures
    workers: WorkerFigures


async def figures(
    session: AsyncSession,
    *,
    first: date,
    last: date,
    hours: OfficeHours,
    now: datetime,
    sla: timedelta = DEFAULT_SLA,
) -> Figures:
    """Everything /stats and `hotline stats` show, for the local dates first to last."""
    since, until = period_bounds(first, last, timezone=hours.timezone)
    return Figures(
        first=first,
        last=last,
        tickets=await ticket_figures(
            session, since=since, until=until, hours=hours, now=now, sla=sla
        ),
        broadcasts=await broadcast_figures(session, since=since, until=until),
        workers=await worker_figures(session, since=since, until=until),
    )


async def ticket_figures(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    hours: OfficeHours,
    now: datetime,
    sla: timedelta = DEFAULT_SLA,
) -> TicketFigures:
    """The tickets opened from `since` to `until` (see the module's docstring)."""
    opened = (
        select(Ticket.id)
        .where(Ticket.created_at >= since, Ticket.created_at < until)
        .scalar_subquery()
    )
    tickets = (
        await session.exec(
            select(
                Ticket.id,
                Ticket.kind,
                Ticket.category,
                Ticket.district,
                Ticket.status,
                Ticket.created_at,
                Ticket.solved,
                Ticket.rating,
            )
            .where(col(Ticket.id).in_(opened))
            .order_by(col(Ticket.id))
        )
    ).all()
    events: dict[int, list[TicketEvent]] = {}
    for event in (
        await session.exec(
            select(TicketEvent)
            .where(col(TicketEvent.ticket_id).in_(opened))
            .order_by(col(TicketEvent.ticket_id), col(TicketEvent.id))
        )
    ).all():
        events.setdefault(event.ticket_id, []).append(event)
    replied = dict(
        (
            await session.exec(
                select(TicketMessage.ticket_id, func.min(TicketMessage.created_at))
                .where(
                    col(TicketMessage.ticket_id).in_(opened),
                    TicketMessage.direction == Direction.TO_WORKER,
                )
                .group_by(TicketMessage.ticket_id)
            )
        ).all()
    )

    reply_office, reply_calendar = [], []
    resolution_office, resolution_calendar = [], []
    resolved = breaches = 0
    for ticket in tickets:
        trail = events.get(ticket.id, [])
        if is_resolution(ticket.status, trail[-1].from_status if trail else None):
            resolved += 1
        first_reply = replied.get(ticket.id)
        if first_reply is not None:
            reply_office.append(hours.open_time_between(ticket.created_at, first_reply))
            reply_calendar.append(max(first_reply - ticket.created_at, timedelta()))
        ended = next((e.created_at for e in trail if e.to_status in RESOLUTIONS), None)
        if ended is not None:
            resolution_office.append(hours.open_time_between(ticket.created_at, ended))
            resolution_calendar.append(max(ended - ticket.created_at, timedelta()))
        claimed = next((e.created_at for e in trail if e.from_status == TicketStatus.NEW), now)
        if hours.open_time_between(ticket.created_at, claimed) >= sla:
            breaches += 1

    ratings = [t.rating for t in tickets if t.rating is not None]
    answers = [t.solved for t in tickets if t.solved is not None]
    return TicketFigures(
        total=len(tickets),
        by_status=_counted(t.status for t in tickets),
        by_kind=_counted(t.kind for t in tickets),
        by_category=_counted(t.category or NONE for t in tickets),
        by_district=_counted(t.district or NONE for t in tickets),
        resolved=resolved,
        first_reply=Durations.of(reply_office, reply_calendar),
        resolution=Durations.of(resolution_office, resolution_calendar),
        sla=sla,
        sla_breaches=breaches,
        satisfaction=Satisfaction(
            answers=len(answers),
            solved=sum(answers),
            ratings=len(ratings),
            mean_rating=statistics.fmean(ratings) if ratings else None,
        ),
        weeks=_weeks(
            [(t.created_at, t.category or NONE) for t in tickets],
            since=since,
            until=until,
            timezone=hours.timezone,
        ),
        resolution_times=resolution_calendar,
    )


async def broadcast_figures(
    session: AsyncSession, *, since: datetime, until: datetime
) -> BroadcastFigures:
    """The broadcasts that started sending from `since` to `until`; their delivery rows are
    counted as they stand now, per status."""
    started = (
        await session.exec(
            select(Broadcast.id, Broadcast.started_at, Broadcast.status)
            .where(Broadcast.started_at >= since, Broadcast.started_at < until)
            .order_by(col(Broadcast.started_at), col(Broadcast.id))
        )
    ).all()
    counts: dict[int, dict[str, int]] = {row.id: {} for row in started}
    if started:
        rows = await session.exec(
            select(BroadcastDelivery.broadcast_id, BroadcastDelivery.status, func.count())
            .where(col(BroadcastDelivery.broadcast_id).in_(list(counts)))
            .group_by(BroadcastDelivery.broadcast_id, BroadcastDelivery.status)
        )
        for broadcast_id, status, count in rows.all():
            counts[broadcast_id][status] = count
    totals = {status.value: 0 for status in DeliveryStatus}
    for per_status in counts.values():
        for status, count in per_status.items():
            totals[status] = totals.get(status, 0) + count
    return BroadcastFigures(
        broadcasts=[
            BroadcastLine(row.id, row.started_at, row.status, counts[row.id]) for row in started
        ],
        deliveries=totals,
    )


async def worker_figures(
    session: AsyncSession, *, since: datetime, until: datetime
) -> WorkerFigures:
    """New workers: people first seen in the period. Active workers: people who opened a
    ticket in the period or wrote in one of their tickets then (a TicketMessage from the
    worker: a relayed message, an addition, evidence); browsing the menu, the guide or jobs
    alone leaves no such trace and does not count."""
    new = (
        await session.exec(
            select(func.count())
            .select_from(Person)
            .where(Person.created_at >= since, Person.created_at < until)
        )
    ).one()
    who = union(
        select(Ticket.person_id).where(Ticket.created_at >= since, Ticket.created_at < until),
        select(Ticket.person_id)
        .join(TicketMessage, col(TicketMessage.ticket_id) == col(Ticket.id))
        .where(
            TicketMessage.direction == Direction.FROM_WORKER,
            TicketMessage.created_at >= since,
            TicketMessage.created_at < until,
        ),
    ).subquery()
    active = (await session.exec(select(func.count()).select_from(who))).one()
    return WorkerFigures(new=new, active=active)


def _counted(keys: Iterable[str]) -> dict[str, int]:
    """Counts, the largest first (then by key, so the order is the same every time)."""
    return dict(sorted(Counter(keys).items(), key=lambda item: (-item[1], item[0])))


def _weeks(
    opened: Sequence[tuple[datetime, str]],
    *,
    since: datetime,
    until: datetime,
    timezone: ZoneInfo,
) -> list[Week]:
    def monday(at: datetime) -> date:
        day = at.astimezone(timezone).date()
        return day - timedelta(days=day.weekday())

    first, last = monday(since), monday(until - timedelta(microseconds=1))
    weeks = {first + timedelta(weeks=n): Counter() for n in range((last - first).days // 7 + 1)}
    for created_at, category in opened:
        weeks[monday(created_at)][category] += 1
    return [Week(start, dict(counts)) for start, counts in weeks.items()]
