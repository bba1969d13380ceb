"""The city guide: a tree of topics a worker browses by number, the answer to a typed question
(from here or from the main menu), and the social-insurance calculator. Every answer ends
with "This didn't help", which opens a conversation with a person, as the menu's "talk" does.

The sections and the search live in content/ (content/guide.py, content/guide_search.py);
the steps here only choose what to show. A typed question is never stored: only the keys of
the sections it found are kept between turns.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from markupsafe import escape

from content.guide import Guide, Section, guide_of
from content.guide_search import GuideSearch, search_of
from content.social_insurance import Rates, calculate, rates_of, read_wage
from handlers.flow import MENU, STAY, Flow, Goto, Outcome, Turn
from handlers.mediation import relayed_already
from handlers.messages import Choice, Reply

guide = Flow("guide", commands=["guide"])

SECTION = "section:"  # choice keys of sections, apart from the fixed choices
TALK = Goto("talk")  # "This didn't help": a person, exactly as the menu's "talk"


def guide_for(turn: Turn) -> Guide:
    return guide_of(turn.catalog.folder, tuple(turn.catalog.languages))


def search_for(turn: Turn) -> GuideSearch:
    return search_of(turn.catalog.folder, tuple(turn.catalog.languages))


def rates_for(turn: Turn) -> Rates:
    return rates_of(turn.catalog.folder)


def _language(turn: Turn) -> str:
    return turn.t.language


def _section_choice(turn: Turn, section: Section) -> Choice:
    return Choice(
        f"{SECTION}{section.key}", section.title, True, tuple(guide_for(turn).titles(section.key))
    )


def _fixed(turn: Turn, key: str) -> Choice:
    return turn.option(key, f"guide.choices.{key}")


# -- browsing ---------------------------------------------------------------------------------
# The topics come first: the flow starts at its first step (/guide, the menu's item).


def topic_options(turn: Turn) -> list[Choice]:
    sections = guide_for(turn).children(_language(turn), None)
    return [_section_choice(turn, s) for s in sections] + [_fixed(turn, "calculator")]


@guide.step("topics", expects="choice", options=topic_options, free=True)
async def topics(turn: Turn) -> Outcome:
    """Opens a topic (or its subtopics), the calculator, or answers a typed question."""
    return _common_choice(turn) or "topics"


async def ask_subtopics(turn: Turn) -> Outcome | None:
    parent = guide_for(turn).section(_language(turn), turn.data.get("parent", ""))
    if parent is None:
        return "topics"
    _say_section(turn, parent, end=False)
    turn.say("guide.subtopics.ask")
    return None


def subtopic_options(turn: Turn) -> list[Choice]:
    children = guide_for(turn).children(_language(turn), turn.data.get("parent"))
    return [_section_choice(turn, s) for s in children] + [
        _fixed(turn, "didnt_help"),
        _fixed(turn, "topics"),
    ]


@guide.step("subtopics", expects="choice", options=subtopic_options, ask=ask_subtopics, free=True)
async def subtopics(turn: Turn) -> Outcome:
    return _common_choice(turn) or "subtopics"


async def ask_section(turn: Turn) -> Outcome | None:
    section = guide_for(turn).section(_language(turn), turn.data.get("section", ""))
    if section is None:
        return "topics"
    _say_section(turn, section, end=True)
    return None


def section_options(turn: Turn) -> list[Choice]:
    section = guide_for(turn).section(_language(turn), turn.data.get("section", ""))
    choices = [_fixed(turn, "didnt_help")]
    if section is not None and section.calculator:
        choices.append(_fixed(turn, "calculator"))
    return choices + [_fixed(turn, "topics"), _fixed(turn, "to_menu")]


@guide.step("section", expects="choice", options=section_options, ask=ask_section, free=True)
async def section(turn: Turn) -> Outcome:
    """After a section: a person, the calculator, the guide, the menu, or a new question."""
    return _common_choice(turn) or "section"


# -- answering a typed question ---------------------------------------------------------------


def answer_question(turn: Turn) -> Outcome:
    """The guide's answer to what the worker typed: the best sections, a complaint beside them
    for a grievance, or a plain "nothing fits" with a person and the menu."""
    if relayed_already(turn, turn.inbound.message_id):
        return STAY  # crisis words: the emergency numbers are the answer, staff are alerted
    question = turn.text or ""
    search = search_for(turn)
    hits = search.search(question)
    answers = {
        "found": [hit.key for hit in hits],
        "grievance": search.is_grievance(question),
        "wordless": not any(char.isalnum() for char in question),
    }
    return Goto("guide", "results", answers=answers)


async def ask_results(turn: Turn) -> Outcome | None:
    found = turn.data.get("found") or []
    if turn.data.get("grievance"):
        turn.say("guide.results.grievance")
    if found:
        turn.say("guide.results.found")
    elif turn.data.get("wordless"):
        turn.say("guide.results.wordless")
    else:
        turn.say("guide.results.nothing")
    return None


def results_options(turn: Turn) -> list[Choice]:
    language = _language(turn)
    sections = [guide_for(turn).section(language, key) for key in turn.data.get("found") or []]
    choices = [_section_choice(turn, s) for s in sections if s is not None]
    if turn.data.get("grievance"):
        choices.append(_fixed(turn, "complaint"))
    choices.append(_fixed(turn, "talk" if not choices else "didnt_help"))
    choices += [_fixed(turn, "topics"), _fixed(turn, "to_menu")]
    return choices


@guide.step("results", expects="choice", options=results_options, ask=ask_results, free=True)
async def results(turn: Turn) -> Outcome:
    """Opens the chosen section, the complaint form or a conversation; a new question is
    searched again."""
    return _common_choice(turn) or "results"


def _say_section(turn: Turn, section: Section, *, end: bool) -> None:
    """The section's text in as many messages as it needs; a note under it when some facts
    are sample data; and, at the end of an answer, the question the choices belong to."""
    messages = guide_for(turn).messages(section)
    title = f"<b>{escape(section.title)}</b>"
    for number, text in enumerate(messages):
        head = f"{title}\n\n" if number == 0 else ""
        if len(head) + len(text) >= 4096:
            head = ""
        turn.replies.append(Reply(f"{head}{text}"))
    if section.sample:
        turn.say("guide.section.sample")
    if end:
        turn.say("guide.section.end")


def _common_choice(turn: Turn) -> Outcome | None:
    """What every guide step does with the same choice; None for "ask this step again"."""
    choice = turn.choice
    if choice is None:
        return answer_question(turn)
    if choice.startswith(SECTION):
        key = choice.removeprefix(SECTION)
        found = guide_for(turn).section(_language(turn), key)
        if found is None:
            return "topics"
        if guide_for(turn).children(_language(turn), key):
            turn.data["parent"] = key
            return "subtopics"
        turn.data["section"] = key
        return "section"
    return {
        "didnt_help": TALK,
        "talk": TALK,
        "complaint": Goto("complaint"),
        "topics": "topics",
        "to_menu": MENU,
        "calculator": "wage",
        "again": "wage",
    }.get(choice)


# -- the social-insurance calculator ------------------------------------------------------------


async def ask_wage(turn: Turn) -> Outcome | None:
    rates = rates_for(turn)
    turn.say("guide.calc.ask", **_period(rates, _language(turn)))
    return None


@guide.step("wage", max_chars=50, ask=ask_wage)
async def wage(turn: Turn) -> Outcome:
    """Reads the monthly wage; what cannot be read is said plainly and the question asked
    again."""
    rates = rates_for(turn)
    reading = read_wage(turn.text or "", maximum=rates.max_wage)
    if reading.wage is None:
        turn.say(f"guide.calc.invalid.{reading.problem}", maximum=_money(rates.max_wage))
        return "wage"
    turn.data["wage"] = str(reading.wage)
    turn.data["read_as"] = reading.reinterpreted
    return "calculated"


async def ask_calculated(turn: Turn) -> Outcome | None:
    rates = rates_for(turn)
    if "wage" not in turn.data:
        return "wage"
    result = calculate(rates, Decimal(turn.data["wage"]))
    t = turn.t
    lines = []
    if turn.data.get("read_as"):
        lines.append(str(t("guide.calc.read_as", wage=_money(result.wage))))
    lines.append(str(t("guide.calc.title", wage=_money(result.wage))))
    if result.clamped:
        lines.append(str(t(f"guide.calc.{result.clamped}", base=_money(result.base))))
    for line in result.lines:
        lines.append(
            str(
                t(
                    "guide.calc.line",
                    scheme=t(f"guide.calc.schemes.{line.scheme.key}"),
                    worker=_money(line.worker),
                    worker_rate=_percent(line.scheme.worker),
                    employer=_money(line.employer),
                    employer_rate=_percent(line.scheme.employer),
                )
            )
        )
    lines.append(
        str(
            t(
                "guide.calc.total",
                worker=_money(result.worker_total),
                employer=_money(result.employer_total),
                total=_money(result.total),
            )
        )
    )
    period = _period(rates, _language(turn))
    notes = [str(t("guide.calc.period", source=rates.source, **period))]
    today = turn.now.astimezone(turn.catalog.office_hours.timezone).date()  # the centre's
    if not rates.valid_from <= today <= rates.valid_to:
        notes.append(str(t("guide.calc.outdated", **period)))
    if rates.sample or any(s.sample for s in rates.schemes):
        notes.append(str(t("guide.calc.sample")))
    turn.replies.append(Reply("\n".join(lines) + "\n\n" + "\n".join(notes)))
    turn.say("guide.calc.end")
    return None


def calculated_options(turn: Turn) -> list[Choice]:
    return [_fixed(turn, key) for key in ("again", "didnt_help", "topics", "to_menu")]


@guide.step(
    "calculated", expects="choice", options=calculated_options, ask=ask_calculated, free=True
)
async def calculated(turn: Turn) -> Outcome:
    """Another wage typed straight away is calculated; other words are a question."""
    if turn.choice is None and turn.text:
        reading = read_wage(turn.text, maximum=rates_for(turn).max_wage)
        if reading.wage is not None:
            turn.data["wage"] = str(reading.wage)
            turn.data["read_as"] = reading.reinterpreted
            return "calculated"
    return _common_choice(turn) or "calculated"


def _period(rates: Rates, language: str) -> dict[str, str]:
    return {
        "city": rates.city.get(language) or next(iter(rates.city.values())),
        "valid_from": _day(rates.valid_from),
        "valid_to": _day(rates.valid_to),
    }


def _day(day: date) -> str:
    return day.isoformat()


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _percent(rate: Decimal) -> str:
    return f"{rate.normalize():f}"
