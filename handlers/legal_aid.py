"""Legal-aid referral: what the problem is, where, when it happened (labour arbitration has a
one-year time limit, and the worker is warned when it is near or past), whether they can pay
a lawyer; then the nearest places from the directory (content/legal_aid.yaml) with their map
pins, and a lawyer's call-back as a ticket, or a person to talk to.

The directory's texts are read here for counsellors' "Refer" too (`details_of`), so that a
worker referred by a counsellor reads what this conversation would have shown them.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import date

from markupsafe import Markup

from content.catalog import Translator
from content.legal_aid import Directory, Entry, directory
from db.models import TicketKind
from db.tickets import open_ticket
from handlers.complaint import PHONE, consent
from handlers.flow import FINISHED, NEXT, STAY, Flow, Goto, Outcome, Turn
from handlers.mediation import post_card, staff_texts
from handlers.messages import Place, Reply
from handlers.office_hours import say_if_after_hours
from handlers.talk import at_ticket_cap

legal_aid = Flow("legal_aid", commands=["legalaid"])

ONGOING, UNSURE = "legal_aid_ongoing", "legal_aid_unsure"  # the "when" step's buttons
PAY_OPTIONS = ("free", "lawyer", "unsure")
NEXT_OPTIONS = ("callback", "didnt_help", "menu")


def _directory(turn: Turn) -> Directory:
    return directory(turn.catalog.folder)


@legal_aid.step(
    "problem",
    expects="choice",
    options=lambda turn: [
        turn.option(c.key, f"categories.{c.key}") for c in turn.catalog.categories
    ],
)
async def problem(turn: Turn) -> Outcome:
    """Stores the kind of problem (the complaint categories) and asks where."""
    turn.data["problem"] = turn.choice
    return NEXT


@legal_aid.step(
    "district",
    expects="choice",
    options=lambda turn: [turn.option(d, f"districts.{d}") for d in turn.catalog.districts],
)
async def district(turn: Turn) -> Outcome:
    """Stores the district and asks when it happened."""
    turn.data["district"] = turn.choice
    return NEXT


@legal_aid.step("when", max_chars=60, extra=(ONGOING, UNSURE))
async def when(turn: Turn) -> Outcome:
    """Reads when it happened and says where the worker stands with the arbitration limit."""
    if turn.choice in (ONGOING, UNSURE):
        state = "ongoing" if turn.choice == ONGOING else "unsure"
        turn.data.update(happened=state, deadline=state)
        turn.say(f"legal_aid.deadline.{state}")
        return NEXT
    today = turn.now.astimezone(turn.catalog.office_hours.timezone).date()
    happened = parse_when(turn.text or "", today)
    if happened is None:
        turn.say("legal_aid.when.invalid")
        return STAY
    if happened > today:
        turn.say("legal_aid.when.future")
        return STAY
    found = _directory(turn)
    state, deadline, days = arbitration_deadline(
        happened, today, years=found.limit_years, warn_days=found.warn_days
    )
    turn.data.update(happened=happened.isoformat(), deadline=state, days_left=days)
    turn.say(f"legal_aid.deadline.{state}", days=days, deadline=say_date(turn.t, deadline))
    return NEXT


@legal_aid.step(
    "pay",
    expects="choice",
    options=lambda turn: [turn.option(key, f"legal_aid.pay.{key}") for key in PAY_OPTIONS],
)
async def pay(turn: Turn) -> Outcome:
    """Stores whether they can pay a lawyer and shows the places that suit them."""
    turn.data["pay"] = turn.choice
    show_places(turn)
    return NEXT


@legal_aid.step(
    "next",
    expects="choice",
    options=lambda turn: [turn.option(key, f"legal_aid.next.{key}") for key in NEXT_OPTIONS],
)
async def after_places(turn: Turn) -> Outcome:
    """A lawyer's call-back (the questions after this one), a person, or the menu."""
    if turn.choice == "didnt_help":
        return Goto("talk")
    if turn.choice == "menu":
        return FINISHED
    if await at_ticket_cap(turn):
        turn.say("legal_aid.too_many_open", limit=turn.catalog.open_tickets_per_person)
        return FINISHED
    return NEXT


