"""The directory of places that help (content/legal_aid.yaml): legal-aid stations, the trade
union's centre, the arbitration committee, labour inspection and the national lines.

It is the one list behind both the worker's legal-aid conversation and counsellors' "Refer",
so a centre that changes an address changes it once. `check` is what `hotline content check`
finds wrong with it; `directory` is what handlers read, loaded once per content folder.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # content.catalog imports this module: only its types are needed here
    from content.catalog import Catalog

FILE = "legal_aid.yaml"
KINDS = ("legal_aid", "lawyers", "union", "arbitration", "inspection", "hotline")
HOTLINE = "hotline"
EVERYWHERE = "all"
BOUNDS = ("south", "north", "west", "east")
# The order places are offered in, by whether the worker can pay a lawyer; an arbitration
# deadline that is near or past puts the arbitration committee first.
KIND_ORDER = {
    "free": ("legal_aid", "union", "arbitration", "inspection", "lawyers"),
    "lawyer": ("lawyers", "legal_aid", "arbitration", "union", "inspection"),
    "unsure": ("legal_aid", "lawyers", "union", "arbitration", "inspection"),
}
FIELDS = {
    "key",
    "kind",
    "districts",
    "phone",
    "hours",
    "latitude",
    "longitude",
    "sample",
    "referable",
    "problems",
}


class DirectoryError(ValueError):
    """legal_aid.yaml cannot be read as a directory at all."""


@dataclass(frozen=True)
class Entry:
    key: str
    kind: str
    districts: tuple[str, ...]
    phone: str
    hours: str
    latitude: float | None
    longitude: float | None
    sample: bool
    referable: bool
    problems: tuple[str, ...]  # empty: suggested for every problem

    @property
    def is_place(self) -> bool:
        """A place to go to (with an address and a map pin), not a phone line."""
        return self.kind != HOTLINE

    def serves(self, district: str) -> bool:
        return EVERYWHERE in self.districts or district in self.districts

    def suits(self, problem: str) -> bool:
        return not self.problems or problem in self.problems


@dataclass(frozen=True)
class Directory:
    entries: tuple[Entry, ...]
    show: int
    limit_years: int
    warn_days: int
    bounds: dict[str, float] | None

    def get(self, key: str) -> Entry | None:
        return next((e for e in self.entries if e.key == key), None)

    @property
    def referable(self) -> list[Entry]:
        return [e for e in self.entries if e.referable]

    @property
    def lines(self) -> list[Entry]:
        return [e for e in self.entries if not e.is_place]

    def nearest(self, *, district: str, problem: str, pay: str, deadline: str) -> list[Entry]:
        """The places to suggest: the district's own first, then the city's, in the order
        that suits who can pay a lawyer; at most `show` of them."""
        order = list(KIND_ORDER.get(pay, KIND_ORDER["unsure"]))
        if deadline in ("close", "past"):
            order.remove("arbitration")
            order.insert(0, "arbitration")
        candidates = [
            e for e in self.entries if e.is_place and e.serves(district) and e.suits(problem)
        ]
        ranked = sorted(
            candidates,
            key=lambda e: (
                EVERYWHERE in e.districts,
                order.index(e.kind) if e.kind in order else len(order),
            ),
        )
        return ranked[: self.show]


def directory(folder: Path) -> Directory:
    """The directory of a content folder, read once (the hotline checked it at start)."""
    return _load(Path(folder).resolve())


@functools.cache
def _load(folder: Path) -> Directory:
    return load(folder)


def load(folder: Path) -> Directory:
    """Reads the directory; raises DirectoryError when its shape is wrong (what `check`
    cannot look into). Facts that are merely wrong (an unknown district) are for `check`."""
    path = Path(folder) / FILE
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise DirectoryError(f"{path} is missing") from None
    except yaml.YAMLError as error:
        raise DirectoryError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("places"), list):
        raise DirectoryError(f"{FILE}: needs a list of places under `places:`")
    arbitration = data.get("arbitration") or {}
    bounds = data.get("bounds")
    if bounds is not None and (not isinstance(bounds, dict) or set(bounds) != set(BOUNDS)):
        raise DirectoryError(f"{FILE}: bounds needs {', '.join(BOUNDS)} (in degrees)")
    try:
        return Directory(
            entries=tuple(_entry(number, item) for number, item in enumerate(data["places"], 1)),
            show=int(data.get("show", 3)),
            limit_years=int(arbitration.get("limit_years", 1)),
            warn_days=int(arbitration.get("warn_days", 90)),
            bounds={k: float(v) for k, v in bounds.items()} if bounds else None,
        )
    except (TypeError, ValueError, AttributeError) as error:
        raise DirectoryError(f"{FILE}: {error}") from None


def _entry(number: int, item: Any) -> Entry:
    if not isinstance(item, dict) or not item.get("key"):
        raise DirectoryError(f"{FILE}: place {number} has no key")
    key = str(item["key"])
    unknown = set(item) - FIELDS
    if unknown:
        raise DirectoryError(f"{FILE}: place {key}: unknown field(s) {sorted(unknown)}")

    def coordinate(name: str) -> float | None:
        value = item.get(name)
        if value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DirectoryError(f"{FILE}: place {key}: {name} {value!r} is not a number") from None

    districts = item.get("districts") or []
    problems = item.get("problems") or []
    if not isinstance(districts, list) or not isinstance(problems, list):
        raise DirectoryError(f"{FILE}: place {key}: districts and problems are lists")
    return Entry(
        key=key,
        kind=str(item.get("kind", "")),
        districts=tuple(str(d) for d in districts),
        phone=str(item.get("phone") or ""),
        hours=str(item.get("hours") or ""),
        latitude=coordinate("latitude"),
        longitude=coordinate("longitude"),
        sample=item.get("sample", True) is not False,  # unverified unless it says otherwise
        referable=item.get("referable", False) is True,
        problems=tuple(str(p) for p in problems),
    )


def check(catalog: Catalog) -> list[str]:
    """Everything a coordinator must fix in the directory before the hotline starts."""
    try:
        found = load(catalog.folder)
    except DirectoryError as error:
        return [str(error)]
    problems: list[str] = []
    if found.show < 1:
        problems.append(f"{FILE}: show must be at least 1")
    if found.limit_years < 1 or found.warn_days < 0:
        problems.append(f"{FILE}: arbitration.limit_years ≥ 1 and warn_days ≥ 0, please")
    districts = set(catalog.districts) | {EVERYWHERE}
    categories = {c.key for c in catalog.categories}
    seen: set[str] = set()
    for entry in found.entries:
        where = f"{FILE}: place {entry.key}"
        if entry.key in seen:
            problems.append(f"{where} is listed twice")
        seen.add(entry.key)
        if entry.kind not in KINDS:
            problems.append(f"{where}: unknown kind {entry.kind!r} (one of {', '.join(KINDS)})")
        if not entry.districts:
            problems.append(f"{where}: serves no district (write [all] for the whole city)")
        problems += [
            f"{where}: unknown district {d!r} (not in districts.yaml)"
            for d in entry.districts
            if d not in districts
        ]
        problems += [
            f"{where}: unknown problem {p!r} (not a category in complaint.yaml)"
            for p in entry.problems
            if p not in categories
        ]
        if not entry.phone:
            problems.append(f"{where}: no phone")
        problems += _check_position(where, entry, found.bounds)
        problems += _check_texts(catalog, entry)
    if not found.referable:
        problems.append(f"{FILE}: no place is referable: counsellors' Refer would offer nothing")
    if not any(e.is_place and EVERYWHERE in e.districts for e in found.entries):
        problems.append(f"{FILE}: no place serves [all]: some districts would get no place")
    for language in catalog.languages:
        t = _texts(catalog, language)
        for kind in sorted({e.kind for e in found.entries if e.is_place and e.kind in KINDS}):
            if f"legal_aid.bring.{kind}" not in t:
                problems.append(f"{language}: no text legal_aid.bring.{kind} (what to bring)")
    return problems


def _check_position(where: str, entry: Entry, bounds: dict[str, float] | None) -> list[str]:
    lat, lon = entry.latitude, entry.longitude
    if not entry.is_place:
        return []
    if lat is None or lon is None:
        return [f"{where}: a place needs a latitude and a longitude for its map pin"]
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return [f"{where}: latitude {lat} / longitude {lon} is not on Earth"]
    if bounds and not (
        bounds["south"] <= lat <= bounds["north"] and bounds["west"] <= lon <= bounds["east"]
    ):
        return [f"{where}: {lat}, {lon} is outside the city's bounds (swapped?)"]
    return []


def _check_texts(catalog: Catalog, entry: Entry) -> list[str]:
    parts = ["name", "does"] + (["address"] if entry.is_place else [])
    problems = [] if entry.hours else [f"{FILE}: place {entry.key}: no hours"]
    for language in catalog.languages:
        texts = _texts(catalog, language)
        problems += [
            f"{language}: no text legal_aid.places.{entry.key}.{part}"
            for part in parts
            if f"legal_aid.places.{entry.key}.{part}" not in texts
        ]
        if entry.hours and f"legal_aid.hours.{entry.hours}" not in texts:
            problems.append(f"{language}: no text legal_aid.hours.{entry.hours} ({entry.key})")
    return problems


def _texts(catalog: Catalog, language: str) -> frozenset[str]:
    """The keys a language has, as the catalogue read them (its own check reads the same)."""
    return catalog.keys(language)
