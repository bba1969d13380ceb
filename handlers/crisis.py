"""Crisis words (self-harm, suicide, violence; listed per language in content/crisis.yaml)
in any message at any point: the worker gets emergency numbers and a calm word first, and
the staff group an urgent alert on the worker's open ticket, or on a new urgent one."""

from __future__ import annotations

from db.tickets import tickets_to_write_to
from handlers.flow import Turn
from handlers.mediation import notice_in_topic, relay_from_worker
from handlers.messages import Reply
from handlers.talk import message_of, open_talk_ticket


async def respond_to_crisis(turn: Turn, words: list[str]) -> None:
    """Runs before the turn's own work, which then goes on as usual. The reply is urgent:
    a flood never holds it back. The message is relayed here, so the turn does not relay
    it again (see handlers.mediation.relayed_already)."""
    turn.replies.append(Reply(str(turn.t("crisis.reply")), urgent=True))
    open_now = await tickets_to_write_to(
        turn.session, person_id=turn.person.id, ended_since=turn.now
    )
    ticket = open_now[0] if open_now else await open_talk_ticket(turn, urgent=True)
    ticket.urgent = True
    notice_in_topic(turn, ticket, "crisis.alert", words=", ".join(words))
    message = message_of(turn)
    if message is not None:
        await relay_from_worker(turn, ticket, turn.person, message)
