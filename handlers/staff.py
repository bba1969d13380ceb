"""From the staff group: counsellors answer in a ticket's topic, keep notes, and act on the
ticket card's buttons. Only registered staff may act; anyone else is refused and logged.
Refer, resolve and close belong to the ticket's holder or a coordinator/admin; a button
pressed as the worker changed the ticket is answered with what happened."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from content.catalog import Catalog, Translator
from content.legal_aid import directory
from db import outbox
from db import staff as registry
from db.models import (
    OPEN_STATUSES,
    Direction,
    Person,
    Staff,
    StaffRole,
    Ticket,
    TicketStatus,
)
from db.outbox import Rates
from db.tickets import add_ticket_message, lock_ticket
from handlers.legal_aid import details_of, entry_name
from handlers.mediation import relay_from_staff, set_status, tell_worker
from handlers.messages import Choice, Inbound, InboundKind, Outgoing, Reply
from handlers.staff_broadcast import (
    COMPOSE_TAG,
    PROGRESS_TAG,
    broadcast_command,
    compose,
    draft_for,
    progress_button,
)
from handlers.staff_jobs import jobs_command
from handlers.staff_stats import stats_command

log = logging.getLogger(__name__)
NOTE_PREFIX = "!"


@dataclass
class StaffTurn:
    """One update from the staff group: who wrote, about which ticket, and what to answer."""

    inbound: Inbound
    staff: Staff | None
    ticket: Ticket | None
    worker: Person | None
    session: AsyncSession
    catalog: Catalog
    t: Translator
    now: datetime
    replies: list[Reply] = field(default_factory=list)  # into the topic where they wrote
    outgoing: list[Outgoing] = field(default_factory=list)
    alert: str | None = None  # shown to whoever pressed a button
    paces: Rates | None = None  # the sender's paces, for /status's estimates
    sla: timedelta | None = None  # HOTLINE_SLA_MINUTES, for /stats (None: its default)

    def say(self, key: str, /, **variables: Any) -> None:
        self.replies.append(Reply(str(self.t(key, **variables))))


async def from_staff(turn: StaffTurn) -> None:
    inbound = turn.inbound
    if turn.staff is None:  # bot/desk.py logs the refusal
        if inbound.kind is InboundKind.CHOICE:
            turn.alert = str(turn.t("staff.not_registered"))
        elif turn.ticket is not None or inbound.kind is InboundKind.COMMAND:
            turn.say("staff.not_registered")
        return
    if inbound.kind is InboundKind.CHOICE:
        await _button(turn)
    elif inbound.kind is InboundKind.COMMAND and inbound.command == "staff":
        await staff_command(turn)
    elif inbound.kind is InboundKind.COMMAND and inbound.command == "status":
        await status_command(turn)
    elif inbound.kind is InboundKind.COMMAND and inbound.command == "jobs":
        await jobs_command(turn)
    elif inbound.kind is InboundKind.COMMAND and inbound.command == "stats":
        await stats_command(turn)
    elif inbound.kind is InboundKind.COMMAND and inbound.command == "broadcast":
        await broadcast_command(turn)
    elif inbound.kind is not InboundKind.EDIT and (draft := await draft_for(turn)) is not None:
        await compose(turn, draft)  # the coordinator is composing a notice here
    elif turn.ticket is None or inbound.kind is InboundKind.EDIT:
        return  # the group's general chat, or an edit: not for a worker
    elif inbound.kind is InboundKind.COMMAND and inbound.command == "note":
        await note(turn, inbound.text or "")
    elif inbound.text and inbound.text.startswith(NOTE_PREFIX) and inbound.media is None:
        await note(turn, inbound.text[len(NOTE_PREFIX) :].strip())
    elif inbound.kind in (InboundKind.TEXT, InboundKind.MEDIA):
        await answer_worker(turn)


async def note(turn: StaffTurn, text: str) -> None:
    """Keeps an internal note in the transcript; it never reaches the worker."""
    await add_ticket_message(
        turn.session,
        ticket=turn.ticket,
        direction=Direction.NOTE,
        author=turn.staff.alias,
        now=turn.now,
        text=text,
    )
    turn.say("staff.note_kept")


async def answer_worker(turn: StaffTurn) -> None:
    """Sends the counsellor's message to the worker; the ticket now waits for the worker."""
    ticket = turn.ticket
    await lock_ticket(turn.session, ticket=ticket)  # the worker may be withdrawing it now
    if ticket.status == TicketStatus.CLAIMED:
        await set_status(turn, ticket, TicketStatus.WAITING, actor=turn.staff.alias)
    if ticket.status not in OPEN_STATUSES:
        turn.replies.append(Reply(await _what_happened(turn)))
        return
    await relay_from_staff(turn, ticket, turn.worker, turn.staff, turn.inbound)


