"""The guide's social-insurance calculator: a monthly wage → what the worker and the employer
pay into each scheme, from the rates in content/social_insurance.yaml.

Money is Decimal throughout: each line is base × rate ÷ 100 rounded half up to the fen (0.01
yuan), and the totals add the rounded lines, so the table a worker sees adds up. The base is
the wage clamped to the city's contribution floor and ceiling.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

FEN = Decimal("0.01")
# How workers write a wage: 5000, 5,000, 5000元, ¥5000, 5千, 5.5k, 1万.
_CURRENCY = re.compile(r"^(?:¥|rmb|cny)|(?:元|块钱|块|yuan|rmb|cny|/月|每月|一个月)$")
_MULTIPLIERS = {"千": 1000, "k": 1000, "万": 10000, "w": 10000}
_PLAIN = re.compile(r"^\d+(?:\.\d{1,2})?$")
_EXPONENT = re.compile(r"\d[e]\s*[+-]?\d")


@dataclass(frozen=True)
class Scheme:
    key: str  # pension, medical, …: its label is guide.calc.schemes.<key>
    worker: Decimal  # per cent of the base
    employer: Decimal
    sample: bool


@dataclass(frozen=True)
class Rates:
    city: dict[str, str]  # its name in each language
    valid_from: date
    valid_to: date
    source: str
    sample: bool
    floor: Decimal
    ceiling: Decimal
    max_wage: Decimal  # a monthly wage above this is taken for a typing mistake
    schemes: tuple[Scheme, ...]


@dataclass(frozen=True)
class Line:
    scheme: Scheme
    worker: Decimal
    employer: Decimal


@dataclass(frozen=True)
class Calculation:
    wage: Decimal
    base: Decimal
    clamped: str | None  # "floor" or "ceiling" when the base is not the wage
    lines: tuple[Line, ...]
    worker_total: Decimal
    employer_total: Decimal

    @property
    def total(self) -> Decimal:
        return self.worker_total + self.employer_total


@dataclass(frozen=True)
class WageReading:
    """What was read from the worker's answer: a wage, or why not."""

    wage: Decimal | None = None
    reinterpreted: bool = False  # "5千", "５０００": we say how we read it
    problem: str | None = None  # not_a_number, negative, zero, too_large


def calculate(rates: Rates, wage: Decimal) -> Calculation:
    base = min(max(wage, rates.floor), rates.ceiling)
    clamped = "floor" if wage < rates.floor else "ceiling" if wage > rates.ceiling else None
    lines = tuple(
        Line(scheme, _share(base, scheme.worker), _share(base, scheme.employer))
        for scheme in rates.schemes
    )
    return Calculation(
        wage=wage,
        base=base,
        clamped=clamped,
        lines=lines,
        worker_total=sum((line.worker for line in lines), Decimal(0)),
        employer_total=sum((line.employer for line in lines), Decimal(0)),
    )


def _share(base: Decimal, percent: Decimal) -> Decimal:
    return (base * percent / 100).quantize(FEN, rounding=ROUND_HALF_UP)


