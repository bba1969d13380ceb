"""Jobs: browse the live listings by district, trade and lowest pay, five to a page, open one
for all its details, and ask to be told about new ones like them; the week's job fairs and
where to live, from content/jobs.yaml.

Every answer works typed as well as pressed: the numbered choices by number or words, the
page buttons by their words ("next", "下一页"), a page by "page 3" or "第3页".
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date
from decimal import Decimal

from markupsafe import Markup

from content import jobs as jobs_content
from content.jobs import JobsContent
from db import jobs as listings
from db.jobs import JobFilter
from db.models import JobListing
from handlers.flow import NEXT, STAY, Flow, Outcome, Turn
from handlers.messages import Choice, Reply

jobs = Flow("jobs", commands=["jobs"])

PAGE_SIZE = 5
MAX_PAY = 100_000  # yuan a month a worker may ask for; more is a typing mistake
LABEL_TITLE_CHARS = 40  # a listing's title on its button
START_CHOICES = ("browse", "fairs", "housing", "alerts")
FILTERS = ("district", "trade", "pay_min", "page")
_PAY = re.compile(r"(\d+(?:\.\d+)?)(千|k|万|w)?(\d)?")  # 5000, 5.5千, 5k, 1万, 5千5 (= 5500)
_UNITS = {"千": 1000, "k": 1000, "万": 10_000, "w": 10_000}
_NOISE = re.compile(r"\s|,|元|块|¥|rmb|yuan|/月|/month|每月|月薪|以上|起")
_PAGE = re.compile(r"(?:page|p|第)\s*(\d{1,4})\s*页?|(\d{1,4})\s*页")


def content_of(turn: Turn) -> JobsContent:
    return jobs_content.load(turn.catalog.folder)


def today(turn: Turn) -> date:
    """The centre's date: a listing is shown until the end of its expiry day there."""
    return turn.now.astimezone(turn.catalog.office_hours.timezone).date()


def filters_of(data: dict) -> JobFilter:
    return JobFilter(data.get("district"), data.get("trade"), data.get("pay_min"))


def describe(turn: Turn, filters: JobFilter) -> Markup:
    """The filters in words, e.g. Yushan · Electronics assembly · from 5000 yuan a month,
    with "any …" for each unset, so the worker sees what was searched."""
    t = turn.t
    district = f"districts.{filters.district}" if filters.district else "jobs.filters.any_district"
    trade = f"jobs.trades.{filters.trade}" if filters.trade else "jobs.filters.any_trade"
    if filters.pay_min is None:
        pay = t("jobs.filters.any_pay")
    else:
        pay = t("jobs.filters.pay_from", pay=filters.pay_min)
    return Markup(" · ").join((t(district), t(trade), pay))


def _option(turn: Turn, key: str, *, numbered: bool = True) -> Choice:
    return turn.option(key, f"jobs.choices.{key}", numbered=numbered)


# -- the start: what the worker wants ---------------------------------------------------------


@jobs.step(
    "start",
    expects="choice",
    options=lambda turn: [_option(turn, key) for key in START_CHOICES],
)
async def start(turn: Turn) -> Outcome:
    """Starts a search, or answers the fairs and housing here and asks again."""
    if turn.choice == "browse":
        for key in FILTERS:
            turn.data.pop(key, None)
        return "district"
    if turn.choice == "fairs":
        say_fairs(turn)
        return "start"
    if turn.choice == "housing":
        turn.say("jobs.housing.text")
        if content_of(turn).housing_sample:
            turn.say("jobs.sample")
        return "start"
    return "alerts"


def say_fairs(turn: Turn) -> None:
    """The week's fairs in weekday order, marked as sample data where a venue is unverified."""
    content = content_of(turn)
    if not content.fairs:
        turn.say("jobs.fairs.none")
        return
    order = jobs_content.WEEKDAYS
    lines = [turn.t("jobs.fairs.title")]
    for fair in sorted(content.fairs, key=lambda fair: (order.index(fair.day), fair.hours)):
        lines.append(
            turn.t(
                "jobs.fairs.line",
                day=turn.t(f"weekdays.{fair.day}"),
                hours=fair.hours,
                venue=turn.t(f"jobs.venues.{fair.venue}.name"),
                address=turn.t(f"jobs.venues.{fair.venue}.address"),
            )
        )
    if content.fairs_sample:
        lines.append(turn.t("jobs.sample"))
    turn.replies.append(Reply("\n".join(str(line) for line in lines)))


# -- the filters ---------------------------------------------------------------------------------


@jobs.step(
    "district",
    expects="choice",
    options=lambda turn: [
        _option(turn, "any_district"),
        *(turn.option(d, f"districts.{d}") for d in turn.catalog.districts),
    ],
)
async def district(turn: Turn) -> Outcome:
    turn.data["district"] = None if turn.choice == "any_district" else turn.choice
    return NEXT


