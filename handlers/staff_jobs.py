"""/jobs in the staff group: coordinators list, add and take down job listings there, as
`hotline jobs list|import|expire` does on the server, without a spreadsheet or a shell.

Like every staff command it is one message with its arguments (the staff side keeps no
conversation state): a listing is added with its ten fields on one line, separated by "|",
in the CSV template's order, and checked by the import's own rules (db/job_rows.py), so
the same listing added either way is stored once. The alerts it sets off are queued in the
same transaction; the running sender reads them from the outbox within seconds.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from markupsafe import Markup
from sqlmodel import select

from content import jobs as jobs_content
from content.catalog import Catalog
from db import jobs
from db.job_rows import FIELDS, Problem, Vocabulary, read_listing
from db.jobs import JobFilter
from db.models import JobListing, StaffRole
from handlers.job_alerts import queue_job_alerts
from handlers.messages import Reply

if TYPE_CHECKING:  # handlers/staff.py imports this module to dispatch /jobs
    from handlers.staff import StaffTurn

MANAGERS = (StaffRole.COORDINATOR, StaffRole.ADMIN)
SHOWN = 20  # listings written out by /jobs; the rest are counted (`hotline jobs list` has all)
SEPARATOR = "|"


async def jobs_command(turn: StaffTurn) -> None:
    """/jobs, /jobs add FIELDS, /jobs expire ID: for coordinators and admins only."""
    if turn.staff.role not in MANAGERS:
        turn.say("jobs.staff.coordinators_only")
        return
    action, _, rest = (turn.inbound.text or "").strip().partition(" ")
    action = action.lower()
    if action == "add" and rest.strip():
        await add(turn, rest)
    elif action == "expire" and rest.strip().isdigit():
        await expire(turn, int(rest.strip()))
    elif not action:
        await show_listings(turn)
    else:
        turn.say("jobs.staff.usage", fields=SEPARATOR.join(FIELDS))


async def show_listings(turn: StaffTurn) -> None:
    """The usage, then the newest live listings."""
    total, shown = await jobs.search_listings(
        turn.session,
        filters=JobFilter(),
        today=local_today(turn.catalog, turn.now),
        offset=0,
        limit=SHOWN,
    )
    t = turn.t
    lines = [str(t("jobs.staff.usage", fields=SEPARATOR.join(FIELDS))), ""]
    lines.append(str(t("jobs.staff.list_title", count=total)))
    for listing in shown:
        lines.append(
            str(
                t(
                    "jobs.staff.line",
                    id=listing.id,
                    title=listing.title,
                    employer=listing.employer,
                    district=t(f"districts.{listing.district}"),
                    pay_min=listing.pay_min,
                    pay_max=listing.pay_max,
                    expires=listing.expires_on.isoformat(),
                )
            )
        )
    if total > len(shown):
        lines.append(str(t("jobs.staff.more", count=total - len(shown))))
    turn.replies.append(Reply("\n".join(lines)))


async def add(turn: StaffTurn, typed: str) -> None:
    """Checks the fields as the import checks a row; a good listing is stored with its
    alerts queued, a bad one is answered with every reason and nothing is stored."""
    cells = [cell.strip() for cell in typed.split(SEPARATOR)]
    if len(cells) != len(FIELDS):
        turn.say(
            "jobs.staff.field_count",
            count=len(cells),
            expected=len(FIELDS),
            fields=SEPARATOR.join(FIELDS),
        )
        return
    districts, trades = vocabularies(turn.catalog)
    listing, problems = read_listing(
        dict(zip(FIELDS, cells, strict=True)),
        districts=districts,
        trades=trades,
        today=local_today(turn.catalog, turn.now),
    )
    if problems:
        reasons = Markup("\n").join(Markup("• ") + _problem(turn, p) for p in problems)
        turn.say("jobs.staff.refused", reasons=reasons)  # each already escaped
        return
    added = await jobs.add_listings(turn.session, listings=[listing], now=turn.now)
    if not added.ids:
        found = await turn.session.exec(
            select(JobListing.id).where(JobListing.source_key == listing.source_key)
        )
        turn.say("jobs.staff.already_there", id=found.one(), title=listing.title)
        return
    alerted = await queue_job_alerts(
        turn.session, catalog=turn.catalog, listing_ids=added.ids, now=turn.now
    )
    turn.say("jobs.staff.added", id=added.ids[0], title=listing.title, alerted=alerted)


async def expire(turn: StaffTurn, listing_id: int) -> None:
    listing = await turn.session.get(JobListing, listing_id)
    if listing is None:
        turn.say("jobs.staff.unknown", id=listing_id)
    elif listing.expired_at is not None:
        turn.say("jobs.staff.already_expired", id=listing_id, title=listing.title)
    else:
        await jobs.expire_listing(turn.session, listing_id=listing_id, now=turn.now)
        turn.say("jobs.staff.expired", id=listing_id, title=listing.title)


def _problem(turn: StaffTurn, problem: Problem) -> Markup:
    values = dict(problem.values)
    if "field" in values:  # the column's name as the staff know it from the usage text
        values["field"] = turn.t(f"jobs.staff.fields.{values['field']}")
    return turn.t(f"jobs.staff.problems.{problem.key}", **values)


def vocabularies(catalog: Catalog) -> tuple[Vocabulary, Vocabulary]:
    """Districts and trades by key or label in every language (here and in the CSV import)."""
    trades = jobs_content.load(catalog.folder).trades
    return (
        Vocabulary(
            {d: catalog.labels_in_every_language(f"districts.{d}") for d in catalog.districts}
        ),
        Vocabulary({t: catalog.labels_in_every_language(f"jobs.trades.{t}") for t in trades}),
    )


def local_today(catalog: Catalog, now: datetime) -> date:
    """The centre's date: a listing is shown to the end of its expiry day there."""
    return now.astimezone(catalog.office_hours.timezone).date()
