"""Queries about job listings, workers' job alerts and the alerts already sent.

A listing is live from its import until the end of its `expires_on` day (the centre's local
date, passed in as `today`) unless it was taken down before (`expired_at`); nothing here
returns a listing that is not live to show to a worker.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import JobAlertSent, JobListing, JobSubscription, Person

# Rows per multi-row INSERT or IN list: far below SQLite's and PostgreSQL's 32,766 parameters.
INSERT_CHUNK = 500


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a worker browses by; None is "any"."""

    district: str | None = None
    trade: str | None = None
    pay_min: int | None = None  # yuan a month the job can pay at least (its pay_max)


@dataclass(frozen=True, slots=True)
class NewListing:
    title: str
    employer: str
    district: str
    trade: str
    pay_min: int
    pay_max: int
    hours: str
    housing: bool
    contact: str
    expires_on: date
    source_key: str


@dataclass(frozen=True, slots=True)
class Added:
    ids: list[int]  # the listings new to the database, in the order given
    skipped: list[str]  # the source keys already there


@dataclass(frozen=True, slots=True)
class Alert:
    """The new listings one worker is to be told about, and the subscriptions that matched."""

    person: Person
    subscription_ids: list[int]
    listings: list[JobListing]


def _live(today: date):
    return (col(JobListing.expires_on) >= today) & col(JobListing.expired_at).is_(None)


def _matching(filters: JobFilter):
    conditions = []
    if filters.district is not None:
        conditions.append(JobListing.district == filters.district)
    if filters.trade is not None:
        conditions.append(JobListing.trade == filters.trade)
    if filters.pay_min is not None:
        conditions.append(col(JobListing.pay_max) >= filters.pay_min)
    return conditions


def matches(listing: JobListing, filters: JobFilter) -> bool:
    """The same test as a search's, for listings already in memory."""
    return (
        (filters.district is None or listing.district == filters.district)
        and (filters.trade is None or listing.trade == filters.trade)
        and (filters.pay_min is None or listing.pay_max >= filters.pay_min)
    )


