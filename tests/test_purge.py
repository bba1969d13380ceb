"""`hotline purge`: tickets ended before the date lose what identifies their workers, in the
tables, the stored updates, the outbox and the SQLite file; tickets ended after it, open or
reopened keep everything; people with nothing left after it are forgotten, the others not;
the figures of /stats are the same before and after; a dry run changes nothing; the command
prints the counts; migration 0008 upgrades a 0007 database. On SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from bot import purge_admin
from bot.cli import _sessions as cli_sessions
from content.catalog import Catalog
from db import conversations, inbox, outbox, stats, tickets
from db.migrate import downgrade, upgrade
from db.models import (
    Direction,
    InboxStatus,
    InboxUpdate,
    JobSubscription,
    OutboxItem,
    OutboxStatus,
    Pace,
    Person,
    Ticket,
    TicketMessage,
    TicketStatus,
)
from db.outbox import NewItem
from db.retention import Purged
from db.session import create_engine, session_factory
from tests.test_cli import hotline as run_cli
from tests.test_forget import everything_stored
from tests.test_stats import load_dataset

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CUTOFF_DAY = date(2026, 10, 1)
CUTOFF = datetime.combine(CUTOFF_DAY, time(), tzinfo=SHANGHAI)


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SHANGHAI)


def secrets(n: int) -> dict[str, str]:
    """What ticket n's worker told: distinct per ticket, none a part of another's."""
    return {
        "phone": f"139{n:04d}8765",
        "employer": f"Employer-{n:02d}-Plastics",
        "address": f"Lane-{n:02d}-Qianjin-Road",
        "story": f"Foreman-{n:02d} kept my pay",
        "message": f"Message-{n:02d}-he-threatened-me",
        "evidence": f"AgADfile{n:02d}evidence",
        "caption": f"Payslip-{n:02d}-photo",
    }


# Ticket n -> (its person, what becomes of it, purged by a cutoff of 2026-10-01?)
TICKETS = {
    1: (1, "closed in June", True),
    2: (2, "resolved in September", True),
    3: (2, "open since May (claimed)", False),
    4: (3, "closed in October, after the date", False),
    5: (4, "closed in May, reopened by the worker in June", False),
    6: (5, "withdrawn in April", True),
    7: (6, "closed in April; its worker keeps a job alert", True),
    8: (7, "referred in July; its worker came back in November", True),
}
# Person n -> forgotten? (1: nothing after the date; 5: withdrawn, nothing after; 8: no
# ticket, a draft in March; 9: the same, but an update of theirs from November waits in the
# inbox; the others have an open ticket, something after the date, or a job alert.)
PEOPLE = {1: True, 2: False, 3: False, 4: False, 5: True, 6: False, 7: False, 8: True, 9: False}


def name(n: int) -> str:
    return f"Workername{n:02d}"


async def write_cases(sessions) -> None:
    """The tickets and people above, written with the real query functions: evidence, the
    worker's and the counsellor's messages with their relay ids, a note, a stored update
    and outbox rows in each ticket's topic, and each person's own update and outbox row."""
    async with sessions() as session, session.begin():
        people = {}
        for n in PEOPLE:
            person = Person(
                channel="telegram",
                external_id=str(7700000 + n),
                language="zh",
                display_name=name(n),
                username=f"user_{n:02d}_x",
                consented_at=at(1, 10),
                created_at=at(1, 10),
            )
            session.add(person)
            people[n] = person
        await session.flush()
        for n, (who, _, _) in TICKETS.items():
            opened = at(3 + n % 3, 1 + n)
            said = secrets(n)
            ticket, _ = await tickets.open_ticket(
                session,
                person_id=people[who].id,
                kind="complaint",
                language="zh",
                prefix="HL",
                now=opened,
                fields={
                    "category": "unpaid_wages",
                    "district": "yushan",
                    "employer": said["employer"],
                    "address": said["address"],
                    "story": said["story"],
                    "phone": said["phone"],
                    "amount_owed": 8500,
                    "wage_months": "March to May",
                    "share_identity": True,
                },
                evidence=[
                    {"kind": "photo", "file_id": said["evidence"], "caption": said["caption"]}
                ],
                author="worker",
            )
            ticket.topic_id = 5000 + n
            await tickets.change_status(
                session,
                ticket=ticket,
                to_status=TicketStatus.CLAIMED,
                actor="Counsellor Li",
                now=opened + timedelta(minutes=20),
            )
            answer = await tickets.add_ticket_message(
                session,
                ticket=ticket,
                direction=Direction.TO_WORKER,
                author="Counsellor Li",
                now=opened + timedelta(minutes=30),
                text=f"Counsellor Li: did {said['employer']} pay?",
            )
            await tickets.record_delivery(
                session,
                message_id=answer.id,
                status="sent",
                worker_message_id=900 + n,
                staff_message_id=800 + n,
            )
            await tickets.add_ticket_message(
                session,
                ticket=ticket,
                direction=Direction.FROM_WORKER,
                author="worker",
                now=opened + timedelta(minutes=40),
                text=said["message"],
            )
            await tickets.add_ticket_message(
                session,
                ticket=ticket,
                direction=Direction.NOTE,
                author="Counsellor Li",
                now=opened + timedelta(minutes=50),
                text=f"call {said['phone']}",
            )
            for to_status, when in ending(n):
                await tickets.change_status(
                    session, ticket=ticket, to_status=to_status, actor="Counsellor Li", now=when
                )
            session.add(
                InboxUpdate(
                    channel="telegram",
                    update_id=100 + n,
                    person_key=inbox.topic_lane("telegram", ticket.topic_id),
                    payload={"callback_query": {"message": {"text": said["story"]}}},
                    status=InboxStatus.FAILED,
                    received_at=opened,
                )
            )
            await outbox.add_items(
                session,
                items=[
                    NewItem(
                        "telegram",
                        Pace.GROUP,
                        outbox.topic_lane("telegram", ticket.id),
                        {"to": "group", "reply": {"text": f"card: {said['address']}"}},
                    )
                ],
                now=opened,
            )
        for n, person in people.items():
            session.add(
                InboxUpdate(
                    channel="telegram",
                    update_id=200 + n,
                    person_key=inbox.person_lane("telegram", person.external_id),
                    payload={"message": {"from": {"first_name": name(n)}}},
                    status=InboxStatus.FAILED,
                    received_at=at(1, 10),
                )
            )
            await outbox.add_items(
                session,
                items=[
                    NewItem(
                        "telegram",
                        Pace.PRIVATE,
                        outbox.chat_lane("telegram", person.external_id),
                        {"to": "chat", "reply": {"text": f"Hello {name(n)}"}},
                    )
                ],
                now=at(1, 10),
            )
            last_turn = at(11, 20) if n == 7 else at(3, 2)  # person 7 came back in November
            await conversations.save_conversation(
                session,
                person_id=person.id,
                is_new=True,
                flow="complaint",
                step="employer",
                data={"draft": f"Draft-{n:02d}-employer"},
                history=[],
                now=last_turn,
            )
        session.add(JobSubscription(person_id=people[6].id, district="yushan", created_at=at(3, 1)))
        session.add(
            InboxUpdate(
                channel="telegram",
                update_id=300,
                person_key=inbox.person_lane("telegram", people[9].external_id),
                payload={"message": {"text": "Are you there?"}},
                status=InboxStatus.RECEIVED,
                received_at=at(11, 20),
            )
        )
        # The sent rows' bodies are kept a day: emptied too.
        await session.exec(
            OutboxItem.__table__.update()
            .where(col(OutboxItem.lane).like("%topic%"))
            .values(status=OutboxStatus.SENT)
        )


def ending(n: int) -> list[tuple[str, datetime]]:
    """Ticket n's status changes after it was claimed (TICKETS says what they mean)."""
    return {
        1: [(TicketStatus.CLOSED, at(6, 10))],
        2: [(TicketStatus.RESOLVED, at(9, 20))],
        3: [],
        4: [(TicketStatus.CLOSED, at(10, 20))],
        5: [(TicketStatus.CLOSED, at(5, 20)), (TicketStatus.CLAIMED, at(6, 1))],
        6: [(TicketStatus.WITHDRAWN, at(4, 20))],
        7: [(TicketStatus.CLOSED, at(4, 30))],
        8: [(TicketStatus.REFERRED, at(7, 15))],
    }[n]