async def _button(turn: StaffTurn) -> None:
    kind, _, _ = (turn.inbound.choice_tag or "").partition(".")
    if kind == PROGRESS_TAG:
        await progress_button(turn)
        return
    if kind == COMPOSE_TAG:
        draft = await draft_for(turn)
        if draft is None or turn.inbound.choice_tag != f"{COMPOSE_TAG}.{draft.id}":
            turn.alert = str(turn.t("common.old_button"))
            return
        await compose(turn, draft)
        return
    if turn.ticket is None:
        turn.alert = str(turn.t("staff.no_ticket"))
        return
    closable = turn.ticket.status not in (TicketStatus.CLOSED, TicketStatus.WITHDRAWN)
    if turn.inbound.choice == "close" and kind == "ticket" and closable:
        await close(turn)  # a resolved or referred case is closed when the counsellor says so
        return
    if turn.ticket.status not in OPEN_STATUSES:
        turn.alert = await _what_happened(turn)
        return
    if kind == "refer":
        await refer_to(turn, turn.inbound.choice or "")
        return
    actions = {"claim": claim, "refer": refer, "resolve": resolve, "close": close}
    action = actions.get(turn.inbound.choice or "")
    if action is not None:
        await action(turn)


async def _what_happened(turn: StaffTurn) -> str:
    """Why nothing was done: the ticket as it is now (another turn may just have changed it)."""
    ticket = turn.ticket
    if ticket.status == TicketStatus.WITHDRAWN:
        return str(turn.t("staff.worker_withdrew"))
    status = turn.t(f"statuses.{ticket.status}")
    if ticket.status not in OPEN_STATUSES:
        return str(turn.t("staff.ticket_ended", status=status))
    if ticket.assignee_id is not None and ticket.assignee_id != turn.staff.id:
        holder = await turn.session.get(Staff, ticket.assignee_id)
        return str(turn.t("staff.already_claimed", alias=holder.alias if holder else "?"))
    return str(turn.t("staff.changed_meanwhile", status=status))


async def _may_decide(turn: StaffTurn) -> bool:
    """Refer, resolve and close are for the counsellor holding the ticket, or a coordinator
    or admin; an unclaimed ticket must be claimed first (coordinators and admins may close
    one, e.g. a duplicate or spam). Anyone else gets a pop-up saying who holds it."""
    ticket, staff = turn.ticket, turn.staff
    if staff.role in (StaffRole.COORDINATOR, StaffRole.ADMIN) or ticket.assignee_id == staff.id:
        return True
    if ticket.assignee_id is None:
        turn.alert = str(turn.t("staff.claim_first"))
    else:
        holder = await turn.session.get(Staff, ticket.assignee_id)
        turn.alert = str(turn.t("staff.held_by", alias=holder.alias if holder else "?"))
    return False


async def claim(turn: StaffTurn) -> None:
    """Assigns the ticket to whoever pressed Claim; a second counsellor is told who has it,
    and one who pressed as the worker withdrew is told that."""
    ticket, staff = turn.ticket, turn.staff
    if ticket.assignee_id is not None and ticket.assignee_id != staff.id:
        holder = await turn.session.get(Staff, ticket.assignee_id)
        turn.alert = str(turn.t("staff.already_claimed", alias=holder.alias if holder else "?"))
        return
    if ticket.assignee_id == staff.id:
        turn.alert = str(turn.t("staff.already_yours"))
        return
    notice = ("staff.claimed", {"alias": staff.alias})
    claimed = await set_status(
        turn, ticket, TicketStatus.CLAIMED, actor=staff.alias, notice=notice, assignee_id=staff.id
    )
    if not claimed:
        turn.alert = await _what_happened(turn)
        return
    tell_worker(turn, ticket, turn.worker, "mediation.worker_claimed", alias=staff.alias)


async def refer(turn: StaffTurn) -> None:
    """Offers the directory's referable places (content/legal_aid.yaml)."""
    if not await _may_decide(turn):
        return
    choices = [
        Choice(entry.key, str(entry_name(turn.t, entry)), numbered=False)
        for entry in directory(turn.catalog.folder).referable
    ]
    tag = f"refer.{turn.ticket.id}"
    turn.replies.append(Reply(str(turn.t("staff.refer_to")), choices, choice_tag=tag))


async def refer_to(turn: StaffTurn, destination: str) -> None:
    """Refers the ticket; the worker receives the place's details from the directory, in
    their language."""
    entry = directory(turn.catalog.folder).get(destination)
    if entry is None or not entry.referable:
        turn.alert = str(turn.t("staff.no_ticket"))
        return
    if not await _may_decide(turn):
        return
    ticket = turn.ticket
    notice = ("staff.referred", {"alias": turn.staff.alias, "name": entry_name(turn.t, entry)})
    referred = await set_status(
        turn,
        ticket,
        TicketStatus.REFERRED,
        actor=turn.staff.alias,
        notice=notice,
        referred_to=destination,
    )
    if not referred:
        turn.alert = await _what_happened(turn)
        return
    worker_t = turn.catalog.translator(ticket.language)
    tell_worker(
        turn,
        ticket,
        turn.worker,
        "mediation.worker_referred",
        name=entry_name(worker_t, entry),
        details=details_of(worker_t, entry),
    )


