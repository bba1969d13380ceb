"""Marks inbox rows done that no turn marked: updates that were not for the hotline, and rows
a run before the outbox handled. A turn marks its own row in its transaction; these go in
batches through the same batcher as the outbox's marks (bot/delivery/marks.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.marks import Batcher
from db import inbox


class DoneMarks:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._batcher: Batcher[int] = Batcher(self._write)

    def add(self, row_id: int) -> None:
        self._batcher.add_nowait(row_id)  # a failed write is logged; the row is seen again

    async def flush(self) -> None:
        """Waits until every mark collected so far is written."""
        await self._batcher.flush()

    async def _write(self, row_ids: list[int]) -> None:
        async with self.sessions() as session, session.begin():
            await inbox.mark_done(session, row_ids=row_ids)
