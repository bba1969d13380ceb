"""The outbox: one row for each thing the hotline sends, written in the transaction of the turn
that decided it, then carried out by bot/delivery/ in order per lane at each destination's pace.

A row is pending, then sending (just before the channel is called: the only state in which a
crash can repeat it, since Telegram has no idempotency key), then sent, failed or blocked. What
a row carries is emptied once it is sent, and sent rows are deleted after `SENT_KEPT`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, func, insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import OutboxItem, OutboxStatus, Pace

SENT_KEPT = timedelta(days=1)  # for `hotline status` and an operator's questions, no longer
FAILED_KEPT = timedelta(days=7)  # what could not be sent, for an operator to look at
SCRUBBED: dict[str, Any] = {}
ENDED = (OutboxStatus.SENT, OutboxStatus.BLOCKED, OutboxStatus.UNKNOWN)


# The staff group is on Telegram: ticket topics are its lanes (in the outbox and the inbox),
# whichever channel the ticket's worker writes on.
STAFF_CHANNEL = "telegram"


def chat_lane(channel: str, chat: str | int) -> str:
    """A worker's private chat (and a staff member's reply where they wrote)."""
    return f"{channel}:chat:{chat}"


def topic_lane(channel: str, ticket_id: int) -> str:
    """A ticket's topic in the staff group: opened once, then posts in order."""
    return f"{channel}:topic:{ticket_id}"


def mass_lane(channel: str, broadcast_id: int) -> str:
    """A broadcast's copies sent as one message to a list of people (WeChat's mass send)."""
    return f"{channel}:mass:{broadcast_id}"


def group_lane(channel: str, thread_id: int | None) -> str:
    """The staff group outside a ticket's topic (its general chat, or a topic of no ticket)."""
    return f"{channel}:group:{thread_id or 0}"


@dataclass(slots=True)
class NewItem:
    channel: str
    pace: str
    lane: str
    body: dict[str, Any]
    held: bool = False
    next_attempt_at: datetime | None = None
    once: bool = False  # a broadcast's copy: never sent twice, even after a crash


async def add_items(session: AsyncSession, *, items: Sequence[NewItem], now: datetime) -> list[int]:
    """Writes the rows in one statement; returns their ids, in the same order."""
    if not items:
        return []
    rows = [
        {
            "channel": item.channel,
            "pace": item.pace,
            "lane": item.lane,
            "body": item.body,
            "held": item.held,
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": item.next_attempt_at or now,
            "created_at": now,
            "once": item.once,
        }
        for item in items
    ]
    result = await session.exec(_INSERT, params=rows)
    return list(result.scalars().all())


# Every turn writes rows and every send marks them, so these are prepared once, on the table
# (Core): the ORM-enabled forms cost two to seven times as much (bench/README.md).
_TABLE = OutboxItem.__table__
# One cached statement for any number of rows, which SQLAlchemy sends as multi-row INSERTs in
# batches; a VALUES list of each length would be compiled and cached once per length
# (megabytes each for a broadcast's window of thousands).
_INSERT = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)


async def hold_lane(session: AsyncSession, *, lane: str, until: datetime) -> None:
    """A flood goes on: the lane's held replies wait until it has been quiet for a while."""
    await session.exec(
        update(OutboxItem)
        .where(
            OutboxItem.lane == lane,
            OutboxItem.status == OutboxStatus.PENDING,
            col(OutboxItem.held).is_(True),
        )
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )


