"""`hotline purge [--closed-before DATE] [--dry-run]`: the retention period carried out on the
server (what goes and what stays: db/retention.py).

DATE is a local date of the centre (the time zone of content/office_hours.yaml, as for
`hotline stats`): tickets that ended before 00:00 of that day are purged. Without it,
HOTLINE_RETENTION_DAYS before today. A date so recent that a ticket ended before it could
still be reopened by its worker (content/hotline.yaml `reopen_days`) is refused: the reopened
ticket would go on without its card's answers.

Each batch of tickets (then of people) is one transaction, so a purge of years neither holds
one long transaction against the running bot nor leaves a ticket half erased if it stops;
run again, it goes on where it stopped. Nothing is sent to anyone. On SQLite the write-ahead
log is emptied after, as after /forget, so the erased pages are gone from the disk too.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime, time, timedelta
from typing import TextIO

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.settings import Settings, StorageSettings, load_settings
from bot.stats_admin import local_date
from content.catalog import Catalog
from db import retention
from db.retention import Purged
from db.session import erase_traces


class PurgeSettings(StorageSettings):
    """What `hotline purge` needs: the database, the content (its time zone, reopen_days) and
    the retention period (no token)."""

    retention_days: int | None = Settings.model_fields["retention_days"]


def run(
    args: argparse.Namespace,
    *,
    database: Callable[[str], AbstractAsyncContextManager[async_sessionmaker[AsyncSession]]],
    now: datetime,
) -> int:
    """Exit 0 with the counts; 2 with one sentence when no date is given nor set, the date is
    unreadable, or it is too recent."""
    settings = load_settings(PurgeSettings)
    catalog = Catalog(settings.content_dir)
    zone = catalog.office_hours.timezone
    today = now.astimezone(zone).date()
    try:
        day = cutoff_day(args.closed_before, today=today, retention_days=settings.retention_days)
    except ValueError as error:
        print(f"hotline purge: {error}", file=sys.stderr)
        return 2
    latest = today - timedelta(days=catalog.reopen_days)
    if day > latest:
        print(
            f"hotline purge: {day} is too recent: a ticket ended in the last"
            f" {catalog.reopen_days} days may still be reopened by its worker (reopen_days in"
            f" content/hotline.yaml); the latest date is {latest}",
            file=sys.stderr,
        )
        return 2
    cutoff = datetime.combine(day, time(), tzinfo=zone)

    async def carry_out() -> Purged:
        async with database(settings.database_url) as sessions:
            return await purge(sessions, closed_before=cutoff, now=now, dry_run=args.dry_run)

    purged = asyncio.run(carry_out())
    print_counts(purged, day=day, zone=str(zone), dry_run=args.dry_run, out=sys.stdout)
    return 0


def cutoff_day(text: str | None, *, today: date, retention_days: int | None) -> date:
    """The date given, or today minus the retention period; ValueError saying what is wrong."""
    if text is not None:
        return local_date(text)
    if retention_days is None:
        raise ValueError("give --closed-before DATE, or set HOTLINE_RETENTION_DAYS")
    return today - timedelta(days=retention_days)


async def purge(
    sessions: async_sessionmaker[AsyncSession],
    *,
    closed_before: datetime,
    now: datetime,
    dry_run: bool = False,
    batch: int = retention.BATCH,
) -> Purged:
    """Purges the tickets ended before `closed_before`, then forgets the people with nothing
    left after it, `batch` at a time, one transaction each; or, `dry_run`, counts them."""
    if dry_run:
        async with sessions() as session:
            return await retention.count(session, closed_before=closed_before)

    async def tickets(session: AsyncSession) -> tuple[Purged, list[int]]:
        ids = await retention.tickets_to_purge(session, closed_before=closed_before, limit=batch)
        done = await retention.purge_tickets(
            session, ticket_ids=ids, closed_before=closed_before, now=now
        )
        return done, ids

    async def people(session: AsyncSession) -> tuple[Purged, list[int]]:
        ids = await retention.people_to_purge(session, inactive_before=closed_before, limit=batch)
        forgotten = await retention.purge_people(
            session, person_ids=ids, inactive_before=closed_before, now=now
        )
        return Purged(people=forgotten), ids

    total = await _in_batches(sessions, tickets) + await _in_batches(sessions, people)
    if total != Purged():
        await erase_traces(sessions.kw["bind"])
    return total


async def _in_batches(
    sessions: async_sessionmaker[AsyncSession],
    step: Callable[[AsyncSession], Awaitable[tuple[Purged, list[int]]]],
) -> Purged:
    """Runs `step` a transaction at a time until it chooses nothing: one that changed between
    the choice and the write is not chosen again, so this ends."""
    total = Purged()
    while True:
        async with sessions() as session, session.begin():
            done, chosen = await step(session)
        total += done
        if not chosen:
            return total


def print_counts(purged: Purged, *, day: date, zone: str, dry_run: bool, out: TextIO) -> None:
    """A heading, then one `name: count` line each (what an operator's script can read)."""
    if dry_run:
        print(f"Dry run, nothing changed. Tickets ended before {day} ({zone}):", file=out)
    else:
        print(f"Purged the tickets ended before {day} ({zone}):", file=out)
    print(f"tickets: {purged.tickets}", file=out)
    print(f"messages: {purged.messages}", file=out)
    print(f"evidence files: {purged.evidence}", file=out)
    print(f"people: {purged.people}", file=out)