def worker_secrets(n: int) -> list[str]:
    return [*secrets(n).values()]


def person_secrets(n: int) -> list[str]:
    return [name(n), f"user_{n:02d}_x", str(7700000 + n), f"Draft-{n:02d}-employer"]


@pytest.fixture
async def sessions(database_url):
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def all_figures(sessions, catalog: Catalog) -> list[stats.Figures]:
    """/stats over the whole year and over a month, both before and after the date."""
    async with sessions() as session:
        return [
            await stats.figures(
                session, first=first, last=last, hours=catalog.office_hours, now=NOW
            )
            for first, last in (
                (date(2026, 1, 1), date(2026, 11, 23)),
                (date(2026, 3, 1), date(2026, 3, 31)),
                (date(2026, 10, 1), date(2026, 11, 23)),
            )
        ]


def raw_files(database_url: str) -> bytes:
    """The SQLite file and its write-ahead log, as bytes (b"" on PostgreSQL)."""
    if not database_url.startswith("sqlite"):
        return b""
    path = Path(make_url(database_url).database)
    files = (path, path.with_name(path.name + "-wal"))
    return b"".join(file.read_bytes() for file in files if file.exists())


async def test_a_purge_erases_the_ended_tickets_and_the_people_nothing_keeps(
    sessions, database_url, catalog
) -> None:
    await write_cases(sessions)
    before = await everything_stored_in(sessions)
    assert all(secret in before for n in TICKETS for secret in worker_secrets(n))
    figures_before = await all_figures(sessions, catalog)

    purged = await purge_admin.purge(sessions, closed_before=CUTOFF, now=NOW, batch=2)

    gone = [n for n, (_, _, purged_by_date) in TICKETS.items() if purged_by_date]
    assert purged == Purged(tickets=len(gone), messages=4 * len(gone), evidence=len(gone), people=3)
    stored = await everything_stored_in(sessions)
    on_disk = raw_files(database_url)
    for n, (_, what, purged_by_date) in TICKETS.items():
        for secret in worker_secrets(n):
            assert (secret in stored) is not purged_by_date, f"ticket {n} ({what}): {secret}"
            if on_disk:
                assert (secret.encode() in on_disk) is not purged_by_date, f"file: ticket {n}"
    for n, forgotten in PEOPLE.items():
        for secret in person_secrets(n):
            assert (secret in stored) is not forgotten, f"person {n}: {secret}"
            if on_disk and forgotten:
                assert secret.encode() not in on_disk, f"file: person {n}: {secret}"
    async with sessions() as session:
        rows = (await session.exec(select(Ticket).order_by(col(Ticket.id)))).all()
        messages = (await session.exec(select(TicketMessage))).all()
        left = (await session.exec(select(OutboxItem.lane, OutboxItem.status))).all()
        people = (await session.exec(select(Person).order_by(col(Person.id)))).all()
    for row, (n, (_, _, purged_by_date)) in zip(rows, TICKETS.items(), strict=True):
        assert (row.purged_at is not None) is purged_by_date
        assert (row.category, row.district, row.amount_owed) == ("unpaid_wages", "yushan", 8500)
        assert row.reference == f"HL-2026-{n:06d}" and row.topic_id == 5000 + n
    purged_ids = {row.id for row in rows if row.purged_at is not None}
    for message in messages:
        erased = (message.text, message.media_file_id, message.worker_message_id)
        assert (erased == (None, None, None)) is (message.ticket_id in purged_ids)
        assert message.staff_message_id is None or message.ticket_id not in purged_ids
        assert message.created_at is not None and message.direction  # what /stats reads
    # The purged tickets' topics' rows: the pending ones deleted, the sent ones emptied.
    lanes = {lane for lane, _ in left}
    assert all(outbox.topic_lane("telegram", ticket) not in lanes for ticket in purged_ids)
    assert [p.forgotten_at is not None for p in people] == list(PEOPLE.values())
    assert [p.external_id for p in people if p.forgotten_at] == [
        f"forgotten:{p.id}" for p in people if p.forgotten_at
    ]

    assert await all_figures(sessions, catalog) == figures_before
    # Run again: nothing left to do.
    assert await purge_admin.purge(sessions, closed_before=CUTOFF, now=NOW) == Purged()