@jobs.step(
    "trade",
    expects="choice",
    options=lambda turn: [
        _option(turn, "any_trade"),
        *(turn.option(t, f"jobs.trades.{t}") for t in content_of(turn).trades),
    ],
)
async def trade(turn: Turn) -> Outcome:
    turn.data["trade"] = None if turn.choice == "any_trade" else turn.choice
    return NEXT


@jobs.step("pay", max_chars=30, extra=("skip",))
async def pay(turn: Turn) -> Outcome:
    """The lowest monthly pay wanted, or none; a pay that cannot be read is asked again."""
    if turn.choice == "skip":
        turn.data["pay_min"] = None
    else:
        value, problem = parse_monthly_pay(turn.text or "")
        if problem is not None:
            turn.say(f"jobs.pay.{problem}", maximum=MAX_PAY)
            return STAY
        turn.data["pay_min"] = value or None  # 0 is no lower bound
    turn.data["page"] = 0
    return NEXT


def parse_monthly_pay(text: str) -> tuple[int | None, str | None]:
    """Yuan a month as people type them: 5000, ５０００, 5,000元, 5千, 5.5k, 1万, 5千5.
    Returns (the pay, None) or (None, why not: not_a_number, negative, too_high)."""
    typed = _NOISE.sub("", unicodedata.normalize("NFKC", text).casefold())
    negative = typed.startswith("-")
    found = _PAY.fullmatch(typed.removeprefix("-"))
    if found is None or (found.group(3) and not found.group(2)):
        return None, "not_a_number"
    if negative:
        return None, "negative"
    number, unit, tail = found.groups()
    scale = _UNITS.get(unit or "", 1)
    value = Decimal(number) * scale + (Decimal(tail) * scale / 10 if tail else 0)
    if value > MAX_PAY:
        return None, "too_high"
    return int(value), None


# -- the results, a page at a time ----------------------------------------------------------------


async def ask_results(turn: Turn) -> Outcome | None:
    data = turn.data
    filters = filters_of(data)
    page = max(int(data.get("page", 0)), 0)
    total, found = await _page(turn, filters, page)
    if total == 0:
        data["listed"], data["pages"] = {}, 0
        turn.say("jobs.results.none", filters=describe(turn, filters))
        return None
    pages = math.ceil(total / PAGE_SIZE)
    if page >= pages:  # a page typed past the end, or listings expired since
        turn.say("jobs.results.past_end", pages=pages)
        page = pages - 1
        total, found = await _page(turn, filters, page)
    data["page"], data["pages"] = page, pages
    data["listed"] = {str(listing.id): _label(turn, listing) for listing in found}
    turn.say(
        "jobs.results.ask",
        total=total,
        filters=describe(turn, filters),
        page=page + 1,
        pages=pages,
    )
    return None


async def _page(turn: Turn, filters: JobFilter, page: int) -> tuple[int, list[JobListing]]:
    return await listings.search_listings(
        turn.session,
        filters=filters,
        today=today(turn),
        offset=page * PAGE_SIZE,
        limit=PAGE_SIZE,
    )


def _label(turn: Turn, listing: JobListing) -> str:
    """Plain text (the engine escapes it into the question; a button shows it as it is)."""
    title = listing.title
    if len(title) > LABEL_TITLE_CHARS:
        title = title[: LABEL_TITLE_CHARS - 1] + "…"
    district = turn.t(f"districts.{listing.district}").unescape()
    return f"{title} · {district} · {listing.pay_min}-{listing.pay_max}"


def results_options(turn: Turn) -> list[Choice]:
    data = turn.data
    listed = [Choice(key, label) for key, label in data.get("listed", {}).items()]
    if not listed:  # nothing matches: ways to widen the search, numbered
        widen = [
            _option(turn, key)
            for key, field in (
                ("any_district", "district"),
                ("any_trade", "trade"),
                ("any_pay", "pay_min"),
            )
            if data.get(field) is not None
        ]
        return [*widen, _option(turn, "subscribe"), _option(turn, "new_search")]
    page, pages = int(data.get("page", 0)), int(data.get("pages", 0))
    paging = []
    if page > 0:
        paging.append(_option(turn, "previous", numbered=False))
    if page + 1 < pages:
        paging.append(_option(turn, "next", numbered=False))
    return [
        *listed,
        *paging,
        _option(turn, "subscribe", numbered=False),
        _option(turn, "new_search", numbered=False),
    ]


