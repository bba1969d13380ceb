"""After a ticket is resolved the worker is asked whether the problem was solved and to rate
the help from 1 to 5, once per resolution. These buttons work whatever the worker is doing
at the time, but only while the ticket stands resolved."""

from __future__ import annotations

from db.models import Ticket, TicketStatus
from db.tickets import ticket_events, ticket_of
from handlers.flow import Turn
from handlers.messages import Choice, Reply

RATINGS = ("1", "2", "3", "4", "5")


async def feedback(turn: Turn) -> None:
    """Stores whether the problem was solved and asks for a rating."""
    ticket = await _ticket(turn)
    if ticket is None or turn.inbound.choice not in ("solved", "not_solved"):
        turn.say("common.old_button")
        return
    if not await _resolved(turn, ticket):
        return
    if ticket.solved is not None:
        turn.say("feedback.already_answered", reference=ticket.reference)
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
    if not await _resolved(turn, ticket):
        return
    if ticket.rating is not None:
        turn.say("feedback.already_rated", reference=ticket.reference)
        return
    ticket.rating = int(turn.inbound.choice)
    turn.say("feedback.thanks")


async def _resolved(turn: Turn, ticket: Ticket) -> bool:
    """Feedback is about a resolution: the ticket is resolved, or was closed right after it
    was resolved. A ticket reopened since, or never resolved, says so instead. Each
    resolution is answered once (handlers.staff.resolve clears the answers of an earlier one)."""
    if ticket.status == TicketStatus.RESOLVED:
        return True
    events = await ticket_events(turn.session, ticket_id=ticket.id)
    if ticket.status == TicketStatus.CLOSED and events[-1].from_status == TicketStatus.RESOLVED:
        return True
    was_resolved = any(e.to_status == TicketStatus.RESOLVED for e in events)
    key = "feedback.reopened" if was_resolved else "feedback.not_resolved"
    turn.say(key, reference=ticket.reference, status=turn.t(f"statuses.{ticket.status}"))
    return False


async def _ticket(turn: Turn) -> Ticket | None:
    _, _, ticket_id = (turn.inbound.choice_tag or "").partition(".")
    if not ticket_id.isdigit():
        return None
    return await ticket_of(turn.session, person_id=turn.person.id, ticket_id=int(ticket_id))


BUTTONS = {"feedback": feedback, "rating": rating}
