"""One lane per person: a person's updates run in arrival order, different people at once.

python-telegram-bot can process updates one at a time or all concurrently, but not "in order
per person, concurrently across people", which a conversation needs (two quick answers must
not race for the same state row), hence this small scheduler. It does not limit what is
queued: whoever submits asks `room` first (the poller, a start's backlog), so that the queue
stays bounded where the updates come from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Lanes:
    def __init__(self, *, max_running: int) -> None:
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._running = asyncio.Semaphore(max_running)
        self._all: set[asyncio.Task[None]] = set()
        self._waiting_for_room: list[asyncio.Future[None]] = []

    def submit(self, key: str, job: Callable[[], Awaitable[None]]) -> None:
        """Runs `job` after every job submitted before it under the same key."""
        previous = self._tails.get(key)
        task = asyncio.create_task(self._run(previous, job))
        self._tails[key] = task
        self._all.add(task)
        task.add_done_callback(lambda done: self._finished(key, done))

    def busy(self, key: str) -> bool:
        """Whether a job of this key is queued or running."""
        return key in self._tails

    @property
    def pending(self) -> int:
        return len(self._all)

    async def room(self, limit: int) -> int:
        """Waits while `limit` jobs or more are queued or running; returns how many more fit."""
        while len(self._all) >= limit:
            freed = asyncio.get_running_loop().create_future()
            self._waiting_for_room.append(freed)
            await freed
        return limit - len(self._all)

    async def drain(self) -> None:
        """Waits for everything submitted so far."""
        while self._all:
            await asyncio.gather(*list(self._all), return_exceptions=True)

    async def _run(
        self, previous: asyncio.Task[None] | None, job: Callable[[], Awaitable[None]]
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        async with self._running:
            try:
                await job()
            except Exception:
                log.exception("a job in a lane failed")

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        self._all.discard(task)
        if self._tails.get(key) is task:
            del self._tails[key]
        waiting, self._waiting_for_room = self._waiting_for_room, []
        for freed in waiting:
            if not freed.done():
                freed.set_result(None)
