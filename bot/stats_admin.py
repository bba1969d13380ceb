"""`hotline stats [--since DATE] [--until DATE] [--csv FILE]`: the figures of /stats on the
server, as text for a terminal (English, keys as stored, like `hotline jobs list`) and, with
--csv, as a spreadsheet-safe CSV file (README, "Figures": its columns are an interface).

The CSV is in long form, one figure a row: `section,key,value`. Two-part keys (a week and a
category, a broadcast and a delivery status) are joined with "/". Durations are in minutes,
shares between 0 and 1, an empty value where there is nothing to measure. Every cell that a
spreadsheet would read as a formula (=, +, -, @, or a tab or carriage return first) starts
with a single quote instead.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime, timedelta
from typing import TextIO

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.settings import Settings, StorageSettings, load_settings
from content.catalog import Catalog
from db import stats

CSV_HEADER = ("section", "key", "value")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class StatsSettings(StorageSettings):
    """What `hotline stats` needs: the database, the content and the SLA (no token)."""

    sla_minutes: int = Settings.model_fields["sla_minutes"]


def local_date(text: str) -> date:
    """A date written like 2026-01-31; ValueError saying so otherwise."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2026-01-31") from None


def run(
    args: argparse.Namespace,
    *,
    database: Callable[[str], AbstractAsyncContextManager[async_sessionmaker[AsyncSession]]],
    now: datetime,
) -> int:
    """`hotline stats`: exit 0, or 2 with one sentence for a date that is unreadable or a
    period that ends before it starts; 1 when the CSV file cannot be written."""
    settings = load_settings(StatsSettings)
    catalog = Catalog(settings.content_dir)
    _, last = stats.default_period(now, timezone=catalog.office_hours.timezone)
    try:
        if args.until is not None:
            last = local_date(args.until)
        first = last - timedelta(days=stats.DEFAULT_DAYS - 1)
        if args.since is not None:
            first = local_date(args.since)
    except ValueError as error:
        print(f"hotline stats: {error}", file=sys.stderr)
        return 2
    if first > last:
        print(
            f"hotline stats: --since {first} is after --until {last}: the period would be empty",
            file=sys.stderr,
        )
        return 2

    async def read() -> stats.Figures:
        async with database(settings.database_url) as sessions:
            return await read_figures(
                sessions,
                catalog=catalog,
                first=first,
                last=last,
                now=now,
                sla=timedelta(minutes=settings.sla_minutes),
            )

    figures = asyncio.run(read())
    print_figures(figures, sys.stdout)
    if args.csv is not None:
        try:
            with args.csv.open("w", encoding="utf-8", newline="") as out:
                write_csv(figures, out)
        except OSError as error:
            print(f"hotline stats: cannot write {args.csv}: {error.strerror}", file=sys.stderr)
            return 1
        print(f"CSV written to {args.csv}")
    return 0


async def read_figures(
    sessions: async_sessionmaker[AsyncSession],
    *,
    catalog: Catalog,
    first: date,
    last: date,
    now: datetime,
    sla: timedelta,
) -> stats.Figures:
    async with sessions() as session:
        return await stats.figures(
            session, first=first, last=last, hours=catalog.office_hours, now=now, sla=sla
        )


