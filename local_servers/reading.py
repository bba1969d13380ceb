"""What the people the local servers play share: the messages the bot sent them, and a cursor,
so that a test waits for "the next message" instead of sleeping, and for quiet when it must
know nothing more is coming."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

Message = TypeVar("Message")


class MessageReader(Generic[Message]):
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._cursor = 0
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        """Something arrived or changed: whoever waits looks again."""
        if self._waiter is not None:
            if not self._waiter.done():
                self._waiter.set_result(None)
            self._waiter = None

    async def next_message(self, timeout: float = 5.0) -> Message:
        return (await self.next_messages(1, timeout))[0]

    async def next_messages(self, n: int, timeout: float = 5.0) -> list[Message]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) - self._cursor < n:
            remaining = deadline - loop.time()
            if remaining <= 0 or not await self._activity(remaining):
                raise TimeoutError(self._missing(n, timeout))
        batch = self.messages[self._cursor : self._cursor + n]
        self._cursor += n
        return batch

    async def quiet(self, seconds: float = 0.3) -> list[Message]:
        """Waits until nothing has come for `seconds`; returns what is unread."""
        while await self._activity(seconds):
            pass
        batch = self.messages[self._cursor :]
        self._cursor = len(self.messages)
        return batch

    async def _activity(self, timeout: float) -> bool:
        """Whether something came (or changed) within `timeout`."""
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        done, _ = await asyncio.wait({self._waiter}, timeout=timeout)
        return bool(done)

    def _missing(self, n: int, timeout: float) -> str:
        unread = self.messages[self._cursor :]
        return f"{self!r}: expected {n} new message(s) within {timeout}s, got {unread}"
