"""How many bytes a ticket, a ticket message, an inbox row and an outbox row take on disk, so
that docs/scaling.md can size a centre's database from measured figures.

Run from the repository root:

    .venv/bin/python bench/row_sizes.py [--complaints 2000] [--messages 30]
    .venv/bin/python bench/row_sizes.py --database postgresql+asyncpg://postgres@127.0.0.1:5432/test

It fills a scratch database with `--complaints` complaints as workers file them: a person
(names, consent, a conversation state), a ticket opened with `db.tickets.open_ticket` (a
Chinese employer, address, a story of a few hundred characters, amount, wage months, phone,
three pieces of evidence), `--messages` ticket messages in all (evidence, the worker's
messages, the counsellor's answers with their relay ids, a few internal notes) and six
status changes; `--updates` stored updates per complaint as Telegram sends them (typed
messages and button presses, `db.inbox.store_updates`), and as many outbox rows (replies with
their buttons, `bot.delivery.items.to_person`, and posts into the ticket's topic).

Then it measures every table, divided by its rows: on PostgreSQL `pg_total_relation_size`
(the table, its TOAST and its indexes) after VACUUM FULL ANALYZE, so live rows only (a
ticket's row is written again at every status change and message; the database's size
after a plain VACUUM, dead versions included, is printed apart); on SQLite the `dbstat`
virtual table (the table's and its indexes' pages) after VACUUM, or, where SQLite was built
without it, the file's growth while each table was filled. Three states are measured: as filed; the
inbox rows once done (emptied: what dedup keeps for two days) and the outbox rows once sent
(emptied, kept a day); and after `hotline purge` of every ticket (all ended a year before),
the anonymous remainder that is kept for the figures.

The database is a fresh SQLite file in a temporary folder, or, with --database, a scratch
database created on that PostgreSQL server (the user needs CREATEDB) and dropped after.
Nothing here asserts anything: it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import tempfile
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot import purge_admin
from bot.delivery.items import to_person
from db import conversations, inbox, outbox, tickets
from db.migrate import upgrade
from db.models import Direction, Pace, Person, TicketStatus
from db.outbox import NewItem
from db.session import create_engine, session_factory
from handlers.messages import Choice, Reply

REPO = Path(__file__).resolve().parent.parent

TABLES = ("person", "conversation", "ticket", "ticket_event", "ticket_message")
TRANSIENT = ("inbox_update", "outbox")
START = datetime(2025, 1, 6, 2, 0, tzinfo=UTC)  # a year of complaints, all ended long ago

WORDS = (
    "老板说这个月的工资下个月一起发，可是已经拖了三个月了，我们十几个人都没有拿到钱。"
    "工地上的包工头不接电话，公司说钱已经给了包工头，让我们自己去找他。"
    "我在车间里被机器压伤了手指，老板只给了两千块钱就不管了，也没有给我交工伤保险。"
    "合同上写的是每月六千，实际只发了四千五，加班费也从来没有算过。"
    "我想问一下能不能去劳动仲裁，需要带什么材料，我只有考勤的照片和微信聊天记录。"
)
ANSWERS = (
    "您好，我是调解员李老师。请把考勤记录和工资条的照片发给我们，我们先核对欠薪的金额。"
    "根据劳动合同法，用人单位应当按时足额支付劳动报酬，您可以向劳动监察大队投诉。"
    "我们已经联系了公司的人事部门，对方答应本周五之前给出答复，请您耐心等一下。"
    "劳动仲裁的时效是一年，从您知道权利被侵害之日起计算，材料包括身份证、合同或者工资流水。"
)


def piece(source: str, rng: random.Random, low: int, high: int) -> str:
    """A run of `low` to `high` characters of realistic Chinese text."""
    size = rng.randint(low, high)
    start = rng.randrange(len(source))
    return (source * (2 + high // len(source)))[start : start + size]


def file_id(rng: random.Random) -> str:
    """Shaped like Telegram's file ids (about 70 to 90 characters)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    return "AgACAgUAAxkBAAI" + "".join(rng.choice(alphabet) for _ in range(rng.randint(56, 74)))


