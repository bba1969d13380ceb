"""The engine: one turn per inbound message, in one database transaction.

It loads the person and where they are, does what every turn needs (commands that work
anywhere, back and cancel, old buttons, the shape of the answer, floods), hands the answer to
the step's handler, asks the next question and saves the state, all before anything is sent.
Channels call `handle`; handlers never see a channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from markupsafe import escape
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import failed_turns
from bot.delivery.items import enqueue, to_outgoing, to_person
from bot.delivery.sender import Queued
from bot.desk import StaffDesk
from bot.flood import Flood, FloodGate
from bot.log_redaction import person_tag
from bot.matching import match_choice
from bot.turn_results import Hold, TurnResult
from content.catalog import Catalog
from db import conversations, inbox, outbox, people
from db.conversations import SavedConversation
from db.models import Person, utcnow
from db.outbox import chat_lane
from db.session import erase_traces
from handlers.flow import END, FINISHED, NEXT, STAY, Flow, Goto, Outcome, Step, Turn
from handlers.messages import Choice, Inbound, InboundKind, Reply
from handlers.notices import rejoin

log = logging.getLogger(__name__)

# Commands the engine answers itself; every other command belongs to the flow that lists it.
HELP, CANCEL, START, MENU_COMMAND = "help", "cancel", "start", "menu"
BACK_KEY, CANCEL_KEY = "back", "cancel"
MAX_REDIRECTS = 5


@dataclass
class State:
    """Where a person is: the flow, the step, the answers so far and the way back."""

    flow: str
    step: str
    answers: dict[str, Any] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    editing: bool = False
    drafts: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"{self.flow}.{self.step}"

    @classmethod
    def of(cls, saved: SavedConversation | None, person: Person) -> State:
        if saved is None:
            return cls("menu", "main") if person.language else cls("language", "choose")
        data = saved.data
        return cls(
            saved.flow,
            saved.step,
            data.get("answers", {}),
            list(saved.history),
            bool(data.get("editing")),
            data.get("drafts", {}),
        )

    def data(self) -> dict[str, Any]:
        return {"answers": self.answers, "editing": self.editing, "drafts": self.drafts}


class Engine:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        flows: dict[str, Flow],
        flood: FloodGate,
        clock: Callable[[], datetime] = utcnow,
        buttons: dict[str, Callable[[Turn], Awaitable[None]]] | None = None,
        desk: StaffDesk | None = None,
        on_crisis: Callable[[Turn, list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.flows = flows
        self.flood = flood
        self.clock = clock
        self.commands = {command: name for name, flow in flows.items() for command in flow.commands}
        self.buttons = buttons or {}  # by tag prefix: buttons valid whatever the question
        self.desk = desk  # updates from the staff group go there
        self.on_crisis = on_crisis  # crisis words in any message, before anything else
        self._holding: set[tuple[str, str]] = set()  # people whose replies a flood holds

    async def handle(self, inbound: Inbound, *, receipt: int | None = None) -> TurnResult:
        """Runs one turn; `receipt` is the inbox row to mark handled in the same transaction."""
        if inbound.origin == "staff":
            if self.desk is None:
                return TurnResult([])
            return await self.desk.handle(inbound, receipt=receipt)
        flood = self.flood.check(f"{inbound.channel}:{inbound.person_id}", time.monotonic())
        try:
            async with self.sessions() as session, session.begin():
                turn, state, saved = await self._begin(session, inbound)
                await self._route(turn, state)
                erased = turn.person.forgotten_at is not None
                if not erased:
                    await conversations.save_conversation(
                        session,
                        person_id=turn.person.id,
                        is_new=saved is None,
                        flow=state.flow,
                        step=state.step,
                        data=state.data(),
                        history=state.history,
                        now=turn.now,
                    )
                    if turn.person.consented_at is not None:  # names only once consent covers them
                        people.note_names(
                            turn.person,
                            display_name=inbound.display_name,
                            username=inbound.username,
                        )
                queued, hold = await self._queue_sends(session, turn, flood, erased, receipt)
                language = turn.person.language
        except inbox.AlreadyHandled:  # by another process (bot/cluster.py): nothing to do
            log.info("update %s was handled by another process", receipt)
            return TurnResult([])
        except Exception:
            log.exception("turn failed for %s", person_tag(inbound.person_id))
            return await self._failed(inbound, receipt)
        return TurnResult([], queued=queued, hold=hold, erased=erased, language=language)

    async def _queue_sends(
        self, session: AsyncSession, turn: Turn, flood: Flood, erased: bool, receipt: int | None
    ) -> tuple[list[Queued], Hold | None]:
        """Writes what the turn sends into the outbox and marks its update done, in the
        turn's transaction. A flood holds the replies (never a crisis reply) until it has
        been quiet for a while; the first calm turn after it lets them go first."""
        inbound, now = turn.inbound, utcnow()  # the outbox runs on the real clock
        channel, person = inbound.channel, inbound.person_id
        lane = chat_lane(channel, person)
        hold = None
        if flood is Flood.CALM:
            items = to_person(channel, person, turn.replies)
            if (channel, person) in self._holding:
                self._holding.discard((channel, person))
                if await outbox.release_lane(session, lane=lane, now=now):
                    hold = Hold(lane, None)
        else:
            until = now + timedelta(seconds=self.flood.seconds)
            await outbox.hold_lane(session, lane=lane, until=until)
            items = to_person(channel, person, turn.replies, held_until=until)
            if flood is Flood.STARTED:
                items += to_person(channel, person, [Reply(str(turn.t("common.slow_down")))])
            self._holding.add((channel, person))
            hold = Hold(lane, until)
        if erased and items:
            items[-1].body["erase_after"] = True  # once it is out, the log is emptied too
        items += to_outgoing(turn.outgoing)
        queued = await enqueue(session, items, now=now)
        if receipt is not None:
            await inbox.finish_turn(session, row_id=receipt)
        return queued, hold

    async def erase_traces(self) -> None:
        """After a person was forgotten: what the database keeps outside its tables goes too."""
        await erase_traces(self.sessions.kw["bind"])

    async def _begin(
        self, session: AsyncSession, inbound: Inbound
    ) -> tuple[Turn, State, SavedConversation | None]:
        person, saved = await people.find_person_and_conversation(
            session, channel=inbound.channel, external_id=inbound.person_id
        )
        if person is None:
            person = await people.add_person(
                session, channel=inbound.channel, external_id=inbound.person_id
            )
        if person.blocked_at is not None:  # they wrote: they have let the bot back in
            person.blocked_at = None
        state = State.of(saved, person)
        language = person.language or self.catalog.language_for_hint(inbound.language_hint)
        turn = Turn(
            person=person,
            inbound=inbound,
            data=state.answers,
            session=session,
            catalog=self.catalog,
            t=self.catalog.translator(language),
            now=self.clock(),
            editing=state.editing,
        )
        return turn, state, saved

    async def _failed(self, inbound: Inbound, receipt: int | None) -> TurnResult:
        """Tries the turn again after a pause, here in its lane so the person's later updates
        wait; once given up (bot/failed_turns.py) the update is kept for an operator, the
        staff alerted, and the person told, in the language we can guess."""
        if await failed_turns.try_again(self.sessions, receipt):
            return await self.handle(inbound, receipt=receipt)
        t = self.catalog.translator(self.catalog.language_for_hint(inbound.language_hint))
        sorry = [Reply(str(t("common.sorry")))]
        items = to_person(inbound.channel, inbound.person_id, sorry)
        return await failed_turns.apologise(self.sessions, items, sorry)

    # -- routing ---------------------------------------------------------------------------

    async def _route(self, turn: Turn, state: State) -> None:
        """The crisis check on what the person wrote comes first (the emergency numbers lead
        the replies, the staff are alerted); then the turn's own work."""
        if self.on_crisis is not None and turn.inbound.text:
            words = self.catalog.crisis_words.find(turn.inbound.text)
            if words:
                await self.on_crisis(turn, words)
        await self._answer(turn, state)

    async def _answer(self, turn: Turn, state: State) -> None:
        inbound = turn.inbound
        if inbound.kind is InboundKind.EDIT:
            turn.say("common.edit_not_read")
            return
        if inbound.kind is InboundKind.COMMAND:
            await self._command(turn, state, inbound.command or "")
            return
        button_kind = (inbound.choice_tag or "").partition(".")[0]
        if inbound.kind is InboundKind.CHOICE and button_kind in self.buttons:
            await self.buttons[button_kind](turn)  # buttons that answer whatever is asked
            return
        if inbound.kind is InboundKind.CHOICE and inbound.choice_tag != state.tag:
            turn.say("common.old_button")
            await self._ask_here(turn, state)
            return
        if turn.person.language is None and state.flow != "language":
            await self._go(turn, state, Goto("language"))
            return
        step = self.flows[state.flow].steps[state.step]
        picked = self._navigation_picked(turn, state, step)
        if picked == BACK_KEY:
            await self._back(turn, state)
        elif picked == CANCEL_KEY:
            await self._cancel(turn, state)
        elif self._accept(turn, state, step):
            await self._go(turn, state, await step.handle(turn))
        else:
            await self._ask_here(turn, state)

    async def _command(self, turn: Turn, state: State, command: str) -> None:
        if command == HELP:
            turn.say("help.text")
            await self._ask_here(turn, state)
        elif turn.person.language is None:
            await self._go(turn, state, Goto("language"))
        elif command == START:
            rejoin(turn, "common.welcome" if state.flow == "menu" else "common.welcome_back")
            await self._ask_here(turn, state)
        elif command == MENU_COMMAND:
            await self._go(turn, state, Goto("menu"))
        elif command == CANCEL:
            await self._cancel(turn, state)
        elif command in self.commands:
            await self._go(turn, state, Goto(self.commands[command]))
        else:
            turn.say("common.unknown_command")
            await self._ask_here(turn, state)

    def _navigation(self, turn: Turn, state: State, step: Step) -> list[Choice]:
        if not step.back or state.flow == "menu":
            return []
        return [turn.option(BACK_KEY, numbered=False), turn.option(CANCEL_KEY, numbered=False)]

    def _navigation_picked(self, turn: Turn, state: State, step: Step) -> str | None:
        inbound = turn.inbound
        if inbound.kind is InboundKind.CHOICE:
            return inbound.choice if inbound.choice in (BACK_KEY, CANCEL_KEY) else None
        typed = _typed(inbound, step)
        if typed:
            nav = self._navigation(turn, state, step)
            found = match_choice(typed, nav, exact=True)
            return found.key if found else None
        return None

    def _accept(self, turn: Turn, state: State, step: Step) -> bool:
        """Checks the answer has the shape the step asks for; if not, says why and returns False."""
        inbound = turn.inbound
        extras = [turn.option(key, numbered=False) for key in step.extra]
        if inbound.kind is InboundKind.CHOICE:
            offered = (step.options(turn) if step.options else []) + extras
            if inbound.choice not in {c.key for c in offered}:
                turn.say("common.old_button")
                return False
            turn.choice = inbound.choice
            return True
        typed = _typed(inbound, step)
        if step.expects == "choice":
            found = None
            if typed:
                found = match_choice(typed, step.options(turn) + extras)
            if found is not None:
                turn.choice = found.key
                return True
            if step.free:
                turn.text = (inbound.text or "").strip() or None
                return True
            turn.say("common.not_a_choice")
            return False
        if typed is not None:
            found = match_choice(typed, extras, exact=True)
            if found is not None:
                turn.choice = found.key
                return True
            text = typed.strip()
            if not text:
                turn.say("common.text_expected")
                return False
            if step.max_chars is not None and len(text) > step.max_chars:
                turn.say("common.too_long", length=len(text), limit=step.max_chars)
                return False
            turn.text = text
            return True
        if step.expects == "text":
            turn.say("common.text_expected")
            return False
        return True  # media, stickers, locations: the step decides

    # -- moving between steps ----------------------------------------------------------------

    async def _go(self, turn: Turn, state: State, outcome: Outcome) -> None:
        state.editing = turn.editing  # a step may have started or ended editing from the review
        if outcome is END:
            return
        if outcome is STAY:
            self._offer_choices_again(turn, state)
            return
        flow = self.flows[state.flow]
        if outcome is NEXT:
            outcome = flow.following(state.step, turn)
        if isinstance(outcome, str):
            if outcome != state.step:
                state.history.append(state.step)
                state.step = outcome
        else:
            self._enter(turn, state, outcome)
        await self._ask_here(turn, state)

    async def _ask_here(self, turn: Turn, state: State) -> None:
        """Asks the current step; an asker may answer "nothing to ask here, go there instead",
        which is followed, but not forever."""
        outcome = await self._ask(turn, state)
        for _ in range(MAX_REDIRECTS):
            if outcome is None or outcome is STAY:
                return
            flow = self.flows[state.flow]
            if outcome is NEXT:
                outcome = flow.following(state.step, turn)
            if isinstance(outcome, str):
                state.step = outcome
            else:
                self._enter(turn, state, outcome)
            outcome = await self._ask(turn, state)
        raise RuntimeError(f"{state.tag}: too many redirects")

    def _enter(self, turn: Turn, state: State, target: Goto) -> None:
        """Switches flow; a flow that keeps drafts keeps the answers of a person who leaves it."""
        leaving = self.flows[state.flow]
        if target.done:
            state.drafts.pop(state.flow, None)
        elif leaving.keeps_draft and state.answers and target.flow != state.flow:
            state.drafts[state.flow] = {
                "step": state.step,
                "answers": state.answers,
                "history": state.history,
                "editing": state.editing,
            }
        draft = state.drafts.pop(target.flow, None) if target.step is None else None
        state.flow = target.flow
        if draft:
            state.step, state.answers = draft["step"], draft["answers"]
            state.history, state.editing = draft["history"], draft["editing"]
            turn.say("common.draft_resumed")
        else:
            state.answers, state.history, state.editing = dict(target.answers or {}), [], False
        turn.data, turn.editing = state.answers, state.editing
        if not draft:
            state.step = target.step or self.flows[target.flow].first_step(turn)

    async def _back(self, turn: Turn, state: State) -> None:
        if not state.history:
            await self._go(turn, state, Goto("menu"))
            return
        state.step = state.history.pop()
        await self._ask_here(turn, state)

    async def _cancel(self, turn: Turn, state: State) -> None:
        if state.flow == "menu":
            turn.say("common.nothing_to_cancel")
            await self._ask_here(turn, state)
            return
        turn.say("common.cancelled")
        await self._go(turn, state, FINISHED)

    def _offer_choices_again(self, turn: Turn, state: State) -> None:
        """A step that keeps waiting (more of the story, a wrong amount) shows its buttons again
        under its last message, so the person need not scroll back for them."""
        if state.flow not in self.flows or not turn.replies or turn.replies[-1].choices:
            return
        step = self.flows[state.flow].steps.get(state.step)
        if step is None:
            return
        turn.replies[-1].choices = self._choices(turn, state, step)
        turn.replies[-1].choice_tag = state.tag

    def _choices(self, turn: Turn, state: State, step: Step) -> list[Choice]:
        numbered = step.options(turn) if step.options else []
        extras = [turn.option(key, numbered=False) for key in step.extra]
        return numbered + extras + self._navigation(turn, state, step)

    async def _ask(self, turn: Turn, state: State) -> Outcome | None:
        """Says the step's question with its choices; or returns where to go instead."""
        flow = self.flows[state.flow]
        step = flow.steps[state.step]
        if step.ask is not None:
            before = len(turn.replies)
            outcome = await step.ask(turn)
            if outcome is not None:
                return outcome
            if len(turn.replies) == before:
                raise RuntimeError(f"{state.tag}: the asker said nothing")
        else:
            turn.say(f"{flow.name}.{step.name}.ask")
        question = turn.replies[-1]
        question.choices = self._choices(turn, state, step)
        question.choice_tag = state.tag
        numbered = [c for c in question.choices if c.numbered]
        if numbered:
            listing = "\n".join(f"{n}. {c.label}" for n, c in enumerate(numbered, start=1))
            question.text = f"{question.text}\n\n{escape(listing)}"
        return None


def _typed(inbound: Inbound, step: Step) -> str | None:
    """What the person said as words: typed text, or where the step asks for text or a
    choice, a voice note's transcript (WeChat's speech recognition gives one) or a shared
    place's name and address (WeChat's Label: "…昆山市玉山镇…" answers the district). A step
    that takes anything (the story, the evidence) gets the voice note or place itself."""
    if inbound.kind is InboundKind.TEXT:
        return inbound.text or ""
    if not inbound.text or step.expects == "any":
        return None
    spoken = inbound.kind is InboundKind.MEDIA and inbound.media and inbound.media.kind == "voice"
    if spoken or inbound.kind is InboundKind.LOCATION:
        return inbound.text
    return None
