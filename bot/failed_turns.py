"""Turns that raise: tried again, then given up, kept for an operator and the staff told.

A turn that raised (its transaction rolled back, nothing of it applied) is tried again in
its own lane, after a pause that doubles each time: the person's later updates wait behind
it, so their order holds. The attempts are counted on the inbox row, so a restart goes on
counting rather than starting over. After `TURN_ATTEMPTS` the row is marked FAILED and kept
(its payload for `db.inbox.FAILED_KEPT`), the person is told once that staff will look at
it, and their next update is handled as usual. A job posts an alert for each given-up row in
the staff group's General topic, in the staff's language, naming only the inbox row and the
channel (no personal data): alerts are taken from the rows, so a crash loses none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.items import enqueue, to_staff
from bot.delivery.sender import Queued
from bot.turn_results import TurnResult
from content.catalog import Catalog
from db import inbox
from db.models import InboxStatus, utcnow
from db.outbox import NewItem
from handlers.mediation import staff_texts
from handlers.messages import Reply

log = logging.getLogger(__name__)

TURN_ATTEMPTS = 4  # the first try and three more
FIRST_RETRY_DELAY = 1.0  # seconds before the second try; doubled before each further one


async def try_again(sessions: async_sessionmaker[AsyncSession], receipt: int | None) -> bool:
    """After a turn raised: counts the attempt and, when another is due, waits the pause and
    returns True; otherwise marks the row FAILED and returns False (give up)."""
    if receipt is None:  # no inbox row to count on: given up at once
        return False
    try:
        async with sessions() as session, session.begin():
            attempts = await inbox.count_attempt(session, row_id=receipt)
    except Exception:  # the database itself: the row stays unhandled for the next start
        log.exception("could not count the failed attempt at inbox row %s", receipt)
        return False
    if attempts < TURN_ATTEMPTS:
        delay = FIRST_RETRY_DELAY * 2 ** (attempts - 1)
        log.warning("inbox row %s failed (attempt %d); again in %.1fs", receipt, attempts, delay)
        await asyncio.sleep(delay)
        return True
    log.error("inbox row %s failed %d times: given up, kept for an operator", receipt, attempts)
    try:
        async with sessions() as session, session.begin():
            await inbox.mark_done(session, row_ids=[receipt], status=InboxStatus.FAILED)
    except Exception:
        log.exception("could not mark inbox row %s as failed", receipt)
    return False


async def apologise(
    sessions: async_sessionmaker[AsyncSession], items: Sequence[NewItem], replies: list[Reply]
) -> TurnResult:
    """The "sorry" of a given-up turn goes through the outbox like every reply, so that it
    keeps its chat's order and pace (with several processes the leader carries it out);
    only when the database cannot take it either is it said directly, with no row."""
    try:
        async with sessions() as session, session.begin():
            queued = await enqueue(session, items, now=utcnow())
    except Exception:
        log.exception("could not queue the apology for a given-up turn: said directly")
        return TurnResult(replies)
    return TurnResult([], queued=queued)


class FailureAlerts:
    """Queues the alerts of given-up rows in the outbox, each marked alerted in the same
    transaction: an alert is neither lost nor repeated, whatever happens after."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        clock: Callable[[], datetime],
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.clock = clock
        self._posting = asyncio.Lock()  # the job and a direct call never queue one alert twice

    async def queue(self, channel: str) -> list[Queued]:
        """Alerts for each given-up row not yet alerted, into the staff group's General
        topic; returns the outbox rows for the sender."""
        async with self._posting, self.sessions() as session, session.begin():
            rows = await inbox.failed_unalerted(session)
            t = staff_texts(self.catalog)
            alerts = []
            for row_id, row_channel, attempts in rows:
                alerts.append(
                    Reply(
                        str(t("failures.alert", row=row_id, channel=row_channel, attempts=attempts))
                    )
                )
                await inbox.mark_alerted(session, row_id=row_id, now=self.clock())
            items = to_staff(channel, alerts, thread_id=None, ticket_id=None)
            return await enqueue(session, items, now=utcnow())