def update_payload(n: int, person: Person, rng: random.Random) -> dict:
    """A typed message or a button press as Telegram sends it (the press carries the bot's
    message it was under, with its keyboard)."""
    user = {
        "id": int(person.external_id),
        "is_bot": False,
        "first_name": "秀梅",
        "last_name": "赵",
        "username": f"worker{person.external_id}",
        "language_code": "zh-hans",
    }
    chat = {k: user[k] for k in ("id", "first_name", "last_name", "username")} | {"type": "private"}
    if n % 3:
        return {
            "update_id": 100_000_000 + n,
            "message": {
                "message_id": 1000 + n,
                "from": user,
                "chat": chat,
                "date": 1_764_590_000 + n,
                "text": piece(WORDS, rng, 2, 60),
            },
        }
    keyboard = [
        [{"text": label, "callback_data": f"complaint.category|{key}"}]
        for key, label in (
            ("unpaid_wages", "1. 拖欠工资"),
            ("injury", "2. 工伤"),
            ("contract", "3. 合同"),
        )
    ]
    return {
        "update_id": 100_000_000 + n,
        "callback_query": {
            "id": str(4_000_000_000_000 + n),
            "from": user,
            "chat_instance": "-4526571936258301234",
            "data": "complaint.category|unpaid_wages",
            "message": {
                "message_id": 1000 + n,
                "from": {
                    "id": 7123456789,
                    "is_bot": True,
                    "first_name": "务工热线",
                    "username": "hotline_bot",
                },
                "chat": chat,
                "date": 1_764_590_000 + n,
                "text": "您遇到的是什么问题？\n1. 拖欠工资\n2. 工伤\n3. 合同",
                "reply_markup": {"inline_keyboard": keyboard},
            },
        },
    }


async def fill(sessions, *, complaints: int, messages: int, updates: int, rng: random.Random):
    """Writes the complaints, their people, messages, events, stored updates and outbox rows,
    table by table in that order (so the file's growth can be told apart on SQLite)."""
    growth: dict[str, tuple[int, int]] = {}  # table -> (bytes the file grew, rows)
    people: list[Person] = []

    async def stage(table: str, rows: int, write) -> None:
        before = await file_size(sessions)
        for first in range(0, complaints, 250):
            async with sessions() as session, session.begin():
                await write(session, range(first, min(first + 250, complaints)))
        growth[table] = (await file_size(sessions) - before, rows)

    async def add_people(session, numbers) -> None:
        for n in numbers:
            at = START + timedelta(hours=5 * n)
            person = Person(
                channel="telegram",
                external_id=str(7_000_000_000 + n),
                language="zh",
                display_name="赵秀梅",
                username=f"worker{7_000_000_000 + n}",
                consented_at=at,
                created_at=at,
            )
            session.add(person)
            people.append(person)
        await session.flush()
        for n in numbers:
            await conversations.save_conversation(
                session,
                person_id=people[n].id,
                is_new=True,
                flow="menu",
                step="main",
                data={"consent": True, "last_ticket": n},
                history=["menu:main"],
                now=START + timedelta(hours=5 * n, minutes=40),
            )

    async def add_tickets(session, numbers) -> None:
        evidence_count = 3
        for n in numbers:
            at = START + timedelta(hours=5 * n)
            ticket, _ = await tickets.open_ticket(
                session,
                person_id=people[n].id,
                kind="complaint",
                language="zh",
                prefix="HL",
                now=at,
                fields={
                    "category": "unpaid_wages",
                    "district": "yushan",
                    "employer": "昆山市玉山镇宏兴塑料制品有限公司",
                    "address": "玉山镇前进中路77号3号厂房二楼",
                    "story": piece(WORDS, rng, 150, 600),
                    "phone": f"139{n:08d}",
                    "amount_owed": 8500 + n,
                    "wage_months": "2025年3月到5月",
                    "share_identity": n % 2 == 0,
                },
                evidence=[
                    {"kind": kind, "file_id": file_id(rng), "caption": piece(WORDS, rng, 0, 20)}
                    for kind in ("photo", "document", "voice")[:evidence_count]
                ],
                author="worker",
            )
            ticket.topic_id = 10_000 + n
            for step, to_status in enumerate(
                ("claimed", "waiting", "claimed", "resolved", "closed"), start=1
            ):
                await tickets.change_status(
                    session,
                    ticket=ticket,
                    to_status=to_status,
                    actor="Counsellor Li",
                    now=at + timedelta(days=step),
                )
            for m in range(messages - evidence_count):
                direction = (Direction.FROM_WORKER, Direction.TO_WORKER, Direction.NOTE)[
                    0 if m % 9 < 4 else 1 if m % 9 < 8 else 2
                ]
                media = direction == Direction.FROM_WORKER and m % 13 == 0
                message = await tickets.add_ticket_message(
                    session,
                    ticket=ticket,
                    direction=direction,
                    author="worker" if direction == Direction.FROM_WORKER else "Counsellor Li",
                    now=at + timedelta(hours=2 + m),
                    text=piece(
                        ANSWERS if direction != Direction.FROM_WORKER else WORDS, rng, 8, 90
                    ),
                    media_kind="photo" if media else None,
                    media_file_id=file_id(rng) if media else None,
                )
                if direction != Direction.NOTE:
                    await tickets.record_delivery(
                        session,
                        message_id=message.id,
                        status="sent",
                        worker_message_id=5000 + m,
                        staff_message_id=9000 + m,
                    )
            # A ticket closed, resolved or not, stays as it ended.
            assert ticket.status == TicketStatus.CLOSED

    async def add_updates(session, numbers) -> None:
        rows = []
        for n in numbers:
            for u in range(updates):
                payload = update_payload(n * updates + u, people[n], rng)
                rows.append(
                    (
                        payload["update_id"],
                        inbox.person_lane("telegram", people[n].external_id),
                        payload,
                    )
                )
        await inbox.store_updates(session, channel="telegram", updates=rows, now=START)

    async def add_outbox(session, numbers) -> None:
        items: list[NewItem] = []
        for n in numbers:
            person = people[n].external_id
            for u in range(updates):
                if u % 4 == 3:  # a post into the ticket's topic (a relayed message, a notice)
                    items.append(
                        NewItem(
                            "telegram",
                            Pace.GROUP,
                            outbox.topic_lane("telegram", n + 1),
                            {
                                "to": "group",
                                "thread": 10_000 + n,
                                "reply": Reply(piece(WORDS, rng, 20, 120)).to_dict(),
                            },
                        )
                    )
                    continue
                reply = Reply(
                    piece(ANSWERS, rng, 30, 160),
                    choices=[
                        Choice("unpaid_wages", "拖欠工资"),
                        Choice("injury", "工伤"),
                        Choice("contract", "合同"),
                        Choice("back", "返回", numbered=False),
                    ],
                    choice_tag="complaint.category",
                )
                items.extend(to_person("telegram", person, [reply]))
        await outbox.add_items(session, items=items, now=START)

    await stage("person", complaints, add_people)  # with conversation
    await stage("ticket", complaints, add_tickets)  # with ticket_event and ticket_message
    await stage("inbox_update", complaints * updates, add_updates)
    await stage("outbox", complaints * updates, add_outbox)
    return growth


