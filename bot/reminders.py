"""Unclaimed tickets: a reminder in the ticket's topic once it has waited HOTLINE_SLA_MINUTES
of office hours, then again each further SLA period, until someone claims it.
python-telegram-bot's job queue runs `check` every minute."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.items import enqueue, to_outgoing
from bot.delivery.sender import Queued
from content.catalog import Catalog
from db.models import Ticket, TicketStatus, utcnow
from handlers.mediation import notice_in_topic
from handlers.messages import Outgoing


class SlaReminders:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        clock: Callable[[], datetime],
        sla: timedelta,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.clock = clock
        self.sla = sla

    async def check(self) -> list[Queued]:
        """Records the reminders due now, with their outbox rows; returns those for the
        sender."""
        now = self.clock()
        hours = self.catalog.office_hours
        if not hours.is_open(now):
            return []
        async with self.sessions() as session, session.begin():
            sweep = _Sweep(session=session, outgoing=[], catalog=self.catalog, now=now)
            waiting = await session.exec(
                select(Ticket).where(
                    Ticket.status == TicketStatus.NEW, col(Ticket.assignee_id).is_(None)
                )
            )
            for ticket in waiting.all():
                since = ticket.reminded_at or ticket.created_at
                if hours.open_time_between(since, now) < self.sla:
                    continue
                waited = hours.open_time_between(ticket.created_at, now)
                minutes = int(waited.total_seconds() // 60)
                notice_in_topic(sweep, ticket, "sla.reminder", minutes=minutes)
                ticket.reminded_at = now
            return await enqueue(session, to_outgoing(sweep.outgoing), now=utcnow())


@dataclass
class _Sweep:
    """One reminder round, doing ticket work as a turn would (handlers.mediation.Work)."""

    session: AsyncSession
    outgoing: list[Outgoing]
    catalog: Catalog
    now: datetime
