"""The service centre's office hours, read from content/office_hours.yaml.

Counsellors answer only during them: a worker who writes outside them is told when to expect an
answer, and SLA clocks count only office-hours time, so a complaint sent on Friday night is not
"late" by Monday morning. Every method takes aware datetimes in any time zone and answers in the
office's time zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SEARCH_DAYS = 60  # next_opening gives up after this: the office is never closed for so long
SETTINGS = {"timezone", "weekly", "holidays", "extra_working_days"}
_SPAN = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


@dataclass(frozen=True)
class Span:
    """One opening span of a day, as times since midnight, so that it may end at 24:00."""

    start: timedelta
    end: timedelta


class OfficeHours:
    def __init__(
        self,
        *,
        timezone: ZoneInfo,
        weekly: Sequence[Sequence[Span]],
        holidays: Iterable[date] = (),
        extra_working_days: Iterable[date] = (),
    ) -> None:
        """`weekly` holds the spans of Monday first; from_file and from_mapping check them."""
        self.timezone = timezone
        self.weekly = tuple(tuple(spans) for spans in weekly)
        self.holidays = frozenset(holidays)
        self.extra_working_days = frozenset(extra_working_days)

    @classmethod
    def from_file(cls, path: str | Path) -> OfficeHours:
        """Raises ValueError, naming the file and what to fix, when the file is malformed."""
        path = Path(path)
        try:
            with path.open(encoding="utf-8") as handle:
                data = yaml.load(handle, Loader=_DatesAsText)  # a SafeLoader
        except yaml.YAMLError as error:
            raise ValueError(f"{path} is not valid YAML: {error}") from None
        try:
            return cls.from_mapping(data)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> OfficeHours:
        if not isinstance(data, Mapping):
            raise ValueError(
                "expected the settings timezone, weekly, holidays and extra_working_days"
            )
        unknown = sorted(set(map(str, data)) - SETTINGS)
        if unknown:
            settings = ", ".join(sorted(SETTINGS))
            raise ValueError(f"unknown setting {unknown[0]!r}; the settings are {settings}")
        for required in ("timezone", "weekly"):
            if required not in data:
                raise ValueError(f"{required} is missing")
        holidays = _dates(data.get("holidays"), "holidays")
        extra = _dates(data.get("extra_working_days"), "extra_working_days")
        both = sorted(holidays & extra)
        if both:
            raise ValueError(f"{both[0].isoformat()} is both a holiday and an extra working day")
        return cls(
            timezone=_zone(data["timezone"]),
            weekly=_weekly(data["weekly"]),
            holidays=holidays,
            extra_working_days=extra,
        )

    def is_open(self, at: datetime) -> bool:
        moment = _utc(at)
        day = at.astimezone(self.timezone).date()
        return any(
            start <= moment < end for start, end in self._openings(day - timedelta(days=1), day)
        )

    def next_opening(self, at: datetime) -> datetime:
        """`at` itself when open, else the start of the next span; ValueError if none within
        SEARCH_DAYS days, which only a schedule that is closed for two months can cause."""
        moment = _utc(at)
        day = at.astimezone(self.timezone).date()
        for start, end in self._openings(
            day - timedelta(days=1), day + timedelta(days=SEARCH_DAYS)
        ):
            if end > moment:
                return max(start, moment).astimezone(self.timezone)
        raise ValueError(
            f"the office does not open within {SEARCH_DAYS} days after "
            f"{at.astimezone(self.timezone):%Y-%m-%d %H:%M}; check weekly and holidays"
        )

    def open_time_between(self, start: datetime, end: datetime) -> timedelta:
        """The office-hours time from `start` to `end`, for SLA clocks; zero when end is not
        after start (a clock that runs backwards must not make a ticket look early)."""
        begin, finish = _utc(start), _utc(end)
        if finish <= begin:
            return timedelta(0)
        first = start.astimezone(self.timezone).date() - timedelta(days=1)
        last = end.astimezone(self.timezone).date()
        total = timedelta(0)
        for opens, closes in self._openings(first, last):
            overlap = min(closes, finish) - max(opens, begin)
            if overlap > timedelta(0):
                total += overlap
        return total

    def spans_on(self, day: date) -> tuple[Span, ...]:
        """The opening spans of a date: none on a holiday, Monday's on an extra working day."""
        if day in self.holidays:
            return ()
        if day in self.extra_working_days:
            return self.weekly[0]
        return self.weekly[day.weekday()]

    def _openings(self, first: date, last: date) -> Iterator[tuple[datetime, datetime]]:
        """Each opening from the date `first` to `last`, in order, as UTC instants (so that
        comparing and subtracting them is right even where clocks change)."""
        day = first
        while day <= last:
            midnight = datetime.combine(day, time(), tzinfo=self.timezone)
            for span in self.spans_on(day):
                yield _utc(midnight + span.start), _utc(midnight + span.end)
            day += timedelta(days=1)


