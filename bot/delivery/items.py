"""What a turn decided, as outbox rows: which lane keeps its order and which pace it goes at."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.sender import Queued
from db import outbox
from db.models import Pace
from db.outbox import STAFF_CHANNEL, NewItem, chat_lane, group_lane, topic_lane
from handlers.messages import Outgoing, Reply


async def enqueue(
    session: AsyncSession, items: Sequence[NewItem], *, now: datetime
) -> list[Queued]:
    """Writes the rows with the work that decided them; returns them for the sender, which
    takes them once the transaction has committed."""
    ids = await outbox.add_items(session, items=items, now=now)
    return [
        Queued(row_id, item.pace, item.lane, item.body, item.held, item.next_attempt_at or now)
        for row_id, item in zip(ids, items, strict=True)
    ]


def to_person(
    channel: str, person: str, replies: Sequence[Reply], *, held_until: datetime | None = None
) -> list[NewItem]:
    """Replies to a worker in their chat (a flood holds them until `held_until`)."""
    return [
        NewItem(
            channel=channel,
            pace=Pace.PRIVATE,
            lane=chat_lane(channel, person),
            body={"to": "chat", "chat": person, "reply": reply.to_dict()},
            held=held_until is not None and not reply.urgent,
            next_attempt_at=held_until if not reply.urgent else None,
        )
        for reply in replies
    ]


def to_staff(
    channel: str, replies: Sequence[Reply], *, thread_id: int | None, ticket_id: int | None
) -> list[NewItem]:
    """Replies in the staff group where the staff member wrote: in a ticket's topic they keep
    their place among the ticket's posts."""
    lane = topic_lane(channel, ticket_id) if ticket_id else group_lane(channel, thread_id)
    return [
        NewItem(
            channel=channel,
            pace=Pace.GROUP,
            lane=lane,
            body={"to": "group", "thread": thread_id, "reply": reply.to_dict()},
        )
        for reply in replies
    ]


def to_outgoing(items: Sequence[Outgoing], *, staff_channel: str = STAFF_CHANNEL) -> list[NewItem]:
    """Posts and copies into ticket topics, in the ticket's lane on the staff's channel;
    messages to a worker on a counsellor's behalf, in the worker's chat lane on theirs."""
    rows = []
    for item in items:
        channel = staff_channel if item.to == "topic" else item.worker_channel or staff_channel
        rows.append(
            NewItem(
                channel=channel,
                pace=Pace.GROUP if item.to == "topic" else Pace.PRIVATE,
                lane=topic_lane(channel, item.ticket_id)
                if item.to == "topic"
                else chat_lane(channel, item.worker),
                body={"outgoing": item.to_dict()},
            )
        )
    return rows
