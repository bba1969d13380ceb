"""/forget: erase a worker's personal details and evidence after they confirm."""

from __future__ import annotations

from db.models import OPEN_STATUSES, TicketStatus
from db.people import forget_person
from db.tickets import change_status, lock_ticket, tickets_of
from handlers.flow import END, FINISHED, Flow, Outcome, Turn
from handlers.mediation import queue

privacy = Flow("privacy", commands=["forget"])


@privacy.step(
    "forget",
    expects="choice",
    options=lambda turn: [turn.option("forget_confirm"), turn.option("keep_data")],
)
async def forget(turn: Turn) -> Outcome:
    """Erases the person's details on confirmation; the conversation ends with them."""
    if turn.choice == "keep_data":
        turn.say("privacy.kept")
        return FINISHED
    for ticket in await tickets_of(turn.session, person_id=turn.person.id):
        if ticket.status in OPEN_STATUSES:  # held to the commit: a Claim now waits, then sees
            await lock_ticket(turn.session, ticket=ticket)  # it closed (or was just before)
        if ticket.status in OPEN_STATUSES:  # nobody can follow it up any more
            await change_status(
                turn.session,
                ticket=ticket,
                to_status=TicketStatus.CLOSED,
                actor="worker",
                now=turn.now,
            )
        if ticket.topic_id is not None:  # the copies of what they sent, in the staff group
            queue(turn, ticket, action="topic", to="topic", topic_state="delete")
    await forget_person(turn.session, person=turn.person, now=turn.now)
    turn.say("privacy.forgotten")
    return END  # the next message starts afresh, as from a new person
