"""The leader's jobs that run every so often (SLA reminders, failure alerts, pruning the inbox,
reading the outbox for rows other processes wrote), as asyncio tasks of the hotline's own, so
that they run the same with Telegram, with WeChat alone, or with both. A job that fails is
logged and runs again at its next time; one that takes longer than its interval simply makes
the next wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def every(
        self,
        seconds: float,
        job: Callable[[], Awaitable[object]],
        *,
        name: str,
        first: float | None = None,
    ) -> None:
        """Runs `job` after `first` seconds (default: one interval), then every `seconds`."""
        self._tasks[name] = asyncio.create_task(
            self._run(seconds, job, name, seconds if first is None else first), name=name
        )

    def names(self) -> list[str]:
        return sorted(self._tasks)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @staticmethod
    async def _run(
        seconds: float, job: Callable[[], Awaitable[object]], name: str, first: float
    ) -> None:
        await asyncio.sleep(first)
        while True:
            try:
                await job()
            except Exception:  # the next round tries again
                log.exception("the periodic job %s failed", name)
            await asyncio.sleep(seconds)