async def everything_stored_in(sessions) -> str:
    """Every row of every table, as text (tests/test_forget.py's helper reads .sessions)."""
    return await everything_stored(SimpleNamespace(sessions=sessions))


async def test_a_dry_run_counts_what_the_purge_does_and_changes_nothing(sessions) -> None:
    await write_cases(sessions)
    before = await everything_stored_in(sessions)
    counted = await purge_admin.purge(sessions, closed_before=CUTOFF, now=NOW, dry_run=True)
    assert await everything_stored_in(sessions) == before
    assert counted == await purge_admin.purge(sessions, closed_before=CUTOFF, now=NOW)
    assert counted.tickets == 5 and counted.people == 3


async def test_the_figures_of_the_stats_data_set_survive_a_purge(sessions, catalog) -> None:
    """tests/test_stats.py's data set, whose figures are worked out there: resolved, referred
    then closed, withdrawn and closed tickets, a reopened one, broadcasts to the people."""
    await load_dataset(sessions)
    periods = [(date(2026, 3, 2), date(2026, 3, 15)), (date(2026, 1, 1), date(2026, 11, 23))]

    async def figures() -> list[stats.Figures]:
        async with sessions() as session:
            return [
                await stats.figures(
                    session, first=first, last=last, hours=catalog.office_hours, now=NOW
                )
                for first, last in periods
            ]

    before = await figures()
    cutoff = datetime.combine(date(2026, 3, 13), time(), tzinfo=SHANGHAI)
    purged = await purge_admin.purge(sessions, closed_before=cutoff, now=NOW)
    # T1, T2, T5, T6; their people 1 and 4, and 8, who never opened a ticket
    assert purged.tickets == 4 and purged.people == 3
    assert await figures() == before


