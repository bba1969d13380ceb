"""Marks answered inbox rows done in batches: one UPDATE for all the rows answered in the
last moment, instead of one transaction per update, which is most of a turn's cost on SQLite.

A crash can lose only the marks not yet written; those rows' replies are sent again on
restart. A reply may repeat; an effect never does (it committed with the "handled" mark).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from db import inbox

log = logging.getLogger(__name__)


class DoneMarks:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, delay: float = 0.05) -> None:
        self.sessions = sessions
        self.delay = delay
        self._pending: list[int] = []
        self._flushing: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()  # a flush returns only once every earlier mark is written

    def add(self, row_id: int) -> None:
        self._pending.append(row_id)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_soon())

    async def flush(self) -> None:
        """Writes every mark collected so far."""
        async with self._writing:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    async with self.sessions() as session, session.begin():
                        await inbox.mark_done(session, row_ids=batch)
                except Exception:
                    log.exception(
                        "could not mark %d inbox row(s) done; they will be re-sent", len(batch)
                    )
                    return

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.delay)
        await self.flush()