async def file_size(sessions) -> int:
    """The SQLite file's size with its log copied in (0 on PostgreSQL)."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "sqlite":
        return 0
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(make_url(str(engine.url)).database)


async def compact(engine, *, full: bool = False) -> None:
    """VACUUM (SQLite rewrites the file; PostgreSQL marks dead rows free, or FULL rewrites)."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            await connection.exec_driver_sql("VACUUM")
        return
    auto = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with auto.connect() as connection:
        await connection.exec_driver_sql("VACUUM FULL ANALYZE" if full else "VACUUM ANALYZE")


async def database_bytes(engine) -> int:
    async with engine.connect() as connection:
        found = await connection.execute(text("SELECT pg_database_size(current_database())"))
        return found.scalar_one()


async def table_bytes(engine) -> dict[str, tuple[int, int]] | None:
    """table -> (bytes with its indexes, rows); None when SQLite has no dbstat."""
    async with engine.connect() as connection:
        rows = {}
        for table in (*TABLES, *TRANSIENT):
            count = (await connection.execute(text(f'SELECT count(*) FROM "{table}"'))).scalar_one()
            rows[table] = count
        if engine.dialect.name == "postgresql":
            sizes = {
                table: (
                    await connection.execute(
                        text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": table}
                    )
                ).scalar_one()
                for table in rows
            }
        else:
            try:
                found = (
                    await connection.exec_driver_sql(
                        "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d"
                        " JOIN sqlite_master m ON m.name = d.name GROUP BY m.tbl_name"
                    )
                ).all()
            except Exception:  # built without SQLITE_ENABLE_DBSTAT_VTAB
                return None
            sizes = dict(found)
    return {table: (int(sizes.get(table, 0)), rows[table]) for table in rows}


def per_row(size: int, rows: int) -> str:
    return f"{size / rows:8.0f}" if rows else "       -"