legal_aid.step(
    "consent",
    expects="choice",
    when=lambda turn: turn.person.consented_at is None,
    options=lambda turn: [turn.option("agree"), turn.option("decline")],
)(consent)


@legal_aid.step("phone", max_chars=30)
async def phone(turn: Turn) -> Outcome:
    """Stores the number the lawyer will call, checked as the complaint checks it."""
    found = PHONE.match(re.sub(r"[\s\-()]", "", turn.text or ""))
    if found is None:
        turn.say("legal_aid.phone.invalid")
        return STAY
    turn.data["phone"] = found.group(1)
    return NEXT


@legal_aid.step("note", max_chars=1000, extra=("skip",))
async def note(turn: Turn) -> Outcome:
    """Opens the call-back ticket, which reaches the staff group with its topic and card."""
    if await at_ticket_cap(turn):  # filed elsewhere meanwhile
        turn.say("legal_aid.too_many_open", limit=turn.catalog.open_tickets_per_person)
        return FINISHED
    data = turn.data
    ticket, _ = await open_ticket(
        turn.session,
        person_id=turn.person.id,
        kind=TicketKind.LEGAL_AID,
        language=turn.t.language,
        prefix=turn.catalog.ticket_prefix,
        now=turn.now,
        evidence=[],
        author="worker",
        fields={
            "category": data["problem"],
            "district": data["district"],
            "phone": data["phone"],
            "story": ticket_story(turn, None if turn.choice == "skip" else turn.text),
            "share_identity": False,
            "urgent": data.get("deadline") == "close",  # a limit running out is for today
        },
    )
    post_card(turn, ticket, turn.person, [])
    turn.say("legal_aid.submitted", reference=ticket.reference, phone=data["phone"])
    say_if_after_hours(turn)
    return FINISHED


# -- what the worker is shown ------------------------------------------------------------------


def show_places(turn: Turn) -> None:
    """The district's places, each a card and its map pin, then the phone lines."""
    t, data = turn.t, turn.data
    found = _directory(turn)
    places = found.nearest(
        district=data["district"],
        problem=data["problem"],
        pay=data["pay"],
        deadline=data.get("deadline", "unsure"),
    )
    data["shown"] = [entry.key for entry in places]
    intro = t("legal_aid.results.intro", district=t(f"districts.{data['district']}"))
    advice = t(f"legal_aid.advice.{data['pay']}")
    turn.replies.append(Reply(f"{intro}\n{advice}"))
    for entry in places:
        turn.replies.append(place_reply(t, entry))
    lines = [
        str(t("legal_aid.results.line", phone=e.phone, name=entry_name(t, e), hours=_hours(t, e)))
        for e in found.lines
        if e.suits(data["problem"])
    ]
    if lines:
        turn.replies.append(Reply("\n".join([str(t("legal_aid.results.lines")), *lines])))


def place_reply(t: Translator, entry: Entry) -> Reply:
    """A place's card, then its pin; the pin's title says "sample data" as the card does."""
    name = _text(t, entry, "name")
    title = t("legal_aid.venue_sample", name=name) if entry.sample else name
    place = Place(
        entry.latitude,
        entry.longitude,
        Markup(title).striptags(),  # a map shows plain text
        Markup(_text(t, entry, "address")).striptags(),
    )
    return Reply(f"<b>{name}</b>\n{details_of(t, entry)}", place=place)


def details_of(t: Translator, entry: Entry) -> Markup:
    """What a place does, where it is, when it is open, what to bring, and whether this is
    sample data: for the worker's cards and for a counsellor's referral."""
    lines = [_text(t, entry, "does")]
    if entry.is_place:
        lines.append(t("legal_aid.card.address", address=_text(t, entry, "address")))
    lines.append(t("legal_aid.card.phone", phone=entry.phone, hours=_hours(t, entry)))
    if entry.is_place:
        lines.append(t("legal_aid.card.bring", bring=t(f"legal_aid.bring.{entry.kind}")))
    if entry.sample:
        lines.append(t("legal_aid.card.sample"))
    return Markup("\n").join(lines)


