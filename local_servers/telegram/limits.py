"""Telegram's sending limits, enforced by the local Bot API as Telegram enforces them: 429.

A bot that paces itself wrongly only finds out against the real Telegram, in a surge. So the
local server refuses what Telegram would refuse, with the same envelope ("Too Many Requests:
retry after N", ``parameters.retry_after``), and keeps counters a test or a benchmark can read.

The numbers come from Telegram's Bot FAQ, "My bot is hitting limits, how do I avoid this?"
(https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this). Telegram
says they are approximate and does not publish the algorithm; the shapes below (a sliding
window for the bot and for a group, a token bucket for a private chat) are our reading of it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

OVERALL = "overall"
GROUP = "group"
PRIVATE = "private"
GROUP_WINDOW = 60.0  # seconds: "20 messages per minute to the same group"
OVERALL_WINDOW = 1.0  # seconds: "30 messages per second" for bulk notifications

# Methods that make a message appear in a chat and so count against the limits: every send*
# but sendChatAction (a "typing…" status, no message), copies and forwards, and
# createForumTopic (its "topic created" service message appears in the group). Edits,
# deletions, closing or reopening a topic, answerCallbackQuery, getUpdates, getFile and getMe
# are not counted: Telegram has limits there too, but it documents none, so we keep it simple.
_COUNTED = frozenset({"copymessage", "forwardmessage", "createforumtopic"})


def makes_a_message(method: str) -> bool:
    """Whether a call of `method` (any case) posts a message, i.e. counts against the limits."""
    name = method.lower()
    return name in _COUNTED or (name.startswith("send") and name != "sendchataction")


@dataclass
class TelegramLimits:
    """How much a bot may send; None lifts that one limit. The defaults are Telegram's own.

    - overall_per_second: "If you're sending bulk notifications to multiple users, the API
      will not allow more than 30 messages per second or so" (Bot FAQ). All chats together.
    - group_per_minute: "your bot will not be able to send more than 20 messages per minute
      to the same group" (Bot FAQ). Per group or supergroup, all its forum topics together;
      the window slides, so never more than this in any 60 seconds.
    - private_burst, private_per_second: "If you're sending messages to a single chat, avoid
      sending more than one message per second. We may allow short bursts that go over this
      limit, but eventually you'll begin receiving 429 errors" (Bot FAQ). A token bucket per
      private chat: `private_burst` messages at once, then `private_per_second` refilled;
      either being None lifts it. A group gets only its per-minute window, the stricter one.
    """

    overall_per_second: int | None = 30
    group_per_minute: int | None = 20
    private_burst: int | None = 5
    private_per_second: float | None = 1.0

    @classmethod
    def unlimited(cls) -> TelegramLimits:
        """No limit at all: for a benchmark of the bot's own speed, as before the limits."""
        return cls(None, None, None, None)


class RateLimited(NamedTuple):
    """A call refused with 429: which method, into which chat, by which rule, and for how long."""

    method: str
    chat_id: int
    rule: str  # OVERALL, GROUP or PRIVATE
    retry_after: int


@dataclass
class _Bucket:
    tokens: float
    refilled_at: float


def _seconds(wait: float) -> int:
    """retry_after as Telegram gives it: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(round(wait, 6)))


@dataclass
class SendingQuotas:
    """What the bot has sent lately, to answer "may this message go now?" under the limits.

    `take` is called before a message is made, `give_back` when making it failed (a 400, a
    403): a refused or failed call leaves no trace in the windows, as on Telegram."""

    clock: Callable[[], float]
    sent_at: dict[int, list[float]] = field(default_factory=dict)  # accepted, per chat
    _overall: deque[float] = field(default_factory=deque)
    _groups: dict[int, deque[float]] = field(default_factory=dict)
    _buckets: dict[int, _Bucket] = field(default_factory=dict)

    def take(self, limits: TelegramLimits, chat_id: int, private: bool) -> tuple[str, int] | None:
        """Count one message into `chat_id` and return None, or return (rule, retry_after)
        and count nothing when a limit refuses it."""
        now = self.clock()
        if private:
            refused = self._take_private(limits, chat_id, now)
        else:
            refused = self._take_window(
                self._groups.setdefault(chat_id, deque()),
                limits.group_per_minute,
                GROUP_WINDOW,
                now,
                GROUP,
            )
        if refused is not None:
            return refused
        refused = self._take_window(
            self._overall, limits.overall_per_second, OVERALL_WINDOW, now, OVERALL
        )
        if refused is not None:
            self._undo_chat(limits, chat_id, private, now)
            return refused
        self.sent_at.setdefault(chat_id, []).append(now)
        return None

    def give_back(self, limits: TelegramLimits, chat_id: int, private: bool) -> None:
        """Undo the last `take` for `chat_id`: the message was not made after all."""
        times = self.sent_at.get(chat_id)
        if not times:
            return
        at = times.pop()
        self._undo_chat(limits, chat_id, private, at)
        if at in self._overall:
            self._overall.remove(at)

    def _undo_chat(self, limits: TelegramLimits, chat_id: int, private: bool, at: float) -> None:
        if private:
            bucket = self._buckets.get(chat_id)
            took = limits.private_burst is not None and limits.private_per_second is not None
            if bucket is not None and took:
                bucket.tokens += 1  # capped at the burst on the next refill
        else:
            window = self._groups.get(chat_id)
            if window is not None and at in window:
                window.remove(at)

    def _take_private(
        self, limits: TelegramLimits, chat_id: int, now: float
    ) -> tuple[str, int] | None:
        burst, rate = limits.private_burst, limits.private_per_second
        if burst is None or rate is None:
            return None
        bucket = self._buckets.get(chat_id)
        if bucket is None:
            bucket = self._buckets[chat_id] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.refilled_at) * rate)
        bucket.refilled_at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return PRIVATE, _seconds((1 - bucket.tokens) / rate) if rate > 0 else 3600

    @staticmethod
    def _take_window(
        window: deque[float], limit: int | None, period: float, now: float, rule: str
    ) -> tuple[str, int] | None:
        while window and now - window[0] >= period:
            window.popleft()
        if limit is None or len(window) < limit:
            window.append(now)  # counted even unlimited, so a limit set later sees the past
            return None
        # One more fits once all but limit-1 of these have left the window.
        frees_at = window[len(window) - limit] + period if limit > 0 else now + period
        return rule, _seconds(frees_at - now)


def busiest_window(times: Iterable[float], seconds: float) -> int:
    """The most messages among `times` that fall within any `seconds` (half-open window)."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most