async def test_a_ticket_written_to_after_its_purge_is_purged_again_once_it_ends(
    sessions, catalog
) -> None:
    await write_cases(sessions)
    await purge_admin.purge(sessions, closed_before=CUTOFF, now=NOW)
    async with sessions() as session, session.begin():
        ticket = await session.get(Ticket, 4)  # kept: closed after the date
        assert ticket.phone == secrets(4)["phone"]
        first = await session.exec(select(Ticket).where(Ticket.reference == "HL-2026-000001"))
        reopened = first.one()
        later = NOW + timedelta(days=1)
        await tickets.change_status(
            session, ticket=reopened, to_status="claimed", actor="worker", now=later
        )
        await tickets.add_ticket_message(
            session,
            ticket=reopened,
            direction=Direction.FROM_WORKER,
            author="worker",
            now=later,
            text="Second-round-secret",
        )
        await tickets.change_status(
            session, ticket=reopened, to_status="closed", actor="Counsellor Li", now=later
        )
    cutoff = NOW + timedelta(days=2)
    assert (await purge_admin.purge(sessions, closed_before=cutoff, now=cutoff)).tickets == 2
    assert "Second-round-secret" not in await everything_stored_in(sessions)


def test_the_cutoff_is_the_date_or_the_retention_period() -> None:
    today = date(2026, 11, 23)
    assert purge_admin.cutoff_day("2026-06-01", today=today, retention_days=30) == date(2026, 6, 1)
    assert purge_admin.cutoff_day(None, today=today, retention_days=365) == date(2025, 11, 23)
    with pytest.raises(ValueError, match="HOTLINE_RETENTION_DAYS"):
        purge_admin.cutoff_day(None, today=today, retention_days=None)
    with pytest.raises(ValueError, match="not a date"):
        purge_admin.cutoff_day("1 June", today=today, retention_days=None)


def counts_printed(output: str) -> dict[str, int]:
    lines = [line.split(": ") for line in output.splitlines()[1:]]
    return {key: int(value) for key, value in lines}


