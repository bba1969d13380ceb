"""`hotline broadcast send|list|show|pause|resume|cancel`: what /broadcast does in the staff
group, from the server's shell. A broadcast made here is scheduled in the database; the
running hotline starts it at its time (within a second) and posts its progress in the staff
group's General topic. Like `hotline jobs`, it checks no staff role: whoever can run it on
the server already has the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from content.catalog import Catalog
from db import broadcasts
from db.broadcasts import audience_size
from db.models import Broadcast, BroadcastStatus
from handlers.notices import footer_length, telegram_units
from handlers.staff_broadcast import PRESSES, TEXT_LIMIT, TIME_FORMAT, read_send_time


class BroadcastError(Exception):
    """Why the command did nothing (said to the operator, exit status 1)."""


@dataclass(frozen=True, slots=True)
class NewBroadcast:
    texts: dict[str, str]  # language: text, as typed
    audience: dict
    at: str | None  # "YYYY-MM-DD HH:MM" in the centre's time; None: now


async def send(
    sessions: async_sessionmaker[AsyncSession],
    *,
    catalog: Catalog,
    new: NewBroadcast,
    now: datetime,
    out: TextIO,
) -> int:
    """Checks and schedules the broadcast; returns its id."""
    first = catalog.languages[0]
    texts = {lang: text.strip() for lang, text in new.texts.items() if text and text.strip()}
    if first not in texts:
        raise BroadcastError(f"the text in {first} (--text-{first}) is needed and not empty")
    for language, text in texts.items():
        limit = TEXT_LIMIT - footer_length(catalog, language)
        if telegram_units(text) > limit:
            raise BroadcastError(
                f"the {language} text is {telegram_units(text)} characters; at most {limit}"
            )
    zone = catalog.office_hours.timezone
    at = None  # now: the running hotline's next round
    if new.at is not None:
        at = read_send_time(new.at, zone)
        if at is None:
            raise BroadcastError(f"cannot read --at {new.at!r}: write it as 2026-12-05 09:00")
        if at <= now:
            raise BroadcastError(f"--at {new.at} has passed (the centre's time, {zone.key})")
    async with sessions() as session, session.begin():
        size = await audience_size(session, audience=new.audience)
        if size.total == 0:
            raise BroadcastError("nobody subscribed is in this audience: nothing scheduled")
        broadcast = Broadcast(
            status=BroadcastStatus.SCHEDULED,
            created_by="command line",
            texts=texts,
            audience=new.audience,
            scheduled_at=at,
            created_at=now,
            updated_at=now,
        )
        session.add(broadcast)
        await session.flush()
        falling_back = sum(n for lang, n in size.by_language.items() if lang not in texts)
    when = f"{at.astimezone(zone).strftime(TIME_FORMAT)} ({zone.key})" if at else "now"
    print(
        f"Broadcast {broadcast.id} scheduled for {when} to {size.total} worker(s);"
        f" {falling_back} get the {first} text (none in their language).",
        file=out,
    )
    return broadcast.id


async def print_list(sessions: async_sessionmaker[AsyncSession], *, out: TextIO) -> None:
    async with sessions() as session:
        found = await broadcasts.listed(session)
        for broadcast in found:
            counts = await broadcasts.counts(session, broadcast_id=broadcast.id)
            print(_line(broadcast, counts), file=out)
    print(f"{len(found)} broadcast(s).", file=out)


async def show(
    sessions: async_sessionmaker[AsyncSession], *, broadcast_id: int, out: TextIO
) -> None:
    async with sessions() as session:
        broadcast = await session.get(Broadcast, broadcast_id)
        if broadcast is None or broadcast.status == BroadcastStatus.DRAFT:
            raise BroadcastError(f"there is no broadcast {broadcast_id}")
        counts = await broadcasts.counts(session, broadcast_id=broadcast_id)
    print(_line(broadcast, counts), file=out)
    print(f"  audience: {broadcast.audience}", file=out)
    for language, text in broadcast.texts.items():
        print(f"  {language}: {text}", file=out)
    print("  deliveries: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=out)


async def change(
    sessions: async_sessionmaker[AsyncSession],
    *,
    broadcast_id: int,
    action: str,
    now: datetime,
    out: TextIO,
) -> None:
    """pause, resume or cancel (the progress message's buttons do the same)."""
    to, allowed, _ = PRESSES["stop" if action == "cancel" else action]
    async with sessions() as session, session.begin():
        changed = await broadcasts.set_status(
            session, broadcast_id=broadcast_id, to=to, allowed_from=allowed, now=now
        )
        broadcast = await session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.status == BroadcastStatus.DRAFT:
        raise BroadcastError(f"there is no broadcast {broadcast_id}")
    if not changed:
        raise BroadcastError(f"broadcast {broadcast_id} is {broadcast.status}: cannot {action}")
    print(f"Broadcast {broadcast_id} is {to} now.", file=out)


def _line(broadcast: Broadcast, counts: dict[str, int]) -> str:
    done = counts["sent"]
    total = broadcast.recipients or "?"
    first = next(iter(broadcast.texts.values()), "")
    preview = first if len(first) <= 40 else first[:39] + "…"
    return (
        f"{broadcast.id:>5}  {broadcast.status:<9}  sent {done}/{total}  "
        f"failed {counts['failed']}  blocked {counts['blocked']}  unknown {counts['unknown']}"
        f"  {broadcast.created_by}: {preview}"
    )