def read_wage(text: str, *, maximum: Decimal) -> WageReading:
    """Reads a monthly wage in yuan as people type it; anything doubtful is refused, not
    guessed (1e9 is a typing mistake or a test, not a wage)."""
    typed = text.strip()
    normal = unicodedata.normalize("NFKC", typed).casefold()
    reinterpreted = normal != typed.casefold()  # full-width digits
    compact = re.sub(r"[\s,，]", "", normal)
    compact = _CURRENCY.sub("", compact)
    compact = _CURRENCY.sub("", compact)  # "¥5000元"
    if _EXPONENT.search(compact):
        return WageReading(problem="not_a_number")
    if compact.startswith("-") and _PLAIN.match(compact[1:] or "x"):
        return WageReading(problem="negative")
    multiplier = 1
    if compact and compact[-1] in _MULTIPLIERS:
        multiplier = _MULTIPLIERS[compact[-1]]
        compact = compact[:-1]
        reinterpreted = True
    if not _PLAIN.match(compact):
        return WageReading(problem="not_a_number")
    try:
        wage = (Decimal(compact) * multiplier).quantize(FEN, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return WageReading(problem="not_a_number")
    if wage <= 0:
        return WageReading(problem="zero")
    if wage > maximum:
        return WageReading(problem="too_large")
    return WageReading(wage=wage, reinterpreted=reinterpreted)


@functools.lru_cache(maxsize=8)
def rates_of(folder: Path) -> Rates:
    """The rates in `folder`/social_insurance.yaml, read once per process."""
    rates, problems = load_rates(Path(folder) / "social_insurance.yaml")
    if rates is None:
        raise ValueError("; ".join(problems))
    return rates


def load_rates(path: Path) -> tuple[Rates | None, list[str]]:
    """The rates and what is wrong with them (the check reports those, the bot refuses)."""
    where = path.name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        return None, [f"{where} cannot be read: {error}"]
    if not isinstance(data, dict):
        return None, [f"{where}: must hold fields (city, valid_from, base, schemes)"]
    problems: list[str] = []
    valid_from, valid_to = data.get("valid_from"), data.get("valid_to")
    if not isinstance(valid_from, date) or not isinstance(valid_to, date):
        problems.append(f"{where}: valid_from and valid_to must be dates (2026-07-01)")
    elif valid_from >= valid_to:
        problems.append(f"{where}: valid_from must be before valid_to")
    base = data.get("base") or {}
    floor, ceiling = _decimal(base.get("floor")), _decimal(base.get("ceiling"))
    max_wage = _decimal(data.get("max_wage", 1000000))
    if floor is None or ceiling is None or floor <= 0:
        problems.append(f"{where}: base.floor and base.ceiling must be amounts in yuan")
    elif floor >= ceiling:
        problems.append(f"{where}: base.floor must be lower than base.ceiling")
    if max_wage is None or (ceiling is not None and max_wage <= ceiling):
        problems.append(f"{where}: max_wage must be an amount above base.ceiling")
    city = data.get("city")
    if not isinstance(city, dict) or not all(isinstance(v, str) and v for v in city.values()):
        problems.append(f"{where}: city must be its name in each language (zh: 昆山, en: Kunshan)")
    if not str(data.get("source") or "").strip():
        problems.append(f"{where}: source must say where the rates come from")
    schemes = []
    for item in data.get("schemes") or []:
        scheme, found = _scheme(item, where)
        problems += found
        if scheme is not None:
            schemes.append(scheme)
    if not schemes:
        problems.append(f"{where}: no schemes")
    keys = [s.key for s in schemes]
    problems += [
        f"{where}: scheme {k!r} is listed twice" for k in sorted(set(keys)) if keys.count(k) > 1
    ]
    worker = sum((s.worker for s in schemes), Decimal(0))
    employer = sum((s.employer for s in schemes), Decimal(0))
    if schemes and not (0 < worker < 100 and 0 < employer < 100):
        problems.append(
            f"{where}: the worker's rates add up to {worker} % and the employer's to {employer} %;"
            " each total must be above 0 and below 100"
        )
    if problems:
        return None, problems
    return (
        Rates(
            city={str(k): str(v) for k, v in data["city"].items()},
            valid_from=valid_from,
            valid_to=valid_to,
            source=str(data["source"]).strip(),
            sample=bool(data.get("sample", False)),
            floor=floor,
            ceiling=ceiling,
            max_wage=max_wage,
            schemes=tuple(schemes),
        ),
        [],
    )


def _scheme(item: Any, where: str) -> tuple[Scheme | None, list[str]]:
    if not isinstance(item, dict) or not isinstance(item.get("key"), str):
        return None, [f"{where}: each scheme needs a key, worker and employer rates"]
    key = item["key"]
    worker, employer = _decimal(item.get("worker", 0)), _decimal(item.get("employer", 0))
    problems = [
        f"{where}: scheme {key!r}: {who} must be a percentage from 0 to 100"
        for who, rate in (("worker", worker), ("employer", employer))
        if rate is None or not 0 <= rate <= 100
    ]
    if problems:
        return None, problems
    if worker == 0 and employer == 0:
        return None, [f"{where}: scheme {key!r}: nobody pays anything"]
    return Scheme(key, worker, employer, bool(item.get("sample", False))), []


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def check(catalog: Any) -> list[str]:
    """The rates add up and every scheme has its label in every language."""
    rates, problems = load_rates(catalog.folder / "social_insurance.yaml")
    if rates is None:
        return problems
    from content.catalog import ContentError

    for language in catalog.languages:
        if language not in rates.city:
            problems.append(f"social_insurance.yaml: no city name in {language}")
        for scheme in rates.schemes:
            try:
                catalog.translator(language)(f"guide.calc.schemes.{scheme.key}")
            except ContentError:
                problems.append(f"{language}: no label guide.calc.schemes.{scheme.key}")
    return problems