async def release_lane(session: AsyncSession, *, lane: str, now: datetime) -> bool:
    """The flood is over: the lane's held replies go now, before this turn's. Returns whether
    there were any."""
    result = await session.exec(
        update(OutboxItem)
        .where(
            OutboxItem.lane == lane,
            OutboxItem.status == OutboxStatus.PENDING,
            col(OutboxItem.held).is_(True),
            col(OutboxItem.next_attempt_at) > now,
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount > 0


_MARK_SENDING = (
    update(_TABLE)
    .where(_TABLE.c.id.in_(bindparam("ids", expanding=True)))
    .values(status=OutboxStatus.SENDING, attempts=_TABLE.c.attempts + 1)
)
_MARK_SENT = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(
        status=OutboxStatus.SENT,
        body=SCRUBBED,
        lane="",
        sent_ids=bindparam("ids"),
        sent_at=bindparam("now"),
    )
)


async def mark_sending(session: AsyncSession, *, ids: Sequence[int]) -> None:
    await session.exec(_MARK_SENDING, params={"ids": list(ids)})


async def unmark_sending(session: AsyncSession, *, ids: Sequence[int]) -> None:
    """Rows marked "sending" whose call never started (a stop came first): pending again."""
    await session.exec(
        update(OutboxItem)
        .where(col(OutboxItem.id).in_(ids), OutboxItem.status == OutboxStatus.SENDING)
        .values(status=OutboxStatus.PENDING, attempts=OutboxItem.attempts - 1)
        .execution_options(synchronize_session=False)
    )


async def mark_sent(
    session: AsyncSession, *, results: Sequence[tuple[int, list[int]]], now: datetime
) -> None:
    """Sent rows forget what they carried and where it went (a chat id names a person), and
    keep the message ids they produced."""
    if not results:
        return
    await session.exec(  # one statement for many rows (executemany)
        _MARK_SENT, params=[{"row_id": row_id, "ids": ids, "now": now} for row_id, ids in results]
    )


async def mark_ended(
    session: AsyncSession, *, ids: Sequence[int], status: str, error: str | None, now: datetime
) -> None:
    """Failed (kept with what it carried for a while) or blocked (emptied at once)."""
    values: dict[str, Any] = {"status": status, "error": (error or "")[:200] or None}
    if status == OutboxStatus.BLOCKED:
        values |= {"body": SCRUBBED, "lane": ""}
    await session.exec(
        update(OutboxItem)
        .where(col(OutboxItem.id).in_(ids))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def block_lane(session: AsyncSession, *, lane: str) -> list[int]:
    """The person blocked the bot: nothing more goes to them. Returns the rows given up."""
    result = await session.exec(
        update(OutboxItem)
        .where(
            OutboxItem.lane == lane,
            # "sending": marked ahead of its call, behind the one Telegram just refused
            col(OutboxItem.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
        )
        .values(status=OutboxStatus.BLOCKED, body=SCRUBBED, lane="")
        .returning(OutboxItem.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars().all())


async def group_sends_since(
    session: AsyncSession, *, channel: str, since: datetime, now: datetime
) -> list[datetime]:
    """When messages went into the staff group since `since`, one entry per message, so that
    a new run keeps the group's 20 a minute across a restart. A row left "sending" by a dead
    run counts as sent `now`: it may have been."""
    result = await session.exec(
        select(OutboxItem.status, OutboxItem.sent_at, OutboxItem.sent_ids).where(
            OutboxItem.channel == channel,
            OutboxItem.pace == Pace.GROUP,
            (col(OutboxItem.status) == OutboxStatus.SENDING)
            | ((col(OutboxItem.status) == OutboxStatus.SENT) & (col(OutboxItem.sent_at) >= since)),
        )
    )
    moments = []
    for status, sent_at, sent_ids in result.all():
        at = now if status == OutboxStatus.SENDING or sent_at is None else sent_at
        moments += [at] * max(1, len(sent_ids or ()))
    return sorted(moments)


@dataclass(frozen=True, slots=True)
class Recovered:
    repeated: int  # rows a dead run was sending, sent again (each may arrive twice)
    unknown: int  # rows sent only once (a broadcast's): not sent again, "unknown"


async def recover(session: AsyncSession) -> Recovered:
    """At start: rows a dead run was sending go again (they may repeat), except those sent
    only once, which end "unknown"."""
    unknown = await session.exec(
        update(OutboxItem)
        .where(OutboxItem.status == OutboxStatus.SENDING, col(OutboxItem.once).is_(True))
        .values(status=OutboxStatus.UNKNOWN, body=SCRUBBED, lane="")
        .execution_options(synchronize_session=False)
    )
    repeated = await session.exec(
        update(OutboxItem)
        .where(OutboxItem.status == OutboxStatus.SENDING)
        .values(status=OutboxStatus.PENDING)
        .execution_options(synchronize_session=False)
    )
    return Recovered(repeated.rowcount, unknown.rowcount)


async def pending(
    session: AsyncSession, *, after_id: int = 0, limit: int = 1000
) -> list[OutboxItem]:
    """Pending rows in the order they were decided, a page at a time."""
    result = await session.exec(
        select(OutboxItem)
        .where(OutboxItem.status == OutboxStatus.PENDING, col(OutboxItem.id) > after_id)
        .order_by(col(OutboxItem.id))
        .limit(limit)
    )
    return list(result.all())


async def pending_of(session: AsyncSession, *, ids: Sequence[int]) -> list[OutboxItem]:
    """These rows, if still pending, in order (another process wrote them)."""
    result = await session.exec(
        select(OutboxItem)
        .where(col(OutboxItem.id).in_(ids), OutboxItem.status == OutboxStatus.PENDING)
        .order_by(col(OutboxItem.id))
    )
    return list(result.all())


@dataclass(frozen=True, slots=True)
class Backlog:
    pace: str
    waiting: int  # pending or being sent
    oldest: datetime | None  # when the oldest of them was decided


async def backlog(session: AsyncSession) -> list[Backlog]:
    """What waits, per destination class."""
    result = await session.exec(
        select(OutboxItem.pace, func.count(), func.min(OutboxItem.created_at))
        .where(col(OutboxItem.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]))
        .group_by(OutboxItem.pace)
    )
    return [Backlog(pace, waiting, oldest) for pace, waiting, oldest in result.all()]


async def forget_lanes(session: AsyncSession, *, lanes: Sequence[str]) -> None:
    """/forget: nothing more is sent to or about the person, and nothing kept says what was."""
    if not lanes:
        return
    await session.exec(
        delete(OutboxItem)
        .where(
            col(OutboxItem.lane).in_(lanes),
            col(OutboxItem.status).in_([OutboxStatus.PENDING, OutboxStatus.FAILED]),
        )
        .execution_options(synchronize_session=False)
    )
    await session.exec(
        update(OutboxItem)
        .where(col(OutboxItem.lane).in_(lanes))
        .values(body=SCRUBBED, lane="")
        .execution_options(synchronize_session=False)
    )


async def prune(session: AsyncSession, *, now: datetime) -> int:
    """Deletes sent and blocked rows past `SENT_KEPT` and failed ones past `FAILED_KEPT`."""
    result = await session.exec(
        delete(OutboxItem)
        .where(
            (col(OutboxItem.status).in_(ENDED) & (col(OutboxItem.created_at) < now - SENT_KEPT))
            | (
                (OutboxItem.status == OutboxStatus.FAILED)
                & (col(OutboxItem.created_at) < now - FAILED_KEPT)
            )
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


# -- what `hotline status` and /status report ------------------------------------------------

STATUS_FAILED_WINDOW = timedelta(hours=24)


class Rates(Protocol):
    """The paces the sender keeps (bot/delivery/pacing.py's `Paces` has them), passed in so
    that the estimate can be made here, by the CLI and by a staff handler alike."""

    overall_per_second: float
    chat_per_second: float
    group_messages: int
    group_window: float


@dataclass(frozen=True, slots=True)
class ClassStatus:
    pace: str
    waiting: int
    oldest_age: timedelta | None  # how long the oldest waiting row has waited
    drain: timedelta  # expected time until every waiting row is out, at the class's pace


@dataclass(frozen=True, slots=True)
class OutboxReport:
    classes: list[ClassStatus]  # private, group, bulk: always all three, in that order
    failed_recently: int  # rows decided in the last STATUS_FAILED_WINDOW that failed


async def largest_lane_backlog(session: AsyncSession, *, pace: str) -> int:
    """The most rows waiting in any one lane of the class: a private chat drains at the
    chat's own pace, so its longest queue sets how long the class takes."""
    per_lane = (
        select(func.count().label("waiting"))
        .where(
            OutboxItem.pace == pace,
            col(OutboxItem.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
        )
        .group_by(OutboxItem.lane)
        .subquery()
    )
    result = await session.exec(select(func.max(per_lane.c.waiting)))
    return result.one() or 0


async def failed_since(session: AsyncSession, *, since: datetime) -> int:
    result = await session.exec(
        select(func.count()).where(
            OutboxItem.status == OutboxStatus.FAILED, col(OutboxItem.created_at) >= since
        )
    )
    return result.one()


async def report(session: AsyncSession, *, rates: Rates, now: datetime) -> OutboxReport:
    """What waits per destination class and when it should be out: the staff group at its 20
    a minute, bulk at the bot's overall rate, private chats at the slower of the longest
    chat's queue at the chat pace and all of them at the overall rate. Sustained paces, no
    burst credited: an upper estimate."""
    waiting = {row.pace: row for row in await backlog(session)}
    classes = []
    for pace in (Pace.PRIVATE, Pace.GROUP, Pace.BULK):
        row = waiting.get(pace)
        count = row.waiting if row else 0
        if pace == Pace.GROUP:
            seconds = count * rates.group_window / rates.group_messages
        elif pace == Pace.PRIVATE and count:
            longest = await largest_lane_backlog(session, pace=pace)
            seconds = max(longest / rates.chat_per_second, count / rates.overall_per_second)
        else:
            seconds = count / rates.overall_per_second
        oldest = row.oldest if row else None
        age = max(now - oldest, timedelta()) if oldest is not None else None
        classes.append(ClassStatus(pace, count, age, timedelta(seconds=seconds)))
    failed = await failed_since(session, since=now - STATUS_FAILED_WINDOW)
    return OutboxReport(classes, failed)
