"""What became of one message sent on Telegram, as the channel and the staff group's side of
it both report it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of a message: `status` as the delivery is recorded ("sent", "blocked",
    "failed"), the new message's id, and why it was not delivered: "blocked" (the person
    blocked the bot), "too_long" or "refused" (Telegram's 400, its words in `detail`),
    "unreachable" (Telegram failed or timed out after the retries)."""

    status: str
    message_id: int | None = None
    reason: str | None = None
    detail: str | None = None


RATE_LIMITED_WAITS = 10  # 429s waited out for one message or topic before it is given up


def retry_seconds(retry_after) -> float:
    """Telegram's retry_after as seconds (python-telegram-bot gives an int or a timedelta)."""
    return (
        retry_after.total_seconds() if hasattr(retry_after, "total_seconds") else float(retry_after)
    )
