"""`hotline jobs import|list|expire`: what an operator runs on the server to manage listings.

The import is one transaction: the new listings, the alerts they set off (outbox rows the
running bot picks up within seconds) and the record of those alerts commit together or not
at all. The CLI checks no staff role: whoever can run it on the server already has the
database (README, "Jobs").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.jobs_import import BadRow, parse_listings
from content.catalog import Catalog
from db import jobs
from handlers.job_alerts import queue_job_alerts
from handlers.staff_jobs import local_today, vocabularies


@dataclass(frozen=True, slots=True)
class ImportReport:
    loaded: int
    already_there: int  # rows a previous import (or another line of this file) added
    repeats: list[tuple[int, int]]  # (line, the line of this file it repeats)
    bad: list[BadRow]
    alerted: int  # workers who get an alert


async def import_csv(
    sessions: async_sessionmaker[AsyncSession], *, catalog: Catalog, text: str, now: datetime
) -> ImportReport:
    """Raises CsvHeaderError (nothing loaded) when the header is wrong."""
    districts, trades = vocabularies(catalog)
    parsed = parse_listings(
        text, districts=districts, trades=trades, today=local_today(catalog, now)
    )
    async with sessions() as session, session.begin():
        added = await jobs.add_listings(
            session, listings=[listing for _, listing in parsed.listings], now=now
        )
        alerted = await queue_job_alerts(session, catalog=catalog, listing_ids=added.ids, now=now)
    return ImportReport(
        loaded=len(added.ids),
        already_there=len(added.skipped),
        repeats=parsed.repeats,
        bad=parsed.bad,
        alerted=alerted,
    )


def print_report(report: ImportReport, out: TextIO) -> None:
    skipped = report.already_there + len(report.repeats)
    print(
        f"Loaded {report.loaded} new listing(s); skipped {skipped} already there;"
        f" {len(report.bad)} bad row(s).",
        file=out,
    )
    for line, first in report.repeats:
        print(f"  line {line}: skipped, the same listing as line {first}", file=out)
    for bad in report.bad:
        print(f"  line {bad.line}: {bad.reason}", file=out)
    if report.alerted:
        print(f"Job alerts queued for {report.alerted} worker(s).", file=out)


async def print_listings(
    sessions: async_sessionmaker[AsyncSession], *, catalog: Catalog, now: datetime, out: TextIO
) -> None:
    async with sessions() as session:
        listings = await jobs.live_listings(session, today=local_today(catalog, now))
    for listing in listings:
        pay = f"{listing.pay_min}-{listing.pay_max}"
        print(
            f"{listing.id:>6}  until {listing.expires_on.isoformat()}  {listing.district:<16}"
            f" {listing.trade:<12} {pay:>11}  {listing.title} / {listing.employer}",
            file=out,
        )
    print(f"{len(listings)} listing(s) shown to workers.", file=out)


async def expire(
    sessions: async_sessionmaker[AsyncSession], *, listing_id: int, now: datetime, out: TextIO
) -> bool:
    """Takes the listing down; False when there is no listing with that id."""
    async with sessions() as session, session.begin():
        listing = await jobs.expire_listing(session, listing_id=listing_id, now=now)
    if listing is None:
        return False
    print(f"Listing {listing_id} ({listing.title}) is no longer shown to workers.", file=out)
    return True
