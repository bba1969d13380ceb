"""The inbox: every update is stored before the channel is told it arrived, and marked as it
is handled and answered, so a crash at any moment loses nothing and repeats nothing.

What an update says about a person is kept only while it is needed: once a row is done its
payload, replies and lane are emptied, leaving the channel and update id that recognising a
repeated update needs, and those keys are deleted after `DEDUP_WINDOW` (PIPL art. 47).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import InboxStatus, InboxUpdate

# Telegram keeps an unconfirmed update for 24 hours, so a repeat can only come within a day;
# after a week without updates it numbers the next one at random, so an id may come back as
# a new update. Keys older than this are a different update, never a repeat.
DEDUP_WINDOW = timedelta(days=2)
# A row whose turn failed keeps its payload this long for an operator to look at.
FAILED_KEPT = timedelta(days=7)
SCRUBBED: dict[str, Any] = {}  # the payload of a row that no longer needs it
FINISHED = (InboxStatus.DONE, InboxStatus.FAILED)


async def store_updates(
    session: AsyncSession,
    *,
    channel: str,
    updates: Sequence[tuple[int, str, dict[str, Any]]],
    now: datetime,
) -> dict[int, int]:
    """Stores (update_id, person_key, payload) rows; returns {update_id: row id} for the ones
    that were new. An update seen within `DEDUP_WINDOW` (the channel repeated it) is not stored
    again; a finished row with the same id from before the window is another update that
    reuses the id, and takes the row over."""
    if not updates:
        return {}
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    proposed = insert(InboxUpdate).values(
        [
            {
                "channel": channel,
                "update_id": update_id,
                "person_key": person_key,
                "payload": payload,
                "status": InboxStatus.RECEIVED,
                "received_at": now,
            }
            for update_id, person_key, payload in updates
        ]
    )
    reused = proposed.excluded
    statement = proposed.on_conflict_do_update(
        index_elements=["channel", "update_id"],
        set_={
            "person_key": reused.person_key,
            "payload": reused.payload,
            "status": reused.status,
            "received_at": reused.received_at,
            "replies": None,
            "outgoing": None,
            "handled_at": None,
        },
        where=(col(InboxUpdate.received_at) < now - DEDUP_WINDOW)
        & col(InboxUpdate.status).in_(FINISHED),
    ).returning(InboxUpdate.update_id, InboxUpdate.id)
    result = await session.exec(statement)
    return {update_id: row_id for update_id, row_id in result.all()}


# Every turn runs one of these: prepared once, on the table (Core), since an ORM-enabled
# UPDATE built per call cost seven times as much (bench/README.md, "What has been tried").
_TABLE = InboxUpdate.__table__
_ROWS = _TABLE.c.id.in_(bindparam("row_ids", expanding=True))
_MARK_DONE = (
    update(_TABLE)
    .where(_ROWS, _TABLE.c.status != InboxStatus.FAILED)
    .values(status=InboxStatus.DONE, payload=SCRUBBED, person_key="", replies=None, outgoing=None)
)
_MARK = update(_TABLE).where(_ROWS).values(status=bindparam("new_status"))
_FINISH_TURN = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == InboxStatus.RECEIVED)
    .values(status=InboxStatus.DONE, payload=SCRUBBED, person_key="", replies=None, outgoing=None)
)


class AlreadyHandled(Exception):
    """Another process handled this update first: the turn must not commit."""


async def finish_turn(session: AsyncSession, *, row_id: int) -> None:
    """Marks the turn's update done in the turn's transaction, only if it is still waiting:
    with several processes (bot/cluster.py), one that lost its lanes unawares must not
    handle an update twice. PostgreSQL makes a second transaction on the row wait for the
    first, then find nothing to update."""
    result = await session.exec(_FINISH_TURN, params={"row_id": row_id})
    if result.rowcount != 1:
        raise AlreadyHandled(row_id)


async def mark_done(
    session: AsyncSession, *, row_ids: Sequence[int], status: str = InboxStatus.DONE
) -> None:
    """Finishes rows. A done row forgets what it carried; a failed one keeps it for a while
    (and stays failed: the channel marks every row it has answered done, the sorry too)."""
    if status == InboxStatus.DONE:
        await session.exec(_MARK_DONE, params={"row_ids": list(row_ids)})
    else:
        await session.exec(_MARK, params={"row_ids": list(row_ids), "new_status": status})


async def prune(session: AsyncSession, *, now: datetime) -> int:
    """Deletes dedup keys past the window, and empties failed rows kept past their time;
    returns how many rows were deleted."""
    await session.exec(
        update(InboxUpdate)
        .where(
            InboxUpdate.status == InboxStatus.FAILED,
            col(InboxUpdate.received_at) < now - FAILED_KEPT,
            InboxUpdate.person_key != "",
        )
        .values(payload=SCRUBBED, person_key="", replies=None, outgoing=None)
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(
        delete(InboxUpdate)
        .where(
            col(InboxUpdate.received_at) < now - DEDUP_WINDOW,
            col(InboxUpdate.status).in_(FINISHED),
            InboxUpdate.person_key == "",
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def person_lane(channel: str, external_id: str) -> str:
    """The lane of a person's own chat: their updates are handled in order."""
    return f"{channel}:{external_id}"


