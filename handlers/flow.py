"""What a handler sees and returns: the `Turn` it is given and the `Flow` its steps belong to.

A flow is an ordered list of steps. Each step asks one question (by default the text
`<flow>.<step>.ask`, with the step's choices) and handles the answer. The engine checks the
answer's shape before a step sees it (a choice from the list, text within its length), so
step functions hold only what is particular to them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlmodel.ext.asyncio.session import AsyncSession

from content.catalog import Catalog, Translator
from db.models import Person
from handlers.messages import Choice, Inbound, Outgoing, Reply

Expects = Literal["choice", "text", "media", "any"]


@dataclass(frozen=True, slots=True)
class Goto:
    """Leave the current step for another flow (or another step of this one)."""

    flow: str
    step: str | None = None  # None: the flow's first step that applies
    done: bool = False  # the flow is finished or cancelled: keep no draft of it
    answers: dict[str, Any] | None = None  # what the new flow starts with


class _Signal:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEXT = _Signal("NEXT")  # go on to the next step of the flow that applies and is unanswered
STAY = _Signal("STAY")  # keep waiting on this step; the handler has said what it had to
END = _Signal("END")  # the conversation is over (the person was forgotten): ask nothing
MENU = Goto("menu")  # leave for the main menu; a flow that keeps drafts keeps its answers
FINISHED = Goto("menu", done=True)  # the flow is complete: back to the menu, no draft

Outcome = _Signal | Goto | str


@dataclass
class Turn:
    """One inbound message, the person it came from, and what the handler needs to answer."""

    person: Person
    inbound: Inbound
    data: dict[str, Any]
    session: AsyncSession
    catalog: Catalog
    t: Translator
    now: datetime
    choice: str | None = None  # the matched choice key, on a choice step
    text: str | None = None  # the answer's text, on a text step
    editing: bool = False  # the person came from the review to change one answer
    replies: list[Reply] = field(default_factory=list)
    outgoing: list[Outgoing] = field(default_factory=list)  # to topics and other people

    def say(self, key: str, /, **variables: Any) -> None:
        self.replies.append(Reply(str(self.t(key, **variables))))

    def show(self, template: str, /, **variables: Any) -> None:
        """Says a Jinja2 template from content/templates (cards, summaries)."""
        self.replies.append(Reply(str(self.t.render(template, **variables))))

    def option(self, key: str, label_key: str | None = None, *, numbered: bool = True) -> Choice:
        """A choice labelled by the text `label_key` (default `choices.<key>`)."""
        label_key = label_key or f"choices.{key}"
        return Choice(
            key,
            str(self.t(label_key)),
            numbered,
            tuple(self.catalog.labels_in_every_language(label_key)),
        )


StepHandler = Callable[[Turn], Awaitable[Outcome]]
Options = Callable[[Turn], list[Choice]]
Condition = Callable[[Turn], bool]
Asker = Callable[[Turn], Awaitable["Outcome | None"]]  # an outcome instead: nothing to ask


@dataclass
class Step:
    name: str
    handle: StepHandler
    expects: Expects = "text"
    options: Options | None = None  # for "choice": the choices, numbered
    extra: tuple[str, ...] = ()  # unnumbered choices offered too, handled by the step (skip, done)
    max_chars: int | None = None
    when: Condition | None = None  # the step applies only when this holds
    answered: Callable[[dict[str, Any]], bool] | None = None
    ask: Asker | None = None  # a question that is more than a text and a list
    free: bool = False  # on a choice step: anything else is handed to the step (choice None)
    back: bool = True  # offer "back" and "cancel"


class Flow:
    def __init__(
        self, name: str, *, commands: Sequence[str] = (), keeps_draft: bool = False
    ) -> None:
        self.name = name
        self.commands = tuple(commands)
        self.keeps_draft = (
            keeps_draft  # leaving it keeps the answers for when the person comes back
        )
        self.steps: dict[str, Step] = {}

    def step(self, name: str, **options: Any) -> Callable[[StepHandler], StepHandler]:
        def register(handler: StepHandler) -> StepHandler:
            self.steps[name] = Step(name=name, handle=handler, **options)
            return handler

        return register

    def first_step(self, turn: Turn) -> str:
        return self.following(None, turn)

    def following(self, current: str | None, turn: Turn) -> str:
        """The next step that applies; when editing, the next one that is still unanswered."""
        names = list(self.steps)
        start = 0 if current is None else names.index(current) + 1
        for name in names[start:]:
            step = self.steps[name]
            if step.when is not None and not step.when(turn):
                continue
            if turn.editing and step.answered is not None and step.answered(turn.data):
                continue
            return name
        raise LookupError(f"flow {self.name} has no step after {current!r}")
