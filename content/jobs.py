"""The jobs service's content (content/jobs.yaml): trades, job-fair venues and the week's
fairs, and whether the housing note is sample data. Loaded once per folder by whoever needs
it (the jobs flow, the CSV import), and checked by `hotline content check`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from content.catalog import Catalog

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Venue:
    key: str
    district: str
    sample: bool


@dataclass(frozen=True, slots=True)
class Fair:
    day: str
    hours: str
    venue: str


@dataclass(frozen=True, slots=True)
class JobsContent:
    trades: tuple[str, ...]
    subscriptions_per_person: int
    venues: dict[str, Venue]
    fairs: tuple[Fair, ...]
    housing_sample: bool

    @property
    def fairs_sample(self) -> bool:
        """Whether any fair's venue is unverified: the calendar then says so."""
        return any(self.venues[f.venue].sample for f in self.fairs if f.venue in self.venues)


class JobsContentError(ValueError):
    """content/jobs.yaml is missing a part or a part has the wrong shape."""


@lru_cache(maxsize=8)
def load(folder: Path) -> JobsContent:
    """content/jobs.yaml of `folder`, read once (a centre's edit takes effect at restart)."""
    path = Path(folder) / "jobs.yaml"
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise JobsContentError(f"{path} is missing") from None
    except yaml.YAMLError as error:
        raise JobsContentError(f"{path} is not valid YAML: {error}") from None
    try:
        return _parse(data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise JobsContentError(f"{path}: {error!r} (see the comments in the file)") from None


def _parse(data: dict[str, Any]) -> JobsContent:
    venues = {
        str(key): Venue(str(key), str(item["district"]), bool(item.get("sample", False)))
        for key, item in (data.get("venues") or {}).items()
    }
    fairs = tuple(
        Fair(str(item["day"]).lower(), str(item["hours"]), str(item["venue"]))
        for item in data.get("fairs") or []
    )
    return JobsContent(
        trades=tuple(str(trade) for trade in data["trades"]),
        subscriptions_per_person=int(data.get("subscriptions_per_person", 5)),
        venues=venues,
        fairs=fairs,
        housing_sample=bool((data.get("housing") or {}).get("sample", False)),
    )


def check(catalog: Catalog) -> list[str]:
    """What a coordinator must fix in jobs.yaml or the jobs texts; empty when fine."""
    try:
        jobs = load(catalog.folder)
    except JobsContentError as error:
        return [str(error)]
    problems: list[str] = []
    if not jobs.trades:
        problems.append("jobs.yaml: trades is empty")
    if len(set(jobs.trades)) != len(jobs.trades):
        problems.append("jobs.yaml: a trade is listed twice")
    if jobs.subscriptions_per_person < 1:
        problems.append("jobs.yaml: subscriptions_per_person must be at least 1")
    for venue in jobs.venues.values():
        if venue.district not in catalog.districts:
            problems.append(
                f"jobs.yaml: venue {venue.key} is in district {venue.district!r},"
                " which is not in districts.yaml"
            )
    for number, fair in enumerate(jobs.fairs, start=1):
        where = f"jobs.yaml: fair {number} ({fair.day} {fair.hours})"
        if fair.day not in WEEKDAYS:
            problems.append(f"{where}: day must be one of {', '.join(WEEKDAYS)}")
        found = _HOURS.match(fair.hours)
        if found is None:
            problems.append(f"{where}: hours must read HH:MM-HH:MM, e.g. 08:30-11:30")
        elif found.group(1, 2) >= found.group(3, 4):
            problems.append(f"{where}: the fair must end after it starts")
        if fair.venue not in jobs.venues:
            problems.append(f"{where}: venue {fair.venue!r} is not under venues")
    for language in catalog.languages:
        texts = catalog.keys(language)
        needed = [f"jobs.trades.{trade}" for trade in jobs.trades]
        for venue in jobs.venues:
            needed += [f"jobs.venues.{venue}.name", f"jobs.venues.{venue}.address"]
        problems += [f"{language}: no text {key}" for key in needed if key not in texts]
    return problems