def topic_lane(channel: str, topic_id: int | None) -> str:
    """The lane of a ticket's topic in the staff group (0: the group's general chat)."""
    return f"{channel}:staff:{topic_id or 0}"


async def scrub_lanes(session: AsyncSession, *, lanes: Sequence[str]) -> None:
    """Finishes and empties every row of these lanes but the ones still waiting their turn:
    what /forget does to the stored updates that came from the person or quote them (their
    tickets' topics). A waiting row still needs its payload; it is emptied once done."""
    if not lanes:
        return
    await session.exec(
        update(InboxUpdate)
        .where(col(InboxUpdate.person_key).in_(lanes), InboxUpdate.status != InboxStatus.RECEIVED)
        .values(
            status=InboxStatus.DONE, payload=SCRUBBED, person_key="", replies=None, outgoing=None
        )
        .execution_options(synchronize_session=False)
    )


async def waiting_in_lane(session: AsyncSession, *, channel: str, lane: str) -> list[InboxUpdate]:
    """A lane's updates not yet handled, in Telegram's order: what a process that takes the
    lane over (bot/cluster.py) runs first."""
    result = await session.exec(
        select(InboxUpdate)
        .where(
            InboxUpdate.channel == channel,
            InboxUpdate.person_key == lane,
            InboxUpdate.status == InboxStatus.RECEIVED,
        )
        .order_by(col(InboxUpdate.update_id))
    )
    return list(result.all())


async def count_waiting(session: AsyncSession, *, channel: str) -> int:
    """Updates stored and not yet handled."""
    result = await session.exec(
        select(func.count())
        .select_from(InboxUpdate)
        .where(InboxUpdate.channel == channel, InboxUpdate.status == InboxStatus.RECEIVED)
    )
    return result.one()


async def lanes_waiting(session: AsyncSession, *, channel: str, before: datetime) -> set[str]:
    """Lanes with an update stored before `before` and not yet handled."""
    result = await session.exec(
        select(InboxUpdate.person_key)
        .where(
            InboxUpdate.channel == channel,
            InboxUpdate.status == InboxStatus.RECEIVED,
            col(InboxUpdate.received_at) < before,
        )
        .distinct()
    )
    return set(result.all())


async def unfinished_batch(
    session: AsyncSession, *, channel: str, after: int | None, limit: int
) -> list[InboxUpdate]:
    """The next `limit` rows a previous run stored but did not finish, oldest first, after
    update `after`: a start pages through a backlog instead of loading it whole. Keyed on
    the update id, so rows finished meanwhile do not shift the pages."""
    query = select(InboxUpdate).where(
        InboxUpdate.channel == channel,
        col(InboxUpdate.status).in_([InboxStatus.RECEIVED, InboxStatus.HANDLED]),
    )
    if after is not None:
        query = query.where(InboxUpdate.update_id > after)
    result = await session.exec(query.order_by(col(InboxUpdate.update_id)).limit(limit))
    return list(result.all())


async def count_attempt(session: AsyncSession, *, row_id: int) -> int:
    """Counts one more attempt at a row whose turn raised; returns how many there were."""
    result = await session.exec(
        update(InboxUpdate)
        .where(InboxUpdate.id == row_id)
        .values(attempts=InboxUpdate.attempts + 1)
        .returning(InboxUpdate.attempts)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one()


async def failed_unalerted(session: AsyncSession, *, limit: int = 20) -> list[tuple[int, str, int]]:
    """(row id, channel, attempts) of given-up rows the staff group was not yet told of."""
    result = await session.exec(
        select(InboxUpdate.id, InboxUpdate.channel, InboxUpdate.attempts)
        .where(InboxUpdate.status == InboxStatus.FAILED, col(InboxUpdate.alerted_at).is_(None))
        .order_by(col(InboxUpdate.id))
        .limit(limit)
    )
    return [tuple(row) for row in result.all()]


async def mark_alerted(session: AsyncSession, *, row_id: int, now: datetime) -> None:
    await session.exec(
        update(InboxUpdate)
        .where(InboxUpdate.id == row_id)
        .values(alerted_at=now)
        .execution_options(synchronize_session=False)
    )
