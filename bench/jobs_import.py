"""How long `hotline jobs import` takes for a file of 10,000 listings (the issue's figure).

Run from the repository root:

    .venv/bin/python bench/jobs_import.py [--rows 10000] [--subscribers 200] [--database URL]

It writes a CSV of `--rows` distinct listings (UTF-8 with a byte-order mark, as a spreadsheet
saves it, spread over the districts and trades of content/), makes `--subscribers` workers
with a job alert each (a district and a trade, as workers choose them), and times the import
as the command runs it: parse and check every row, insert the new ones, queue one alert per
matching worker and record what each was sent, in one transaction. Then it imports the same
file again (nothing new: every row is skipped). The database is a fresh SQLite file in a
temporary folder, or an empty PostgreSQL database given with --database (upgraded first).
Nothing here asserts on timings: it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bot.jobs_admin import import_csv, local_today
from bot.jobs_import import HEADER, decode
from content import jobs as jobs_content
from content.catalog import Catalog
from db.migrate import upgrade
from db.models import JobSubscription, Person, utcnow
from db.session import create_engine, session_factory


def listings_csv(catalog: Catalog, rows: int) -> bytes:
    trades = jobs_content.load(catalog.folder).trades
    expires = (local_today(catalog, utcnow()) + timedelta(days=60)).isoformat()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # as Excel writes it
    writer.writerow(HEADER)
    for n in range(rows):
        writer.writerow(
            [
                f"Line worker {n}",
                f"Factory {n % 700}",
                catalog.districts[n % len(catalog.districts)],
                trades[n % len(trades)],
                4000 + n % 2000,
                6000 + n % 3000,
                "8:00-20:00, two shifts",
                "yes" if n % 2 else "no",
                f"0512-{n:08d}",
                expires,
            ]
        )
    return "\ufeff".encode() + out.getvalue().encode()


async def add_subscribers(sessions, catalog: Catalog, count: int) -> None:
    trades = jobs_content.load(catalog.folder).trades
    async with sessions() as session, session.begin():
        for n in range(count):
            person = Person(channel="telegram", external_id=str(900_000 + n), language="zh")
            session.add(person)
            await session.flush()
            district = catalog.districts[n % len(catalog.districts)]
            session.add(
                JobSubscription(person_id=person.id, district=district, trade=trades[n % 7])
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--database", help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    catalog = Catalog()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        engine = create_engine(url)
        await upgrade(engine)
        sessions = session_factory(engine)
        await add_subscribers(sessions, catalog, args.subscribers)
        data = listings_csv(catalog, args.rows)
        for attempt in ("first import", "same file again"):
            started = time.perf_counter()
            report = await import_csv(sessions, catalog=catalog, text=decode(data), now=utcnow())
            seconds = time.perf_counter() - started
            print(
                f"{engine.dialect.name}, {attempt}: {args.rows} rows in {seconds:.2f} s;"
                f" loaded {report.loaded}, already there {report.already_there},"
                f" bad {len(report.bad)}, alerts queued {report.alerted}"
            )
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