async def test_the_command_prints_the_counts(sessions, database_url) -> None:
    await write_cases(sessions)
    await sessions.kw["bind"].dispose()  # the command opens the file itself
    env = {"DATABASE_URL": database_url}
    dry = run_cli("purge", "--closed-before", "2026-10-01", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("Dry run, nothing changed. Tickets ended before 2026-10-01")
    expected = {"tickets": 5, "messages": 20, "evidence files": 5, "people": 3}
    assert counts_printed(dry.stdout) == expected
    done = run_cli("purge", "--closed-before", "2026-10-01", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Purged the tickets ended before 2026-10-01 (Asia/Shanghai):")
    assert counts_printed(done.stdout) == expected
    again = run_cli("purge", "--closed-before", "2026-10-01", env=env)
    assert counts_printed(again.stdout) == dict.fromkeys(expected, 0)


def test_without_a_date_the_retention_period_counts_back_from_today(
    database_url, monkeypatch, capsys
) -> None:
    async def write() -> None:
        engine = create_engine(database_url)
        await write_cases(session_factory(engine))
        await engine.dispose()

    asyncio.run(write())
    for variable in ("HOTLINE_CONTENT_DIR", "HOTLINE_RETENTION_DAYS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("HOTLINE_RETENTION_DAYS", "30")
    args = argparse.Namespace(closed_before=None, dry_run=False)
    assert purge_admin.run(args, database=cli_sessions, now=NOW) == 0  # 23 November
    out = capsys.readouterr().out
    assert out.startswith("Purged the tickets ended before 2026-10-24 (Asia/Shanghai):")
    # Those of 2026-10-01, and ticket 4 (closed on 20 October) with its person 3.
    assert counts_printed(out) == {"tickets": 6, "messages": 24, "evidence files": 6, "people": 4}


def test_the_command_refuses_a_missing_unreadable_or_too_recent_date(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.db"}
    missing = run_cli("purge", env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "hotline purge: give --closed-before DATE, or set HOTLINE_RETENTION_DAYS"
    )
    unreadable = run_cli("purge", "--closed-before", "yesterday", env=env)
    assert unreadable.returncode == 2 and "'yesterday' is not a date" in unreadable.stderr
    recent = (datetime.now(SHANGHAI).date() - timedelta(days=3)).isoformat()
    too_recent = run_cli("purge", "--closed-before", recent, env=env)
    assert too_recent.returncode == 2 and "may still be reopened" in too_recent.stderr
    short = run_cli("purge", env={**env, "HOTLINE_RETENTION_DAYS": "7"})
    assert short.returncode == 2 and "may still be reopened" in short.stderr
    assert not (tmp_path / "h.db").exists()  # refused before the database was opened


async def test_migration_0008_upgrades_a_0007_database(database_url, tmp_path: Path) -> None:
    """A database with tickets at 0007 gains ticket.purged_at (empty), and loses it again on
    the way down, on SQLite and on PostgreSQL."""
    if database_url.startswith("sqlite"):
        url, admin = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", None
    else:
        scratch = f"hotline_migration_{uuid.uuid4().hex[:8]}"
        admin = create_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{scratch}"'))
        url = make_url(database_url).set(database=scratch).render_as_string(hide_password=False)
    engine = create_engine(url)
    try:
        await upgrade(engine, "0007")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO person (channel, external_id, created_at)"
                    " VALUES ('telegram', '1', :now)"
                ),
                {"now": NOW},
            )
            await connection.execute(
                text(
                    "INSERT INTO ticket (reference, kind, status, person_id, language,"
                    " share_identity, urgent, created_at, updated_at)"
                    " VALUES ('HL-2026-000001', 'complaint', 'closed', 1, 'zh', false, false,"
                    " :now, :now)"
                ),
                {"now": NOW},
            )
        await upgrade(engine)
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("ticket")}
            )
            kept = (await connection.execute(text("SELECT reference, purged_at FROM ticket"))).all()
        assert "purged_at" in columns and kept == [("HL-2026-000001", None)]
        await downgrade(engine, "0007")
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("ticket")}
            )
        assert "purged_at" not in columns and "topic_requested_at" in columns
    finally:
        await engine.dispose()
        if admin is not None:
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
            await admin.dispose()