def spreadsheet_safe(cell: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (CSV injection)."""
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def write_csv(figures: stats.Figures, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in csv_rows(figures):
        writer.writerow([spreadsheet_safe(cell) for cell in row])


def csv_rows(figures: stats.Figures) -> Iterator[tuple[str, str, str]]:
    """Every figure as (section, key, value), in the order the text gives them."""
    tickets = figures.tickets
    yield "period", "first", figures.first.isoformat()
    yield "period", "last", figures.last.isoformat()
    yield "tickets", "opened", str(tickets.total)
    for section, counts in (
        ("status", tickets.by_status),
        ("kind", tickets.by_kind),
        ("category", tickets.by_category),
        ("district", tickets.by_district),
    ):
        for key, count in counts.items():
            yield section, key, str(count)
    yield "resolution", "resolved", str(tickets.resolved)
    yield "resolution", "rate", _number(tickets.resolution_rate)
    for section, durations in (
        ("first_reply", tickets.first_reply),
        ("time_to_resolution", tickets.resolution),
    ):
        yield section, "tickets", str(durations.count)
        yield section, "median_office_minutes", _minutes(durations.median_office)
        yield section, "median_calendar_minutes", _minutes(durations.median_calendar)
    yield "sla", "minutes", _minutes(tickets.sla)
    yield "sla", "breaches", str(tickets.sla_breaches)
    feedback = tickets.satisfaction
    yield "satisfaction", "answers", str(feedback.answers)
    yield "satisfaction", "solved", str(feedback.solved)
    yield "satisfaction", "solved_share", _number(feedback.solved_share)
    yield "satisfaction", "ratings", str(feedback.ratings)
    yield "satisfaction", "mean_rating", _number(feedback.mean_rating)
    broadcasts = figures.broadcasts
    yield "broadcasts", "count", str(len(broadcasts.broadcasts))
    yield "broadcasts", "recipients", str(broadcasts.recipients)
    for status, count in broadcasts.deliveries.items():
        yield "broadcasts", status, str(count)
    yield "broadcasts", "delivery_rate", _number(broadcasts.delivery_rate)
    for line in broadcasts.broadcasts:
        for status, count in sorted(line.deliveries.items()):
            yield "broadcast", f"{line.id}/{status}", str(count)
    yield "workers", "new", str(figures.workers.new)
    yield "workers", "active", str(figures.workers.active)
    for week in tickets.weeks:
        for category, count in week.by_category.items():
            yield "week", f"{week.start.isoformat()}/{category}", str(count)


def print_figures(figures: stats.Figures, out: TextIO) -> None:
    """The figures for a terminal."""
    tickets = figures.tickets

    def line(text: str = "") -> None:
        print(text, file=out)

    line(f"Hotline figures {figures.first} to {figures.last} (local dates, both included)")
    line(f"tickets opened: {tickets.total}")
    for title, counts in (
        ("status now", tickets.by_status),
        ("kind", tickets.by_kind),
        ("category", tickets.by_category),
        ("district", tickets.by_district),
    ):
        if counts:
            line(f"  {title + ':':<12} " + ", ".join(f"{key} {n}" for key, n in counts.items()))
    line(f"resolved: {tickets.resolved} ({_percent(tickets.resolution_rate)})")
    for title, durations in (
        ("first reply", tickets.first_reply),
        ("resolution", tickets.resolution),
    ):
        line(
            f"time to {title} (median of {durations.count}):"
            f" {_duration(durations.median_office)} office hours,"
            f" {_duration(durations.median_calendar)} calendar"
        )
    sla = int(tickets.sla.total_seconds() // 60)
    line(f"unclaimed for {sla} min of office hours or more: {tickets.sla_breaches}")
    feedback = tickets.satisfaction
    mean = f"{feedback.mean_rating:.1f}" if feedback.mean_rating is not None else "-"
    line(
        f"feedback: {feedback.solved} of {feedback.answers} said solved"
        f" ({_percent(feedback.solved_share)}); {feedback.ratings} rating(s), mean {mean}"
    )
    broadcasts = figures.broadcasts
    counted = ", ".join(f"{status} {n}" for status, n in broadcasts.deliveries.items())
    line(
        f"broadcasts: {len(broadcasts.broadcasts)} to {broadcasts.recipients} recipient(s),"
        f" delivered {_percent(broadcasts.delivery_rate)} ({counted})"
    )
    workers = figures.workers
    line(f"workers: {workers.new} new, {workers.active} active")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")


def _minutes(delta: timedelta | None) -> str:
    return "" if delta is None else _number(delta.total_seconds() / 60)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _duration(delta: timedelta | None) -> str:
    """45m, 3h05m, 2d04h."""
    if delta is None:
        return "-"
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{minutes // 1440}d{minutes % 1440 // 60:02d}h"
