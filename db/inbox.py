"""The inbox: every update is stored before the channel is told it arrived, and marked as it
is handled and answered, so a crash at any moment loses nothing and repeats nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import InboxStatus, InboxUpdate


async def store_updates(
    session: AsyncSession,
    *,
    channel: str,
    updates: Sequence[tuple[int, str, dict[str, Any]]],
    now: datetime,
) -> dict[int, int]:
    """Stores (update_id, person_key, payload) rows; returns {update_id: row id} for the ones
    that were new. An update seen before (the channel repeated it) is not stored again."""
    if not updates:
        return {}
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(InboxUpdate)
        .values(
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
        .on_conflict_do_nothing(index_elements=["channel", "update_id"])
        .returning(InboxUpdate.update_id, InboxUpdate.id)
    )
    result = await session.exec(statement)
    return {update_id: row_id for update_id, row_id in result.all()}


_MARK_HANDLED = (
    update(InboxUpdate)
    .where(InboxUpdate.id == bindparam("row_id"))
    .values(
        status=InboxStatus.HANDLED,
        replies=bindparam("replies"),
        outgoing=bindparam("outgoing"),
        handled_at=bindparam("now"),
    )
    .execution_options(synchronize_session=False)  # no inbox objects live in the session
)


async def mark_handled(
    session: AsyncSession,
    *,
    row_id: int,
    replies: list[dict[str, Any]],
    outgoing: list[dict[str, Any]] | None = None,
    now: datetime,
) -> None:
    """Stores what the turn will send, with the turn's effects. Prepared once: every turn."""
    await session.exec(
        _MARK_HANDLED,
        params={"row_id": row_id, "replies": replies, "outgoing": outgoing or None, "now": now},
    )


async def mark_done(
    session: AsyncSession, *, row_ids: Sequence[int], status: str = InboxStatus.DONE
) -> None:
    await session.exec(
        update(InboxUpdate)
        .where(col(InboxUpdate.id).in_(row_ids))
        .values(status=status)
        .execution_options(synchronize_session=False)
    )


async def unfinished(session: AsyncSession, *, channel: str) -> list[InboxUpdate]:
    """What a previous run stored but did not finish, oldest first."""
    result = await session.exec(
        select(InboxUpdate)
        .where(
            InboxUpdate.channel == channel,
            col(InboxUpdate.status).in_([InboxStatus.RECEIVED, InboxStatus.HANDLED]),
        )
        .order_by(col(InboxUpdate.update_id))
    )
    return list(result.all())
