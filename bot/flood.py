"""Per-person message rate: a sliding window kept in memory, since it guards this process's
replies (Telegram allows a bot about one message a second in a chat)."""

from __future__ import annotations

from collections import deque
from enum import Enum


class Flood(Enum):
    CALM = "calm"
    STARTED = "started"  # this message crossed the limit: say "slow down" once
    ONGOING = "ongoing"  # still over the limit: handle the message, hold the replies


class FloodGate:
    def __init__(self, *, max_messages: int, seconds: float) -> None:
        self.max_messages = max_messages
        self.seconds = seconds
        self._arrivals: dict[str, deque[float]] = {}
        self._flooding: set[str] = set()

    def check(self, key: str, now: float) -> Flood:
        arrivals = self._arrivals.setdefault(key, deque())
        while arrivals and now - arrivals[0] > self.seconds:
            arrivals.popleft()
        arrivals.append(now)
        if len(arrivals) <= self.max_messages:
            self._flooding.discard(key)
            if len(self._arrivals) > 10_000:
                self._forget_quiet(now)
            return Flood.CALM
        if key in self._flooding:
            return Flood.ONGOING
        self._flooding.add(key)
        return Flood.STARTED

    def _forget_quiet(self, now: float) -> None:
        quiet = [k for k, a in self._arrivals.items() if not a or now - a[-1] > self.seconds]
        for key in quiet:
            del self._arrivals[key]
