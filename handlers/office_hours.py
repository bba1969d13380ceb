"""Outside office hours (content/office_hours.yaml) a worker who reaches the counsellors is
told when to expect an answer and whom to call in an emergency meanwhile."""

from __future__ import annotations

from handlers.flow import Turn


def say_if_after_hours(turn: Turn) -> None:
    """Outside office hours the worker learns when to expect an answer, and whom to call now."""
    hours = turn.catalog.office_hours
    if hours.is_open(turn.now):
        return
    opens = hours.next_opening(turn.now)
    turn.say(
        "mediation.after_hours",
        weekday=turn.t(f"weekdays.{opens:%A}".lower()),
        month=opens.month,
        day=opens.day,
        time=f"{opens:%H:%M}",
    )