def entry_name(t: Translator, entry: Entry) -> Markup:
    return _text(t, entry, "name")


def _text(t: Translator, entry: Entry, part: str) -> Markup:
    return t(f"legal_aid.places.{entry.key}.{part}")


def _hours(t: Translator, entry: Entry) -> Markup:
    return t(f"legal_aid.hours.{entry.hours}")


def ticket_story(turn: Turn, note_text: str | None) -> str:
    """The answers as the card shows them, in the staff's language."""
    st, data = staff_texts(turn.catalog), turn.data
    happened = data["happened"]
    if happened in ("ongoing", "unsure"):
        when_text = str(st(f"legal_aid.ticket.{happened}"))
    else:
        when_text = str(say_date(st, date.fromisoformat(happened)))
        limit = st(f"legal_aid.ticket.deadline_{data['deadline']}", days=data.get("days_left", 0))
        when_text += f" ({limit})"
    found = _directory(turn)
    names = [str(entry_name(st, e)) for key in data.get("shown", []) if (e := found.get(key))]
    lines = [
        str(st("legal_aid.ticket.happened", when=when_text)),
        str(st(f"legal_aid.ticket.pay_{data['pay']}")),
        str(st("legal_aid.ticket.suggested", names="; ".join(names))),
    ]
    if note_text:
        lines.append(str(st("legal_aid.ticket.note", note=note_text)))
    return "\n".join(lines)


def say_date(t: Translator, day: date) -> Markup:
    return t("legal_aid.date", year=day.year, month=day.month, day=day.day)


# -- when it happened ------------------------------------------------------------------------


def arbitration_deadline(
    happened: date, today: date, *, years: int, warn_days: int
) -> tuple[str, date, int]:
    """("past" | "close" | "open", the last day to apply, days left): the limit counts from
    when the worker knew their rights were infringed (Labour Dispute Mediation and
    Arbitration Law, art. 27)."""
    try:
        deadline = happened.replace(year=happened.year + years)
    except ValueError:  # 29 February
        deadline = happened.replace(year=happened.year + years, day=28)
    days = (deadline - today).days
    if days < 0:
        return "past", deadline, days
    return ("close" if days <= warn_days else "open"), deadline, days


