"""Files kept from channels whose own copies expire (WeChat's media ids last 3 days): what a
worker sent as evidence, for the counsellors later, deleted with the evidence (/forget, purge)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import MediaFile, Person, Ticket, TicketMessage


async def keep(
    session: AsyncSession, *, channel: str, file_id: str, content: bytes | None, now: datetime
) -> None:
    """Keeps a file's bytes (None: the channel no longer had it); a second keep changes nothing."""
    if await session.get(MediaFile, (channel, file_id)) is None:
        session.add(
            MediaFile(
                channel=channel,
                file_id=file_id,
                content=content,
                size=len(content or b""),
                fetched_at=now,
            )
        )


async def content_of(session: AsyncSession, *, channel: str, file_id: str) -> bytes | None:
    kept = await session.get(MediaFile, (channel, file_id))
    return kept.content if kept is not None else None


async def evidence_to_keep(session: AsyncSession, *, channel: str, limit: int) -> list[str]:
    """File ids of the channel's workers' ticket messages not kept here yet, oldest first."""
    kept = exists().where(
        MediaFile.channel == channel, col(MediaFile.file_id) == col(TicketMessage.media_file_id)
    )
    result = await session.exec(
        select(TicketMessage.media_file_id)
        .join(Ticket, col(Ticket.id) == col(TicketMessage.ticket_id))
        .join(Person, col(Person.id) == col(Ticket.person_id))
        .where(Person.channel == channel, col(TicketMessage.media_file_id).is_not(None), ~kept)
        .order_by(col(TicketMessage.id))
        .limit(limit)
    )
    return list(dict.fromkeys(row for (row,) in result.all()))


async def forget_files(session: AsyncSession, *, channel: str, file_ids: Sequence[str]) -> None:
    if file_ids:
        await session.exec(
            delete(MediaFile).where(
                MediaFile.channel == channel, col(MediaFile.file_id).in_(list(file_ids))
            )
        )


async def forget_evidence_of(session: AsyncSession, *, ticket_ids) -> None:
    """The kept files of these tickets' messages (`ticket_ids`: ids or a select of them),
    before the messages themselves are erased."""
    rows = await session.exec(
        select(Person.channel, TicketMessage.media_file_id)
        .join(Ticket, col(Ticket.id) == col(TicketMessage.ticket_id))
        .join(Person, col(Person.id) == col(Ticket.person_id))
        .where(
            col(TicketMessage.ticket_id).in_(ticket_ids),
            col(TicketMessage.media_file_id).is_not(None),
        )
    )
    by_channel: dict[str, list[str]] = {}
    for channel, file_id in rows.all():
        by_channel.setdefault(channel, []).append(file_id)
    for channel, file_ids in by_channel.items():
        await forget_files(session, channel=channel, file_ids=file_ids)
