"""Where each person is in a conversation, read at the start of a turn, written at its end.

Written with prepared Core statements on the table rather than an ORM flush or an ORM-enabled
UPDATE: this runs on every turn, and the ORM's layers cost about three times the statement
itself (bench/README.md, "What has been tried").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, update
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import Conversation


class SavedConversation(NamedTuple):
    flow: str
    step: str
    data: dict[str, Any]
    history: list[str]


_TABLE = Conversation.__table__
_INSERT = insert(_TABLE)
_UPDATE = (
    update(_TABLE)
    .where(_TABLE.c.person_id == bindparam("the_person"))
    .values(
        flow=bindparam("flow"),
        step=bindparam("step"),
        data=bindparam("data"),
        history=bindparam("history"),
        updated_at=bindparam("updated_at"),
    )
)


async def save_conversation(
    session: AsyncSession,
    *,
    person_id: int,
    is_new: bool,
    flow: str,
    step: str,
    data: dict[str, Any],
    history: list[str],
    now: datetime,
) -> None:
    values = {"flow": flow, "step": step, "data": data, "history": history, "updated_at": now}
    if is_new:
        await session.exec(_INSERT.values(person_id=person_id, **values))
    else:
        await session.exec(_UPDATE, params={"the_person": person_id, **values})
