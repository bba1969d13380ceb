"""The main menu and the choice of language."""

from __future__ import annotations

from handlers.flow import Flow, Goto, Outcome, Turn
from handlers.guide import answer_question
from handlers.messages import Choice, Reply
from handlers.talk import write_to_counsellor

menu = Flow("menu")
language = Flow("language", commands=["language"])

MENU_ITEMS = ("complaint", "talk", "my_tickets", "legal_aid", "jobs", "guide", "language", "help")
DESTINATIONS = {
    "complaint": "complaint",
    "talk": "talk",
    "my_tickets": "tickets",
    "legal_aid": "legal_aid",
    "jobs": "jobs",
    "guide": "guide",
    "language": "language",
}


def menu_options(turn: Turn) -> list[Choice]:
    return [turn.option(item, f"menu.{item}") for item in MENU_ITEMS]


@menu.step("main", expects="choice", options=menu_options, free=True)
async def main(turn: Turn) -> Outcome:
    """Opens the chosen service; help is answered here and the menu shown again; anything
    else is a message for the worker's counsellor, or, when there is none to write to, a
    question for the city guide."""
    if turn.choice is None:
        return await write_to_counsellor(turn, otherwise=answer_question)
    if turn.choice == "help":
        turn.say("help.text")
        return "main"
    return Goto(DESTINATIONS[turn.choice])


def language_options(turn: Turn) -> list[Choice]:
    """Each language is offered in its own words."""
    catalog = turn.catalog
    choices = []
    for lang in catalog.languages:
        name = str(catalog.translator(lang)("language.name"))
        choices.append(Choice(lang, name, True, (name, lang)))
    return choices


@language.step("choose", expects="choice", options=language_options, back=False)
async def choose(turn: Turn) -> Outcome:
    """Stores the language and answers in it from here on; the first time, says that the
    centre's notices will come and how to stop them."""
    first = turn.person.language is None
    turn.person.language = turn.choice
    turn.t = turn.catalog.translator(turn.choice)
    if first:  # one message: a new worker's first answer gets no more replies for it
        turn.replies.append(Reply(f"{turn.t('language.saved')}\n\n{turn.t('notices.subscribed')}"))
    else:
        turn.say("language.saved")
    return Goto("menu")