async def resolve(turn: StaffTurn) -> None:
    """Marks the ticket resolved and asks the worker whether the problem was solved; each
    resolution asks anew, so an earlier answer is cleared with it."""
    if not await _may_decide(turn):
        return
    ticket = turn.ticket
    notice = ("staff.resolved", {"alias": turn.staff.alias})
    resolved = await set_status(
        turn,
        ticket,
        TicketStatus.RESOLVED,
        actor=turn.staff.alias,
        notice=notice,
        solved=None,
        rating=None,
    )
    if not resolved:
        turn.alert = await _what_happened(turn)
        return
    worker_t = turn.catalog.translator(ticket.language)
    choices = [
        Choice(key, str(worker_t(f"choices.{key}")), numbered=False)
        for key in ("solved", "not_solved")
    ]
    tell_worker(
        turn,
        ticket,
        turn.worker,
        "mediation.worker_resolved",
        choices=choices,
        tag=f"feedback.{ticket.id}",
    )


async def close(turn: StaffTurn) -> None:
    """Closes the ticket and its topic, and tells the worker."""
    if not await _may_decide(turn):
        return
    ticket = turn.ticket
    notice = ("staff.closed", {"alias": turn.staff.alias})
    if not await set_status(
        turn, ticket, TicketStatus.CLOSED, actor=turn.staff.alias, notice=notice
    ):
        turn.alert = await _what_happened(turn)
        return
    tell_worker(turn, ticket, turn.worker, "mediation.worker_closed", days=turn.catalog.reopen_days)


async def staff_command(turn: StaffTurn) -> None:
    """/staff list | add ID ROLE ALIAS | remove ID, for admins, in the group."""
    if turn.staff.role != StaffRole.ADMIN:
        turn.say("staff.admins_only")
        return
    words = (turn.inbound.text or "list").split(maxsplit=3)
    action = words[0].lower()
    if action == "add" and len(words) == 4 and words[1].isdigit() and words[2] in list(StaffRole):
        member, _ = await registry.register_staff(
            turn.session,
            channel=turn.inbound.channel,
            external_id=words[1],
            role=words[2],
            alias=" ".join(words[3].split())[:100],
        )
        turn.say("staff.added", alias=member.alias, role=member.role)
    elif action == "remove" and len(words) == 2 and words[1].isdigit():
        removed = await registry.remove_staff(
            turn.session, channel=turn.inbound.channel, external_id=words[1]
        )
        turn.say("staff.removed" if removed else "staff.unknown", id=words[1])
    elif action == "list":
        members = await registry.all_staff(turn.session, channel=turn.inbound.channel)
        turn.replies.append(Reply(str(turn.t.render("staff_list.html.j2", members=members))))
    else:
        turn.say("staff.usage")


async def status_command(turn: StaffTurn) -> None:
    """/status, for any staff member anywhere in the group: what waits to be sent, per
    destination class, and when it should be out (as `hotline status` prints it)."""
    if turn.paces is None:
        return  # a desk built without the sender's paces (never in a running hotline)
    report = await outbox.report(turn.session, rates=turn.paces, now=turn.now)
    t = turn.t
    lines = [str(t("staff.queue.title"))]
    for row in report.classes:
        name = t(f"staff.queue.{row.pace}")
        if not row.waiting:
            lines.append(str(t("staff.queue.idle", name=name)))
            continue
        lines.append(
            str(
                t(
                    "staff.queue.line",
                    name=name,
                    waiting=row.waiting,
                    age=_duration(t, row.oldest_age or timedelta()),
                    drain=_duration(t, row.drain, up=True),
                )
            )
        )
    lines.append(str(t("staff.queue.failed", count=report.failed_recently)))
    turn.replies.append(Reply("\n".join(lines)))


def _duration(t: Translator, delta: timedelta, *, up: bool = False) -> str:
    """Seconds under a minute, minutes under an hour, then hours and minutes: whole units,
    rounded down for an age, up for an estimate."""
    seconds = math.ceil(delta.total_seconds()) if up else int(delta.total_seconds())
    if seconds < 60:
        return str(t("staff.queue.seconds", n=seconds))
    minutes = -(-seconds // 60) if up else seconds // 60
    if minutes < 60:
        return str(t("staff.queue.minutes", n=minutes))
    return str(t("staff.queue.hours", hours=minutes // 60, minutes=minutes % 60))
