"""Office hours: when the centre answers, when it opens next, and how much SLA time has run."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from content.catalog import PACKAGED
from content.office_hours import OfficeHours

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEKDAY = ["09:00-12:00", "13:30-17:30"]


def schedule(**changes: Any) -> dict[str, Any]:
    """A week like the shipped one, with the 2026 Spring Festival and its extra working day."""
    data: dict[str, Any] = {
        "timezone": "Asia/Shanghai",
        "weekly": {
            "monday": WEEKDAY,
            "tuesday": WEEKDAY,
            "wednesday": WEEKDAY,
            "thursday": WEEKDAY,
            "friday": WEEKDAY,
            "saturday": ["09:00-12:00"],
            "sunday": [],
        },
        "holidays": ["2026-05-04"] + [f"2026-02-{day}" for day in range(15, 24)],
        "extra_working_days": ["2026-01-04", "2026-02-14"],
    }
    data.update(changes)
    return data


def local(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=SHANGHAI)


@pytest.fixture
def hours() -> OfficeHours:
    return OfficeHours.from_mapping(schedule())


# 2026-03-02 is a Monday; 2026-03-01 a Sunday, 2026-03-07 a Saturday.


@pytest.mark.parametrize(
    ("at", "open_"),
    [
        (local(2026, 3, 2, 8, 59, 59), False),
        (local(2026, 3, 2, 9, 0), True),
        (local(2026, 3, 2, 11, 59, 59), True),
        (local(2026, 3, 2, 12, 0), False),  # lunch break
        (local(2026, 3, 2, 13, 29), False),
        (local(2026, 3, 2, 13, 30), True),
        (local(2026, 3, 2, 17, 29, 59), True),
        (local(2026, 3, 2, 17, 30), False),
        (local(2026, 3, 7, 10, 0), True),  # Saturday morning
        (local(2026, 3, 7, 14, 0), False),  # Saturday afternoon
        (local(2026, 3, 1, 10, 0), False),  # Sunday
        (local(2026, 5, 4, 10, 0), False),  # a holiday on a Monday
        (local(2026, 2, 14, 14, 0), True),  # an extra working Saturday keeps Monday's hours
        (local(2026, 1, 4, 10, 0), True),  # an extra working Sunday
    ],
)
def test_is_open(hours: OfficeHours, at: datetime, open_: bool) -> None:
    assert hours.is_open(at) is open_


def test_next_opening_is_now_when_open(hours: OfficeHours) -> None:
    at = local(2026, 3, 2, 10, 15)
    assert hours.next_opening(at) == at


def test_next_opening_after_lunch_and_across_a_weekend(hours: OfficeHours) -> None:
    assert hours.next_opening(local(2026, 3, 2, 12, 15)) == local(2026, 3, 2, 13, 30)
    assert hours.next_opening(local(2026, 3, 6, 18, 0)) == local(2026, 3, 7, 9, 0)
    assert hours.next_opening(local(2026, 3, 7, 12, 0)) == local(2026, 3, 9, 9, 0)


def test_next_opening_across_the_spring_festival(hours: OfficeHours) -> None:
    assert hours.next_opening(local(2026, 2, 13, 18, 0)) == local(2026, 2, 14, 9, 0)
    assert hours.next_opening(local(2026, 2, 14, 17, 45)) == local(2026, 2, 24, 9, 0)


def test_next_opening_gives_up_when_the_office_never_opens() -> None:
    closed = OfficeHours.from_mapping(
        schedule(
            weekly={day: [] for day in schedule()["weekly"]},
            extra_working_days=[],
        )
    )
    with pytest.raises(ValueError, match="does not open within 60 days"):
        closed.next_opening(local(2026, 3, 2, 10, 0))


def test_open_time_between(hours: OfficeHours) -> None:
    within_a_span = hours.open_time_between(local(2026, 3, 2, 9, 30), local(2026, 3, 2, 10, 0))
    over_lunch = hours.open_time_between(local(2026, 3, 2, 11, 0), local(2026, 3, 2, 14, 0))
    over_a_night = hours.open_time_between(local(2026, 3, 2, 17, 0), local(2026, 3, 3, 10, 0))
    over_a_weekend = hours.open_time_between(local(2026, 3, 6, 17, 0), local(2026, 3, 9, 10, 0))
    assert within_a_span == timedelta(minutes=30)
    assert over_lunch == timedelta(hours=1, minutes=30)
    assert over_a_night == timedelta(hours=1, minutes=30)
    assert over_a_weekend == timedelta(minutes=30) + timedelta(hours=3) + timedelta(hours=1)
    assert hours.open_time_between(local(2026, 3, 7, 12, 0), local(2026, 3, 9, 9, 0)) == timedelta(
        0
    )


def test_open_time_between_is_zero_when_end_is_not_after_start(hours: OfficeHours) -> None:
    at = local(2026, 3, 2, 10, 0)
    assert hours.open_time_between(at, at) == timedelta(0)
    assert hours.open_time_between(at, at - timedelta(hours=1)) == timedelta(0)


def test_times_in_utc_are_read_in_the_office_time_zone(hours: OfficeHours) -> None:
    # 01:00 UTC is 09:00 in Shanghai; 23:30 UTC on Sunday is already Monday 07:30 there.
    assert hours.is_open(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 3, 2, 0, 59, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 3, 2, 4, 30, tzinfo=UTC))  # 12:30, lunch
    opening = hours.next_opening(datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    assert opening == local(2026, 3, 2, 9, 0)
    assert opening.tzinfo == SHANGHAI and opening.hour == 9
    now = hours.next_opening(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    assert (now.tzinfo, now.hour) == (SHANGHAI, 10)
    night = hours.open_time_between(
        datetime(2026, 3, 2, 9, 0, tzinfo=UTC), datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
    )
    assert night == timedelta(hours=1, minutes=30)  # 17:00 to 10:00 in Shanghai


def test_naive_times_are_refused(hours: OfficeHours) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        hours.is_open(datetime(2026, 3, 2, 10, 0))


def test_a_span_may_run_until_midnight() -> None:
    late = OfficeHours.from_mapping(
        schedule(weekly={**schedule()["weekly"], "monday": ["20:00-24:00"]})
    )
    assert late.is_open(local(2026, 3, 2, 23, 59))
    assert not late.is_open(local(2026, 3, 3, 0, 0))
    overnight = late.open_time_between(local(2026, 3, 2, 23, 0), local(2026, 3, 3, 9, 30))
    assert overnight == timedelta(hours=1, minutes=30)


def test_the_shipped_file_closes_for_the_spring_festival() -> None:
    shipped = OfficeHours.from_file(PACKAGED / "office_hours.yaml")
    assert shipped.timezone == SHANGHAI
    assert not any(shipped.is_open(local(2026, 2, day, 10, 0)) for day in range(15, 24))
    assert shipped.is_open(local(2026, 2, 14, 15, 0))
    assert shipped.next_opening(local(2026, 2, 14, 18, 0)) == local(2026, 2, 24, 9, 0)


def weekly_with(day: str, spans: Any) -> dict[str, Any]:
    return {**schedule()["weekly"], day: spans}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"weekly": weekly_with("monday", ["25:00-26:00"])},
            "weekly.monday: '25:00-26:00' is not a span",
        ),
        ({"weekly": weekly_with("monday", ["09:60-10:00"])}, "minutes from 00 to 59"),
        ({"weekly": weekly_with("monday", ["17:00-09:00"])}, "'17:00-09:00' ends before it starts"),
        ({"weekly": weekly_with("monday", ["9am-5pm"])}, "'9am-5pm' is not a span"),
        ({"weekly": weekly_with("monday", ["09:00-12:00", "11:00-14:00"])}, "overlap"),
        ({"weekly": weekly_with("monday", "09:00-12:00")}, "expected a list of spans"),
        ({"weekly": weekly_with("funday", [])}, "unknown weekday 'funday'"),
        (
            {"weekly": {k: v for k, v in schedule()["weekly"].items() if k != "sunday"}},
            "sunday is missing",
        ),
        ({"holidays": ["2026-02-30"]}, "holidays: '2026-02-30' is not a date"),
        ({"holidays": "2026-01-01"}, "holidays must be a list"),
        ({"holidays": ["2026-02-14"]}, "2026-02-14 is both a holiday and an extra working day"),
        ({"timezone": "Asia/Nowhere"}, "unknown timezone 'Asia/Nowhere'"),
        ({"holiday": ["2026-01-01"]}, "unknown setting 'holiday'"),
    ],
)
def test_malformed_settings_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        OfficeHours.from_mapping(schedule(**changes))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "timezone: Asia/Shanghai\nweekly: {monday: ['25:00-26:00']}\n",
            "'25:00-26:00' is not a span",
        ),
        (
            "timezone: Asia/Shanghai\nweekly: {monday: [], tuesday: [], wednesday: [],"
            " thursday: [], friday: [], saturday: [], sunday: []}\nholidays:\n  - 2026-02-30\n",
            "holidays: '2026-02-30' is not a date",
        ),
        ("timezone: [unclosed\n", "is not valid YAML"),
    ],
)
def test_malformed_files_are_refused_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "office_hours.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        OfficeHours.from_file(path)
    assert str(path) in str(error.value)
