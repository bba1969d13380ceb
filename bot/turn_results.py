"""What a turn leaves the channel to do once it has committed (`TurnResult`), and how held
replies go out together."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from handlers.messages import Reply


@dataclass(frozen=True, slots=True)
class Hold:
    """A flood changed how long a lane's held replies wait: until `until`, or no longer."""

    lane: str
    until: datetime | None


@dataclass(slots=True)
class TurnResult:
    """What a channel does after a turn committed: hand `queued` (outbox rows, written with
    the turn) to its sender; send `replies` itself only when the turn could not commit."""

    replies: list[Reply]
    queued: list[Any] = field(default_factory=list)  # bot.delivery.sender.Queued
    alert: str | None = None  # the answer to a pressed button, shown as a pop-up
    hold: Hold | None = None
    erased: bool = False  # the person was forgotten: erase what the storage keeps besides
    language: str | None = None  # the person's, as the turn left it (for a channel's own words)


def gathered(replies: list[Reply]) -> Reply:
    """Replies held back by a flood, as one message: every text in order, and the buttons of
    the last, the only question still open (a channel splits what is too long)."""
    last = replies[-1]
    text = "\n\n".join(r.text for r in replies)
    return Reply(text, last.choices, last.choice_tag, any(r.urgent for r in replies))