def print_table(title: str, measured: dict[str, tuple[int, int]], tables) -> None:
    print(f"\n{title}")
    print(f"{'table':<16} {'rows':>8} {'bytes':>12} {'bytes/row':>9}")
    for table in tables:
        size, rows = measured[table]
        print(f"{table:<16} {rows:>8} {size:>12} {per_row(size, rows)}")


def summary(measured: dict[str, tuple[int, int]], complaints: int) -> str:
    """Bytes per complaint: the ticket with its events and messages, and its person."""
    per_ticket = sum(measured[t][0] for t in ("ticket", "ticket_event", "ticket_message"))
    per_person = sum(measured[t][0] for t in ("person", "conversation"))
    return (
        f"per complaint: ticket + events + messages {per_ticket / complaints:,.0f} bytes,"
        f" person + conversation {per_person / complaints:,.0f} bytes,"
        f" together {(per_ticket + per_person) / complaints:,.0f} bytes"
    )


@asynccontextmanager
async def scratch_database(url: str | None):
    """A fresh SQLite file, or a scratch database on the PostgreSQL server of `url`."""
    if url is None:
        with tempfile.TemporaryDirectory(prefix="hotline-rows-") as folder:
            yield f"sqlite+aiosqlite:///{folder}/rows.db", "sqlite (temp file)"
        return
    given = make_url(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    scratch = f"hotline_rows_{os.getpid()}"
    admin = create_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}"')
        await connection.exec_driver_sql(f'CREATE DATABASE "{scratch}"')
    try:
        yield (
            given.set(database=scratch).render_as_string(hide_password=False),
            f"postgresql {given.host}:{given.port or 5432} (scratch {scratch})",
        )
    finally:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await admin.dispose()


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--complaints", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=30, help="ticket messages per complaint")
    parser.add_argument("--updates", type=int, default=10, help="inbox and outbox rows each")
    parser.add_argument("--database", help="a PostgreSQL server to make a scratch database on")
    args = parser.parse_args()
    rng = random.Random(20261201)
    async with scratch_database(args.database) as (url, where):
        engine = create_engine(url)
        await upgrade(engine)
        sessions = session_factory(engine)
        print(
            f"row sizes: {args.complaints} complaints, {args.messages} messages each,"
            f" {args.updates} inbox and outbox rows each; {where}; commit {commit()}"
        )
        started = time.perf_counter()
        growth = await fill(
            sessions,
            complaints=args.complaints,
            messages=args.messages,
            updates=args.updates,
            rng=rng,
        )
        print(f"filled in {time.perf_counter() - started:.1f} s")
        if engine.dialect.name == "postgresql":
            # A ticket row is written again at every status change and message (updated_at):
            # its dead versions wait for (auto)vacuum. Measured below without them.
            await compact(engine)
            size = await database_bytes(engine)
            print(f"database after a plain VACUUM (dead row versions still in it): {size:,} bytes")
        await compact(engine, full=True)
        measured = await table_bytes(engine)
        if measured is None:
            print("\nno dbstat in this SQLite: the file's growth while each table was filled")
            for table, (size, rows) in growth.items():
                print(f"{table:<16} {rows:>8} {size:>12} {per_row(size, rows)}")
        else:
            print_table("as filed (indexes included)", measured, (*TABLES, *TRANSIENT))
            print(summary(measured, args.complaints))

        async with sessions() as session, session.begin():
            ids = await session.exec(text("SELECT id FROM inbox_update"))
            await inbox.mark_done(session, row_ids=[row[0] for row in ids.all()])
            ids = await session.exec(text("SELECT id FROM outbox"))
            await outbox.mark_sent(
                session, results=[(row[0], [row[0]]) for row in ids.all()], now=START
            )
        await compact(engine, full=True)
        measured = await table_bytes(engine)
        if measured is not None:
            print_table("inbox rows done, outbox rows sent (emptied)", measured, TRANSIENT)

        now = START + timedelta(days=800)
        cutoff = START + timedelta(days=500)
        started = time.perf_counter()
        purged = await purge_admin.purge(sessions, closed_before=cutoff, now=now)
        seconds = time.perf_counter() - started
        print(
            f"\nhotline purge: {purged.tickets} tickets, {purged.messages} messages,"
            f" {purged.evidence} evidence files, {purged.people} people in {seconds:.1f} s"
            f" ({purged.tickets / seconds:,.0f} tickets/s)"
        )
        await compact(engine, full=True)
        measured = await table_bytes(engine)
        if measured is not None:
            print_table("after the purge: the anonymous remainder", measured, TABLES)
            print(summary(measured, args.complaints))
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