class _DatesAsText(yaml.SafeLoader):
    """Leaves dates as text, so that 2026-02-30 gets our message rather than YAML's."""


_DatesAsText.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at} has no time zone; office hours need an aware datetime")
    return at.astimezone(UTC)


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r}: use a name such as Asia/Shanghai (if that one is refused "
            "too, this machine has no time zone data: install the tzdata package)"
        ) from None


def _weekly(weekly: Any) -> list[tuple[Span, ...]]:
    if not isinstance(weekly, Mapping):
        raise ValueError("weekly must list the days monday to sunday, each with its spans")
    days: dict[str, Any] = {}
    for key, spans in weekly.items():
        name = str(key).strip().lower()
        if name not in WEEKDAYS:
            raise ValueError(f"weekly: unknown weekday {key!r}; the days are {', '.join(WEEKDAYS)}")
        days[name] = spans
    result = []
    for name in WEEKDAYS:
        if name not in days:
            raise ValueError(
                f"weekly: {name} is missing; write `{name}: []` if the centre is closed then"
            )
        result.append(_day_spans(days[name], name))
    return result


def _day_spans(spans: Any, day: str) -> tuple[Span, ...]:
    if spans is None:  # `sunday:` with nothing after it
        return ()
    if isinstance(spans, str) or not isinstance(spans, Sequence):
        raise ValueError(
            f'weekly.{day}: expected a list of spans like ["09:00-12:00", "13:30-17:30"]'
        )
    parsed = sorted((_span(text, day) for text in spans), key=lambda span: span.start)
    for before, after in pairwise(parsed):
        if after.start < before.end:
            raise ValueError(f"weekly.{day}: the spans {_show(before)} and {_show(after)} overlap")
    return tuple(parsed)


def _span(text: Any, day: str) -> Span:
    match = _SPAN.fullmatch(str(text))
    problem = f'weekly.{day}: {str(text)!r} is not a span like "09:00-12:00"'
    if not match:
        raise ValueError(problem)
    start_hour, start_minute, end_hour, end_minute = map(int, match.groups())
    midnight_end = (end_hour, end_minute) == (24, 0)
    if (
        start_hour > 23
        or (end_hour > 23 and not midnight_end)
        or max(start_minute, end_minute) > 59
    ):
        raise ValueError(
            f"{problem} (hours go from 00 to 23, minutes from 00 to 59; 24:00 may end a span)"
        )
    span = Span(
        timedelta(hours=start_hour, minutes=start_minute),
        timedelta(hours=end_hour, minutes=end_minute),
    )
    if span.end <= span.start:
        raise ValueError(
            f"weekly.{day}: {str(text)!r} ends before it starts; write the opening time first"
        )
    return span


def _show(span: Span) -> str:
    def clock(offset: timedelta) -> str:
        minutes = int(offset.total_seconds()) // 60
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    return f"{clock(span.start)}-{clock(span.end)}"


def _dates(values: Any, setting: str) -> frozenset[date]:
    if values is None:
        return frozenset()
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"{setting} must be a list of dates like 2026-01-01")
    dates = set()
    for value in values:
        if isinstance(value, date) and not isinstance(value, datetime):
            dates.add(value)
            continue
        try:
            dates.add(date.fromisoformat(str(value).strip()))
        except ValueError as error:
            raise ValueError(
                f"{setting}: {str(value)!r} is not a date like 2026-01-01 ({error})"
            ) from None
    return frozenset(dates)