async def search_listings(
    session: AsyncSession, *, filters: JobFilter, today: date, offset: int, limit: int
) -> tuple[int, list[JobListing]]:
    """How many live listings match, and the page of them from `offset`, newest first."""
    where = [_live(today), *_matching(filters)]
    total = (await session.exec(select(func.count()).select_from(JobListing).where(*where))).one()
    result = await session.exec(
        select(JobListing)
        .where(*where)
        .order_by(col(JobListing.posted_at).desc(), col(JobListing.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return total, list(result.all())


async def live_listing(session: AsyncSession, *, listing_id: int, today: date) -> JobListing | None:
    result = await session.exec(select(JobListing).where(JobListing.id == listing_id, _live(today)))
    return result.first()


async def live_listings(session: AsyncSession, *, today: date) -> list[JobListing]:
    """Every listing still shown, oldest first (`hotline jobs list`)."""
    result = await session.exec(select(JobListing).where(_live(today)).order_by(col(JobListing.id)))
    return list(result.all())


async def add_listings(
    session: AsyncSession, *, listings: Sequence[NewListing], now: datetime
) -> Added:
    """Inserts the listings not already there (by source key) with one statement, run for
    all rows at once; a listing another import added meanwhile is skipped, not an error."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    unique: dict[str, NewListing] = {}
    for listing in listings:
        unique.setdefault(listing.source_key, listing)
    if not unique:
        return Added(ids=[], skipped=[])
    table = JobListing.__table__  # Core, one statement for all rows: SQLAlchemy batches it
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["source_key"])
        .returning(table.c.id, table.c.source_key)
    )
    result = await session.exec(
        statement,
        params=[
            {
                "title": row.title,
                "employer": row.employer,
                "district": row.district,
                "trade": row.trade,
                "pay_min": row.pay_min,
                "pay_max": row.pay_max,
                "hours": row.hours,
                "housing": row.housing,
                "contact": row.contact,
                "posted_at": now,
                "expires_on": row.expires_on,
                "expired_at": None,
                "source_key": row.source_key,
            }
            for row in unique.values()
        ],
    )
    added = {key: row_id for row_id, key in result.all()}
    return Added(
        ids=[added[key] for key in unique if key in added],
        skipped=[key for key in unique if key not in added],
    )


async def expire_listing(
    session: AsyncSession, *, listing_id: int, now: datetime
) -> JobListing | None:
    """Takes a listing down now (it stays in the database, never shown again)."""
    listing = await session.get(JobListing, listing_id)
    if listing is not None and listing.expired_at is None:
        listing.expired_at = now
        await session.flush()
    return listing


# -- subscriptions ---------------------------------------------------------------------------


async def subscriptions_of(session: AsyncSession, *, person_id: int) -> list[JobSubscription]:
    result = await session.exec(
        select(JobSubscription)
        .where(JobSubscription.person_id == person_id)
        .order_by(col(JobSubscription.id))
    )
    return list(result.all())


async def subscribe(
    session: AsyncSession, *, person_id: int, filters: JobFilter, now: datetime, limit: int
) -> tuple[JobSubscription | None, str]:
    """Adds a subscription with these filters. Returns it and "added", or the one already
    there and "exists", or None and "full" when the person has `limit` already."""
    mine = await subscriptions_of(session, person_id=person_id)
    for existing in mine:
        if JobFilter(existing.district, existing.trade, existing.pay_min) == filters:
            return existing, "exists"
    if len(mine) >= limit:
        return None, "full"
    subscription = JobSubscription(
        person_id=person_id,
        district=filters.district,
        trade=filters.trade,
        pay_min=filters.pay_min,
        created_at=now,
    )
    session.add(subscription)
    await session.flush()
    return subscription, "added"


async def unsubscribe(
    session: AsyncSession, *, person_id: int, subscription_ids: Iterable[int] | None = None
) -> int:
    """Deletes the person's subscriptions (these ones, or all); returns how many went. Only
    the person's own: an id of someone else's does nothing."""
    statement = delete(JobSubscription).where(JobSubscription.person_id == person_id)
    if subscription_ids is not None:
        statement = statement.where(col(JobSubscription.id).in_(list(subscription_ids)))
    result = await session.exec(statement.execution_options(synchronize_session=False))
    return result.rowcount


# -- alerts ----------------------------------------------------------------------------------


async def alerts_for_new_listings(
    session: AsyncSession, *, listing_ids: Sequence[int]
) -> list[Alert]:
    """For each worker with a subscription that matches some of these listings and not yet
    alerted to them: one Alert with all of them. Workers who blocked the bot or were
    forgotten get none."""
    if not listing_ids:
        return []
    rows = await session.exec(
        select(JobSubscription, Person)
        .join(Person, Person.id == JobSubscription.person_id)
        .where(col(Person.blocked_at).is_(None), col(Person.forgotten_at).is_(None))
        .order_by(col(JobSubscription.person_id), col(JobSubscription.id))
    )
    subscriptions = rows.all()
    if not subscriptions:
        return []
    listings: list[JobListing] = []
    for start in range(0, len(listing_ids), INSERT_CHUNK):
        chunk = list(listing_ids[start : start + INSERT_CHUNK])
        found = await session.exec(select(JobListing).where(col(JobListing.id).in_(chunk)))
        listings += found.all()
    listings.sort(key=lambda listing: listing.id)
    index = _Index(listings)
    wanted: dict[int, tuple[Person, list[int], dict[int, JobListing]]] = {}
    for subscription, person in subscriptions:
        filters = JobFilter(subscription.district, subscription.trade, subscription.pay_min)
        found = [listing for listing in index.candidates(filters) if matches(listing, filters)]
        if not found:
            continue
        _, ids, chosen = wanted.setdefault(person.id, (person, [], {}))
        ids.append(subscription.id)
        chosen.update((listing.id, listing) for listing in found)
    if not wanted:
        return []
    already = await _alerted(session, person_ids=list(wanted), listing_ids=listing_ids)
    alerts = []
    for person_id, (person, ids, chosen) in wanted.items():
        fresh = [chosen[i] for i in sorted(chosen) if (person_id, i) not in already]
        if fresh:
            alerts.append(Alert(person, ids, fresh))
    return alerts


class _Index:
    """The new listings by district and trade, so each subscription looks only at its own."""

    def __init__(self, listings: list[JobListing]) -> None:
        self.every = listings
        self.by_district: dict[str, list[JobListing]] = defaultdict(list)
        self.by_trade: dict[str, list[JobListing]] = defaultdict(list)
        self.by_both: dict[tuple[str, str], list[JobListing]] = defaultdict(list)
        for listing in listings:
            self.by_district[listing.district].append(listing)
            self.by_trade[listing.trade].append(listing)
            self.by_both[(listing.district, listing.trade)].append(listing)

    def candidates(self, filters: JobFilter) -> list[JobListing]:
        if filters.district is not None and filters.trade is not None:
            return self.by_both.get((filters.district, filters.trade), [])
        if filters.district is not None:
            return self.by_district.get(filters.district, [])
        if filters.trade is not None:
            return self.by_trade.get(filters.trade, [])
        return self.every


async def _alerted(
    session: AsyncSession, *, person_ids: list[int], listing_ids: Sequence[int]
) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    for start in range(0, len(listing_ids), INSERT_CHUNK):
        chunk = list(listing_ids[start : start + INSERT_CHUNK])
        found = await session.exec(
            select(JobAlertSent.person_id, JobAlertSent.listing_id).where(
                col(JobAlertSent.listing_id).in_(chunk),
                col(JobAlertSent.person_id).in_(person_ids),
            )
        )
        pairs.update((person_id, listing_id) for person_id, listing_id in found.all())
    return pairs


async def record_alerts(session: AsyncSession, *, alerts: Sequence[Alert], now: datetime) -> None:
    """Notes each (worker, listing) alerted, in the transaction that queues the alerts."""
    rows = [
        {"person_id": alert.person.id, "listing_id": listing.id, "sent_at": now}
        for alert in alerts
        for listing in alert.listings
    ]
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(rows), INSERT_CHUNK):
        await session.exec(
            insert(JobAlertSent)
            .values(rows[start : start + INSERT_CHUNK])
            .on_conflict_do_nothing(index_elements=["person_id", "listing_id"])
        )


async def forget_jobs_of(session: AsyncSession, *, person_id: int) -> None:
    """/forget: the person's job alerts and the record of what they were alerted to."""
    await session.exec(delete(JobAlertSent).where(JobAlertSent.person_id == person_id))
    await session.exec(delete(JobSubscription).where(JobSubscription.person_id == person_id))
