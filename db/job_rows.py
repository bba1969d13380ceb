"""One job listing's fields as a coordinator typed them (a CSV row, or /jobs add in the staff
group) checked into a listing to add, or the problems that keep it out.

Both ways of adding a listing share these rules, so a listing refused in one is refused in
the other, and the same listing typed either way gets the same source key (added once).
Problems are keys with values, not sentences: the CLI prints them in English (`english`),
the staff group in its own language (jobs.staff.problems.<key>).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from db.jobs import NewListing

FIELDS = (
    "title",
    "employer",
    "district",
    "trade",
    "pay_min",
    "pay_max",
    "hours",
    "housing",
    "contact",
    "expires",
)
LENGTHS = {"title": 100, "employer": 100, "hours": 100, "contact": 200}  # as in db/models.py
REQUIRED = ("title", "employer", "contact")
MAX_PAY = 200_000  # yuan a month; more is taken for a typing mistake
HOUSING = {
    **dict.fromkeys(("yes", "y", "true", "1", "是", "有", "提供", "包住"), True),
    **dict.fromkeys(("no", "n", "false", "0", "否", "无", "不提供", "不包住"), False),
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WHOLE = re.compile(r"^\d+$")

ENGLISH = {
    "empty": "{field} is empty",
    "too_long": "{field} is {length} characters long, at most {limit}",
    "unknown_district": "district {typed!r} is not known (one of: {known})",
    "unknown_trade": "trade {typed!r} is not known (one of: {known})",
    "pay_negative": "{field} {typed} is below 0",
    "pay_not_number": "{field} {typed!r} is not a whole number of yuan",
    "pay_too_high": "{field} {value} is more than {limit} yuan a month (a typing mistake?)",
    "pay_order": "pay_min {pay_min} is more than pay_max {pay_max}",
    "housing": "housing {typed!r} is not yes or no (yes/no, 是/否, true/false, 1/0)",
    "bad_date": "expires {typed!r} is not a date written YYYY-MM-DD, e.g. 2027-06-30",
    "past_date": "expires {typed} is in the past (today is {today})",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a listing cannot be added: a key of ENGLISH and the values its text names."""

    key: str
    values: dict[str, str | int] = field(default_factory=dict)

    def english(self) -> str:
        return ENGLISH[self.key].format(**self.values)


class Vocabulary:
    """Districts and trades by key or by their label in any language, as a centre types them
    ("yushan", "Yushan", "玉山镇")."""

    def __init__(self, names: dict[str, Iterable[str]]) -> None:
        self.keys = list(names)
        self._by_name: dict[str, str] = {}
        for key, labels in names.items():
            for name in (key, *labels):
                self._by_name.setdefault(folded(name), key)

    def find(self, typed: str) -> str | None:
        return self._by_name.get(folded(typed))


def read_listing(
    fields: Mapping[str, str], *, districts: Vocabulary, trades: Vocabulary, today: date
) -> tuple[NewListing | None, list[Problem]]:
    """Every field of FIELDS checked; `today` is the centre's date (an expiry before it is
    refused). Cells stay the text they are: a formula-looking one is stored as that text."""
    problems: list[Problem] = []
    text = {name: " ".join(fields[name].split()) for name in LENGTHS}
    for name in REQUIRED:
        if not text[name]:
            problems.append(Problem("empty", {"field": name}))
    for name, limit in LENGTHS.items():
        if len(text[name]) > limit:
            problems.append(
                Problem("too_long", {"field": name, "length": len(text[name]), "limit": limit})
            )
    district = districts.find(fields["district"])
    if district is None:
        problems.append(
            Problem(
                "unknown_district",
                {"typed": fields["district"].strip(), "known": ", ".join(districts.keys)},
            )
        )
    trade = trades.find(fields["trade"])
    if trade is None:
        problems.append(
            Problem(
                "unknown_trade", {"typed": fields["trade"].strip(), "known": ", ".join(trades.keys)}
            )
        )
    pay_min = _pay(fields, "pay_min", problems)
    pay_max = _pay(fields, "pay_max", problems)
    if pay_min is not None and pay_max is not None and pay_min > pay_max:
        problems.append(Problem("pay_order", {"pay_min": pay_min, "pay_max": pay_max}))
    housing = HOUSING.get(folded(fields["housing"]))
    if housing is None:
        problems.append(Problem("housing", {"typed": fields["housing"].strip()}))
    expires = _expiry(fields["expires"], today, problems)
    if problems:
        return None, problems
    values = (
        text["title"],
        text["employer"],
        district,
        trade,
        str(pay_min),
        str(pay_max),
        text["hours"],
        str(int(housing)),
        text["contact"],
        expires.isoformat(),
    )
    listing = NewListing(
        title=text["title"],
        employer=text["employer"],
        district=district,
        trade=trade,
        pay_min=pay_min,
        pay_max=pay_max,
        hours=text["hours"],
        housing=housing,
        contact=text["contact"],
        expires_on=expires,
        source_key=source_key(values),
    )
    return listing, []


def source_key(values: Iterable[str]) -> str:
    """The listing as read, normalised (width, case, spaces), hashed: the same listing typed
    again, or the same file imported twice, gives the same key."""
    normal = "\x1f".join(folded(value) for value in values)
    return hashlib.sha256(normal.encode()).hexdigest()


def _pay(fields: Mapping[str, str], name: str, problems: list[Problem]) -> int | None:
    typed = unicodedata.normalize("NFKC", fields[name]).strip().replace(",", "").replace(" ", "")
    if typed.startswith("-") and _WHOLE.match(typed[1:]):
        problems.append(Problem("pay_negative", {"field": name, "typed": typed}))
        return None
    if not _WHOLE.match(typed):
        problems.append(Problem("pay_not_number", {"field": name, "typed": fields[name].strip()}))
        return None
    value = int(typed)
    if value > MAX_PAY:
        problems.append(Problem("pay_too_high", {"field": name, "value": value, "limit": MAX_PAY}))
        return None
    return value


def _expiry(typed: str, today: date, problems: list[Problem]) -> date | None:
    typed = unicodedata.normalize("NFKC", typed).strip()
    try:
        if not _DATE.match(typed):
            raise ValueError
        expires = date.fromisoformat(typed)
    except ValueError:
        problems.append(Problem("bad_date", {"typed": typed}))
        return None
    if expires < today:
        problems.append(Problem("past_date", {"typed": typed, "today": today.isoformat()}))
        return None
    return expires


def folded(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())
