"""Status marks written in batches: what many lanes mark in the same moment goes in one
transaction, which is most of what marking costs on SQLite."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[None]]) -> None:
        self.write = write
        self._items: list[T] = []
        self._done: asyncio.Future[None] | None = None
        self._writing = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(self, item: T) -> None:
        """Returns once the batch holding `item` is committed (raises if it was not)."""
        await asyncio.shield(self.add_nowait(item))

    def add_nowait(self, item: T) -> asyncio.Future[None]:
        """Adds `item` to the next batch without waiting for it; a failed write is logged."""
        self._items.append(item)
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            self._done.add_done_callback(_log_failure)
            task = asyncio.create_task(self._write_soon(self._done))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._done

    async def flush(self) -> None:
        """Waits for every batch started so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _write_soon(self, done: asyncio.Future[None]) -> None:
        await asyncio.sleep(0)  # whoever else marks in this moment joins the batch
        async with self._writing:
            items, self._items, self._done = self._items, [], None
            try:
                await self.write(items)
            except Exception as error:
                done.set_exception(error)
            else:
                done.set_result(None)


def _log_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.error("could not write a batch of outbox marks: %s", done.exception())
