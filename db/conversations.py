"""Where each person is in a conversation, read at the start of a turn, written at its end.

Written with prepared Core statements rather than an ORM flush: this runs on every turn,
and the ORM's unit of work was a large share of a turn's cost in the benchmark.
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


_INSERT = insert(Conversation)
_UPDATE = (
    update(Conversation)
    .where(Conversation.person_id == bindparam("the_person"))
    .values(
        flow=bindparam("flow"),
        step=bindparam("step"),
        data=bindparam("data"),
        history=bindparam("history"),
        updated_at=bindparam("updated_at"),
    )
    # No ORM object of this row is kept in the session: skip the ORM's bookkeeping.
    .execution_options(synchronize_session=False)
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