@jobs.step("results", expects="choice", ask=ask_results, options=results_options, free=True)
async def results(turn: Turn) -> Outcome:
    """Opens a listing, turns the page, widens the search, or subscribes to it."""
    data, choice = turn.data, turn.choice
    if choice is None:
        return _typed_on_results(turn)
    if choice in data.get("listed", {}):
        data["listing_id"] = int(choice)
        return "detail"
    if choice in ("next", "previous"):
        data["page"] = int(data.get("page", 0)) + (1 if choice == "next" else -1)
        return "results"
    if choice in ("any_district", "any_trade", "any_pay"):
        data[{"any_district": "district", "any_trade": "trade"}.get(choice, "pay_min")] = None
        data["page"] = 0
        return "results"
    if choice == "subscribe":
        await subscribe(turn)
        return STAY
    return new_search(turn)


def _typed_on_results(turn: Turn) -> Outcome:
    """A page asked for by number ("page 3", "第3页"), or a number that is not on the page."""
    typed = unicodedata.normalize("NFKC", turn.text or "").casefold().strip()
    listed = turn.data.get("listed", {})
    wanted = _PAGE.fullmatch(typed)
    if wanted is not None and listed:
        turn.data["page"] = max(int(wanted.group(1) or wanted.group(2)) - 1, 0)
        return "results"  # the asker says so when it is past the end
    if typed.isdigit() and listed:
        turn.say("jobs.results.not_on_page", number=int(typed), count=len(listed))
        return STAY
    turn.say("jobs.results.not_understood" if listed else "common.not_a_choice")
    return STAY


def new_search(turn: Turn) -> Outcome:
    for key in FILTERS:
        turn.data.pop(key, None)
    return "district"


async def subscribe(turn: Turn) -> None:
    """The "tell me about new jobs like this" button: an alert with the current filters."""
    filters = filters_of(turn.data)
    limit = content_of(turn).subscriptions_per_person
    _, outcome = await listings.subscribe(
        turn.session, person_id=turn.person.id, filters=filters, now=turn.now, limit=limit
    )
    if outcome == "full":
        turn.say("jobs.too_many_subscriptions", limit=limit)
    else:
        key = "jobs.subscribed" if outcome == "added" else "jobs.already_subscribed"
        turn.say(key, filters=describe(turn, filters))


# -- one listing -----------------------------------------------------------------------------------


async def ask_detail(turn: Turn) -> Outcome | None:
    listing_id = turn.data.get("listing_id")
    listing = None
    if listing_id is not None:
        listing = await listings.live_listing(
            turn.session, listing_id=int(listing_id), today=today(turn)
        )
    if listing is None:
        turn.say("jobs.detail.gone")
        return "results"
    t = turn.t
    turn.say(
        "jobs.detail.text",
        title=listing.title,
        employer=listing.employer,
        district=t(f"districts.{listing.district}"),
        trade=t(f"jobs.trades.{listing.trade}"),
        pay_min=listing.pay_min,
        pay_max=listing.pay_max,
        hours=listing.hours or t("jobs.detail.unknown"),
        housing=t("jobs.detail.housing_yes" if listing.housing else "jobs.detail.housing_no"),
        contact=listing.contact,
        posted=listing.posted_at.astimezone(turn.catalog.office_hours.timezone).date().isoformat(),
        expires=listing.expires_on.isoformat(),
    )
    return None


@jobs.step(
    "detail",
    expects="choice",
    ask=ask_detail,
    options=lambda turn: [
        _option(turn, "back_to_list"),
        _option(turn, "subscribe"),
        _option(turn, "new_search"),
    ],
)
async def detail(turn: Turn) -> Outcome:
    if turn.choice == "back_to_list":
        return "results"
    if turn.choice == "subscribe":
        await subscribe(turn)
        return STAY
    return new_search(turn)


# -- the worker's alerts ------------------------------------------------------------------------


async def ask_alerts(turn: Turn) -> Outcome | None:
    mine = await listings.subscriptions_of(turn.session, person_id=turn.person.id)
    if not mine:
        turn.say("jobs.alerts.none")
        return "start"
    turn.data["alerts"] = {
        str(s.id): describe(turn, JobFilter(s.district, s.trade, s.pay_min)).unescape()
        for s in mine
    }
    turn.say("jobs.alerts.ask", count=len(mine))
    return None


@jobs.step(
    "alerts",
    expects="choice",
    ask=ask_alerts,
    options=lambda turn: [
        *(Choice(key, label) for key, label in turn.data.get("alerts", {}).items()),
        _option(turn, "stop_all"),
    ],
)
async def alerts(turn: Turn) -> Outcome:
    """Stops the chosen alert (or all of them) and shows what is left."""
    if turn.choice == "stop_all":
        await listings.unsubscribe(turn.session, person_id=turn.person.id)
        turn.say("jobs.alerts.all_stopped")
        return "start"
    await listings.unsubscribe(
        turn.session, person_id=turn.person.id, subscription_ids=[int(turn.choice)]
    )
    turn.say("jobs.alerts.stopped", filters=turn.data["alerts"][turn.choice])
    return "alerts"
