"""How fast the hotline may send, per destination, so that Telegram never has to say 429.

python-telegram-bot's AIORateLimiter paces the whole bot and each group, but one caller
waiting on the staff group's 20 a minute holds its place among everyone's sends, and it knows
nothing of a private chat's own limit or of conversation replies going before bulk sends. So
the pace is kept here, per destination: each private chat, each group, and the bot as a whole,
with conversation traffic ahead of bulk traffic in the overall budget. A 429 pauses only the
destination that got it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Telegram's limit into one group, all its topics together (Bots FAQ: "no more than 20
# messages per minute to the same group"). One second of margin: a send leaves some time
# after its slot is taken, and Telegram counts arrivals.
GROUP_MESSAGES, GROUP_WINDOW = 20, 61.0
OVERALL_MARGIN = 0.25  # seconds, for the same reason, on the bot's overall second: 0.1 let a
# 429 through in bench/surge.py once calls went over aiohttp, many connections at once
MARGINAL_SENDS = 7.5  # ...that is, about this many sends' worth at Telegram's 30 a second
MIN_MARGIN = 0.05  # and never less: at 1,000 a second (paid broadcasts) 0.25 s would waste a fifth
QUIET_CHATS_KEPT = 10_000  # private chats' buckets kept in memory before idle ones are dropped


@dataclass(frozen=True, slots=True)
class Paces:
    overall_per_second: float = 30.0  # Telegram: about 30 messages a second for one bot
    bulk_per_second: float | None = None  # broadcasts and alerts, within the overall rate
    chat_burst: int = 5  # a private chat: short bursts, then about one a second
    chat_per_second: float = 1.0
    group_messages: int = GROUP_MESSAGES
    group_window: float = GROUP_WINDOW


def overall_margin(per_second: float) -> float:
    """The margin on a rate's one-second window: a quarter of a second at Telegram's 30, less
    at the raised rates of paid broadcasts, where a fixed quarter second would cost a fifth of
    the rate (bench/broadcast.py measures what a smaller one lets through)."""
    return max(MIN_MARGIN, min(OVERALL_MARGIN, MARGINAL_SENDS / per_second))


class TokenBucket:
    """`burst` at once, then `rate` a second."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated, self.paused_until = burst, now, 0.0

    def wait(self, now: float) -> float:
        """Seconds until one may go (0: now)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        ready = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
        return max(ready, self.paused_until - now)

    def take(self) -> None:
        self.tokens -= 1

    def idle(self, now: float) -> bool:
        return self.wait(now) == 0 and self.tokens >= self.burst


class SlidingWindow:
    """At most `count` in any `seconds`."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count, self.seconds = count, seconds
        self.sent: deque[float] = deque()
        self.paused_until = 0.0

    def wait(self, now: float) -> float:
        while self.sent and now - self.sent[0] >= self.seconds:
            self.sent.popleft()
        ready = 0.0 if len(self.sent) < self.count else self.sent[0] + self.seconds - now
        return max(ready, self.paused_until - now)

    def take(self, now: float) -> None:
        self.sent.append(now)


class Pacer:
    """Waits, before each message a channel sends, until its destination and the bot's
    overall budget allow it. Destinations are keys: a private chat's, or a group's."""

    def __init__(self, paces: Paces, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.paces = paces
        self.clock = clock
        # Telegram counts the bot's messages in any second (a sliding window), not a bucket
        # refilled as it goes, which would let twice the rate through within one second.
        self._overall = SlidingWindow(
            max(1, int(paces.overall_per_second)), 1.0 + overall_margin(paces.overall_per_second)
        )
        bulk = paces.bulk_per_second
        self._bulk = SlidingWindow(max(1, int(bulk)), 1.0 + overall_margin(bulk)) if bulk else None
        self._chats: dict[str, TokenBucket] = {}
        self._groups: dict[str, SlidingWindow] = {}
        self._conversation_waiting = 0  # bulk sends give way while this is above zero

    async def private(self, chat: str, *, bulk: bool = False) -> None:
        """Before a message into a person's private chat."""
        bucket = self._chats.get(chat)
        if bucket is None:
            if len(self._chats) > QUIET_CHATS_KEPT:
                self._drop_idle()
            bucket = self._chats[chat] = TokenBucket(
                self.paces.chat_per_second, self.paces.chat_burst, self.clock()
            )
        await self._take(bucket.wait, bucket.take, bulk=bulk)

    async def overall(self) -> None:
        """Before a call that is no new message (an edit): only the bot's overall budget."""
        await self._take(lambda _now: 0.0, lambda: None, bulk=False)

    async def group(self, chat: str) -> None:
        """Before a message into a group (a topic opened counts: its first message)."""
        window = self._groups.get(chat)
        if window is None:
            window = self._groups[chat] = SlidingWindow(
                self.paces.group_messages, self.paces.group_window
            )
        await self._take(window.wait, lambda: window.take(self.clock()), bulk=False)

    async def _take(
        self, wait: Callable[[float], float], take: Callable[[], None], *, bulk: bool
    ) -> None:
        """Takes the destination's slot and the overall one at the same instant, so that a
        wait for one never makes the other's slot older than the message that uses it."""
        # A conversation send holds bulk back only while its own chat would take it and it
        # waits for the overall budget: one waiting on its chat's 1 a second (a worker who
        # writes fast) must not stop a broadcast to everyone else.
        competing = False
        try:
            ceiling = self._bulk if bulk else None
            while True:
                now = self.clock()
                own = wait(now)
                if not bulk and (own == 0) != competing:
                    competing = own == 0
                    self._conversation_waiting += 1 if competing else -1
                delay = max(own, self._overall.wait(now))
                if ceiling is not None:
                    delay = max(delay, ceiling.wait(now))
                if delay == 0 and (not bulk or self._conversation_waiting == 0):
                    take()
                    self._overall.take(now)
                    if ceiling is not None:
                        ceiling.take(now)
                    return
                await asyncio.sleep(delay or 1 / self.paces.overall_per_second)
        finally:
            if competing:
                self._conversation_waiting -= 1

    def seed_group(self, chat: str, ages: list[float]) -> None:
        """A new run: the group got messages `ages` seconds ago (the last run's), and its
        window counts them, or a restart would send a fresh 20 into a full minute."""
        window = self._groups.setdefault(
            chat, SlidingWindow(self.paces.group_messages, self.paces.group_window)
        )
        now = self.clock()
        recent = sorted(now - age for age in ages if 0 <= age < window.seconds)
        window.sent = deque(sorted([*window.sent, *recent]))

    def pause(self, chat: str, seconds: float) -> None:
        """Telegram said 429 for this destination: nothing more goes there for `seconds`."""
        until = self.clock() + seconds
        for limits in (self._chats, self._groups):
            if chat in limits:
                limits[chat].paused_until = max(limits[chat].paused_until, until)

    def overall_wait(self) -> float:
        """Seconds until the bot's overall budget takes another message."""
        return self._overall.wait(self.clock())

    def group_counted(self, chat: str) -> int:
        """Messages the group's current window counts (for status reports and restarts)."""
        window = self._groups.get(chat)
        if window is None:
            return 0
        window.wait(self.clock())  # forgets what left the window
        return len(window.sent)

    def group_wait(self, chat: str) -> float:
        """Seconds until the group could take another message (for status reports)."""
        window = self._groups.get(chat)
        return window.wait(self.clock()) if window else 0.0

    def _drop_idle(self) -> None:
        now = self.clock()
        for chat in [c for c, bucket in self._chats.items() if bucket.idle(now)]:
            del self._chats[chat]
