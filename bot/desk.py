"""The layer around the staff's handlers, as the engine is around the workers': one
transaction per update, the staff member who wrote, the ticket of the topic or of the
pressed card, and the worker behind it, so that handlers/staff.py only decides."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import failed_turns
from bot.delivery.items import enqueue, to_outgoing, to_staff
from bot.delivery.pacing import Paces
from bot.log_redaction import person_tag
from bot.turn_results import TurnResult
from content.catalog import Catalog
from db import inbox
from db.models import Person, utcnow
from db.staff import find_staff
from db.tickets import ticket_by_id, ticket_by_topic
from handlers.mediation import staff_texts
from handlers.messages import Inbound, Reply
from handlers.staff import StaffTurn, from_staff

log = logging.getLogger(__name__)


class StaffDesk:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        clock: Callable[[], datetime] = utcnow,
        paces: Paces | None = None,
        sla: timedelta | None = None,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.clock = clock
        self.paces = paces or Paces()  # for /status's estimates
        self.sla = sla  # HOTLINE_SLA_MINUTES, for /stats's breaches

    async def handle(self, inbound: Inbound, *, receipt: int | None = None) -> TurnResult:
        try:
            async with self.sessions() as session, session.begin():
                turn = await self._begin(session, inbound)
                if turn.staff is None:
                    log.warning(
                        "refused %s from %s (not registered staff) in the staff group",
                        inbound.kind,
                        person_tag(inbound.person_id),
                    )
                await from_staff(turn)
                # Replies in a ticket's topic keep their place among the ticket's posts.
                in_topic = turn.ticket is not None and turn.ticket.topic_id == inbound.thread_id
                items = to_staff(
                    inbound.channel,
                    turn.replies,
                    thread_id=inbound.thread_id,
                    ticket_id=turn.ticket.id if in_topic else None,
                )
                items += to_outgoing(turn.outgoing, staff_channel=inbound.channel)
                queued = await enqueue(session, items, now=utcnow())
                if receipt is not None:
                    await inbox.finish_turn(session, row_id=receipt)
        except inbox.AlreadyHandled:  # by another process (bot/cluster.py): nothing to do
            return TurnResult([])
        except Exception:
            log.exception("staff update failed (from %s)", person_tag(inbound.person_id))
            if await failed_turns.try_again(self.sessions, receipt):  # as a worker's turn
                return await self.handle(inbound, receipt=receipt)
            sorry = [Reply(str(staff_texts(self.catalog)("common.sorry")))]
            items = to_staff(inbound.channel, sorry, thread_id=inbound.thread_id, ticket_id=None)
            return await failed_turns.apologise(self.sessions, items, sorry)
        return TurnResult([], queued=queued, alert=turn.alert)

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
            paces=self.paces,
            sla=self.sla,
        )
