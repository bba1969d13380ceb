"""After a ticket is resolved the worker is asked whether the problem was solved and to rate
the help from 1 to 5. These buttons work whatever the worker is doing at the time."""

from __future__ import annotations

from bot.messages import Choice, Reply
from db.tickets import ticket_of
from handlers.flow import Turn

RATINGS = ("1", "2", "3", "4", "5")


async def feedback(turn: Turn) -> None:
    """Stores whether the problem was solved and asks for a rating."""
    ticket = await _ticket(turn)
    if ticket is None or turn.inbound.choice not in ("solved", "not_solved"):
        turn.say("common.old_button")
        return
    ticket.solved = turn.inbound.choice == "solved"
    choices = [Choice(r, r, numbered=False) for r in RATINGS]
    turn.replies.append(
        Reply(
            str(turn.t("feedback.rate", reference=ticket.reference)),
            choices,
            choice_tag=f"rating.{ticket.id}",
        )
    )


async def rating(turn: Turn) -> None:
    """Stores the worker's rating of the help."""
    ticket = await _ticket(turn)
    if ticket is None or turn.inbound.choice not in RATINGS:
        turn.say("common.old_button")
        return
    ticket.rating = int(turn.inbound.choice)
    turn.say("feedback.thanks")


async def _ticket(turn: Turn):
    _, _, ticket_id = (turn.inbound.choice_tag or "").partition(".")
    if not ticket_id.isdigit():
        return None
    return await ticket_of(turn.session, person_id=turn.person.id, ticket_id=int(ticket_id))


BUTTONS = {"feedback": feedback, "rating": rating}
