"""Crisis words (self-harm, suicide, violence; listed per language in content/crisis.yaml)
in any message at any point: the worker gets emergency numbers and a calm word at once, and
the staff group an urgent alert on the worker's open ticket, or on a new urgent one."""

from __future__ import annotations

from bot.messages import Reply
from db.models import TicketKind
from db.tickets import open_ticket, tickets_to_write_to
from handlers.flow import Turn
from handlers.mediation import notice_in_topic, post_card, relay_from_worker


async def respond_to_crisis(turn: Turn, words: list[str]) -> None:
    """Runs before the turn's own work, which then goes on as usual."""
    from handlers.talk import message_of

    turn.replies.append(Reply(str(turn.t("crisis.reply")), urgent=True))
    open_now = await tickets_to_write_to(
        turn.session, person_id=turn.person.id, ended_since=turn.now
    )
    if open_now:
        ticket = open_now[0]
    else:
        ticket, _ = await open_ticket(
            turn.session,
            person_id=turn.person.id,
            kind=TicketKind.TALK,
            language=turn.t.language,
            prefix=turn.catalog.ticket_prefix,
            now=turn.now,
            fields={"urgent": True, "share_identity": False},
            evidence=[],
            author="worker",
        )
        post_card(turn.outgoing, turn.catalog, ticket, turn.person, [])
    ticket.urgent = True
    notice_in_topic(turn.outgoing, turn.catalog, ticket, "crisis.alert", words=", ".join(words))
    message = message_of(turn)
    if message is not None:
        await relay_from_worker(
            turn.session,
            turn.outgoing,
            turn.catalog,
            ticket=ticket,
            person=turn.person,
            message=message,
            now=turn.now,
        )
        turn.relayed = True
