"""Where each person is in a conversation, read at the start of a turn, written at its end."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import Conversation


async def save_conversation(
    session: AsyncSession, *, conversation: Conversation | None, person_id: int, flow: str,
    step: str, data: dict[str, Any], history: list[str], now: datetime,
) -> Conversation:
    if conversation is None:
        conversation = Conversation(person_id=person_id, flow=flow, step=step)
        session.add(conversation)
    conversation.flow = flow
    conversation.step = step
    # New objects, so SQLAlchemy sees the JSON columns changed.
    conversation.data = dict(data)
    conversation.history = list(history)
    conversation.updated_at = now
    return conversation
