"""The layer around the staff's handlers, as the engine is around the workers': one
transaction per update, the staff member who wrote, the ticket of the topic or of the
pressed card, and the worker behind it, so that handlers/staff.py only decides."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import Inbound, Reply, TurnResult
from content.catalog import Catalog
from db import inbox
from db.models import InboxStatus, Person, utcnow
from db.staff import find_staff
from db.tickets import ticket_by_id, ticket_by_topic
from handlers.mediation import staff_texts
from handlers.staff import StaffTurn, from_staff

log = logging.getLogger(__name__)


class StaffDesk:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.clock = clock

    async def handle(self, inbound: Inbound, *, receipt: int | None = None) -> TurnResult:
        try:
            async with self.sessions() as session, session.begin():
                turn = await self._begin(session, inbound)
                await from_staff(turn)
                if receipt is not None:
                    await inbox.mark_handled(
                        session,
                        row_id=receipt,
                        replies=[r.to_dict() for r in turn.replies],
                        outgoing=[o.to_dict() for o in turn.outgoing],
                        now=turn.now,
                    )
        except Exception:
            log.exception("staff update failed (from %s)", inbound.person_id)
            if receipt is not None:
                async with self.sessions() as session, session.begin():
                    await inbox.mark_done(session, row_ids=[receipt], status=InboxStatus.FAILED)
            return TurnResult([Reply(str(staff_texts(self.catalog)("common.sorry")))])
        return TurnResult(turn.replies, outgoing=turn.outgoing, alert=turn.alert)

    async def _begin(self, session: AsyncSession, inbound: Inbound) -> StaffTurn:
        staff = await find_staff(session, channel=inbound.channel, external_id=inbound.person_id)
        ticket = None
        kind, _, ticket_id = (inbound.choice_tag or "").partition(".")
        if kind in ("ticket", "refer") and ticket_id.isdigit():
            ticket = await ticket_by_id(session, ticket_id=int(ticket_id))
        elif inbound.thread_id is not None:
            ticket = await ticket_by_topic(session, topic_id=inbound.thread_id)
        worker = await session.get(Person, ticket.person_id) if ticket else None
        return StaffTurn(
            inbound=inbound,
            staff=staff,
            ticket=ticket,
            worker=worker,
            session=session,
            catalog=self.catalog,
            t=staff_texts(self.catalog),
            now=self.clock(),
        )