CHINESE_DIGITS = dict(zip("一二三四五六七八九", range(1, 10), strict=True)) | {"两": 2}
ENGLISH_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
ENGLISH_NUMBERS |= {"six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11}
ENGLISH_NUMBERS |= {"twelve": 12}
MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_NUMBER = r"(\d{1,3}|[一二两三四五六七八九十]{1,3}|[a-z]+)"
_UNIT = r"(天|日|周|星期|礼拜|月|年|days?|weeks?|months?|years?)"
_AGO = re.compile(_NUMBER + r"\s*(?:个)?\s*" + _UNIT + r"\s*(?:以前|之前|前|ago)")
_YEAR_MONTH = re.compile(
    r"(\d{4})\s*(?:年|[-/.])\s*(\d{1,2})(?:\s*(?:月|[-/.])\s*(\d{1,2}))?\s*[月日]?"
)
_MONTH_YEAR = re.compile(r"(\d{1,2})\s*[-/.]\s*(\d{4})")
_CHINESE_MONTH = re.compile(
    r"(今年|去年|前年)?\s*(\d{1,2}|[一二三四五六七八九十]{1,3})\s*月(?:\s*(\d{1,2})\s*日)?"
)
_NAMED_MONTH = re.compile(r"([a-z]{3,9})\.?\s*(\d{1,2}\b)?,?\s*(\d{4})?|(\d{4})\s+([a-z]{3,9})")
_YEAR = re.compile(r"(\d{4})\s*年?|(今年|去年|前年|this year|last year)")
_DAY_WORDS = {"今天": 0, "today": 0, "昨天": 1, "yesterday": 1, "前天": 2}
_MONTH_WORDS = {"这个月": 0, "本月": 0, "this month": 0, "上个月": 1, "上月": 1, "last month": 1}
_YEAR_WORDS = {"今年": 0, "this year": 0, "去年": 1, "last year": 1, "前年": 2}


def parse_when(text: str, today: date) -> date | None:
    """A date as workers write one: 2026-03, 2026年3月5日, 3/2026, March 2026, 去年10月,
    10月, 3个月前, 3 months ago, 上个月, yesterday. For a month or a year alone, its first
    day: the earliest it can mean, so a warning comes rather too soon than too late. None
    when it cannot be read."""
    s = unicodedata.normalize("NFKC", text).strip().lower().replace("号", "日")
    s = re.sub(r"\s+", " ", s).strip(" .。,，!！")
    if s in _DAY_WORDS:
        return date.fromordinal(today.toordinal() - _DAY_WORDS[s])
    if s in _MONTH_WORDS:
        return _months_before(today, _MONTH_WORDS[s], keep_day=False)
    if found := _AGO.fullmatch(s):
        return _ago(today, found.group(1), found.group(2))
    if found := _YEAR_MONTH.fullmatch(s):
        return _date(int(found.group(1)), int(found.group(2)), found.group(3))
    if found := _MONTH_YEAR.fullmatch(s):
        return _date(int(found.group(2)), int(found.group(1)), None)
    if found := _CHINESE_MONTH.fullmatch(s):
        month = _chinese_number(found.group(2))
        back = _YEAR_WORDS.get(found.group(1) or "")
        year = today.year - back if back is not None else _latest_year(today, month)
        return _date(year, month, found.group(3))
    if found := _NAMED_MONTH.fullmatch(s):
        return _named_month(today, found)
    if found := _YEAR.fullmatch(s):
        if found.group(1):
            return _date(int(found.group(1)), 1, None)
        return date(today.year - _YEAR_WORDS[found.group(2)], 1, 1)
    return None


def _number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    if word in ENGLISH_NUMBERS:
        return ENGLISH_NUMBERS[word]
    value = _chinese_number(word)
    return value or None


def _chinese_number(word: str) -> int:
    """1 to 99 in Chinese numerals, or digits; 0 when it is neither."""
    if word.isdigit():
        return int(word)
    if "十" in word:
        tens, _, ones = word.partition("十")
        return CHINESE_DIGITS.get(tens, 1 if not tens else 0) * 10 + CHINESE_DIGITS.get(ones, 0)
    return CHINESE_DIGITS.get(word, 0) if len(word) == 1 else 0


def _ago(today: date, amount: str, unit: str) -> date | None:
    n = _number(amount)
    if n is None or n > 600:
        return None
    if unit in ("天", "日") or unit.startswith("day"):
        return date.fromordinal(today.toordinal() - n)
    if unit in ("周", "星期", "礼拜") or unit.startswith("week"):
        return date.fromordinal(today.toordinal() - 7 * n)
    if unit == "月" or unit.startswith("month"):
        return _months_before(today, n, keep_day=True)
    return _months_before(today, 12 * n, keep_day=True)


def _months_before(today: date, months: int, *, keep_day: bool) -> date:
    index = today.year * 12 + today.month - 1 - months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(today.day, last) if keep_day else 1)


def _latest_year(today: date, month: int) -> int:
    """A month without a year: the last one that has begun."""
    return today.year if month <= today.month else today.year - 1


def _named_month(today: date, found: re.Match) -> date | None:
    if found.group(4):  # "2026 march"
        month = _month_name(found.group(5))
        return _date(int(found.group(4)), month, None) if month else None
    month = _month_name(found.group(1))
    if month is None:
        return None
    year = int(found.group(3)) if found.group(3) else _latest_year(today, month)
    return _date(year, month, found.group(2))


def _month_name(word: str) -> int | None:
    return MONTH_NAMES.get(word[:3]) if len(word) >= 3 else None


def _date(year: int, month: int, day: str | None) -> date | None:
    if not 1900 <= year <= 2200:
        return None
    try:
        return date(year, month, int(day) if day else 1)
    except ValueError:
        return None
