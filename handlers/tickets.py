"""My tickets: a worker lists their own tickets, adds information to an open one, or
withdraws it. Every lookup goes through the worker's own id."""

from __future__ import annotations

from db.models import OPEN_STATUSES, Ticket, TicketStatus
from db.tickets import ticket_of, tickets_of
from handlers.flow import FINISHED, MENU, STAY, Flow, Outcome, Turn
from handlers.mediation import set_status
from handlers.messages import Choice
from handlers.talk import message_of, pass_on

tickets = Flow("tickets", commands=["mytickets", "tickets"])


async def ask_list(turn: Turn) -> Outcome | None:
    found = await tickets_of(turn.session, person_id=turn.person.id)
    if not found:
        turn.say("tickets.none")
        return MENU
    turn.data["listed"] = {str(t.id): _label(turn, t) for t in found}
    turn.say("tickets.list.ask", count=len(found))
    return None


def _label(turn: Turn, ticket: Ticket) -> str:
    category = turn.t(f"categories.{ticket.category}") if ticket.category else ""
    return f"{ticket.reference} · {category} · {turn.t(f'statuses.{ticket.status}')}"


@tickets.step(
    "list",
    expects="choice",
    ask=ask_list,
    options=lambda turn: [Choice(key, label) for key, label in turn.data.get("listed", {}).items()],
)
async def pick(turn: Turn) -> Outcome:
    """Opens the chosen ticket."""
    turn.data["ticket_id"] = int(turn.choice)
    return "ticket"


async def _chosen(turn: Turn) -> Ticket | None:
    ticket_id = turn.data.get("ticket_id")
    if ticket_id is None:
        return None
    return await ticket_of(turn.session, person_id=turn.person.id, ticket_id=ticket_id)


async def ask_ticket(turn: Turn) -> Outcome | None:
    ticket = await _chosen(turn)
    if ticket is None:
        return "list"
    turn.data["open"] = ticket.status in OPEN_STATUSES
    turn.data["seen_status"] = ticket.status  # what the worker decides on
    turn.show(
        "ticket_detail.html.j2",
        ticket=ticket,
        category=turn.t(f"categories.{ticket.category}") if ticket.category else "",
        status=turn.t(f"statuses.{ticket.status}"),
    )
    return None


def ticket_options(turn: Turn) -> list[Choice]:
    if turn.data.get("open"):
        return [turn.option("add_info"), turn.option("withdraw")]
    return [turn.option("to_menu")]


@tickets.step("ticket", expects="choice", ask=ask_ticket, options=ticket_options)
async def ticket(turn: Turn) -> Outcome:
    """Adds information to the ticket or withdraws it."""
    if turn.choice == "to_menu":
        return MENU
    return "add" if turn.choice == "add_info" else "withdraw"


@tickets.step("add", expects="any", extra=("done",), max_chars=4000)
async def add(turn: Turn) -> Outcome:
    """Adds each text, photo, document or voice note to the ticket until "done"."""
    if turn.choice == "done":
        turn.say("tickets.add.done")
        return "ticket"
    ticket = await _chosen(turn)
    if ticket is None or ticket.status not in OPEN_STATUSES:
        turn.say("tickets.not_open")
        return MENU
    message = message_of(turn)
    if message is None:
        turn.say("tickets.add.unsupported")
        return STAY
    if not await pass_on(turn, ticket, message):  # it can no longer take anything
        turn.say("tickets.not_open")
        return MENU
    turn.say("tickets.add.received", reference=ticket.reference)
    return STAY


@tickets.step(
    "withdraw",
    expects="choice",
    options=lambda turn: [turn.option("withdraw_confirm"), turn.option("keep")],
)
async def withdraw(turn: Turn) -> Outcome:
    """Withdraws the ticket after the worker confirms, as they saw it: if a counsellor has
    changed it since (took it up, even at this very moment), says so and shows it again."""
    ticket = await _chosen(turn)
    if turn.choice == "keep" or ticket is None:
        return "ticket"
    if ticket.status not in OPEN_STATUSES:
        turn.say("tickets.not_open")
        return MENU
    notice = ("mediation.withdrawn", {})
    unchanged = ticket.status == turn.data.get("seen_status", ticket.status)
    if not (
        unchanged
        and await set_status(turn, ticket, TicketStatus.WITHDRAWN, actor="worker", notice=notice)
    ):
        status = turn.t(f"statuses.{ticket.status}")
        turn.say("tickets.changed_meanwhile", reference=ticket.reference, status=status)
        return "ticket"
    turn.say("tickets.withdrawn", reference=ticket.reference)
    return FINISHED
