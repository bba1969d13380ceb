"""/stats in the staff group: the hotline's figures over a period, for coordinators and admins,
as `hotline stats` prints them on the server (db/stats.py says what each figure means).

`/stats` covers the last 30 days, `/stats 2026-01-01` from that day to today, `/stats
2026-01-01 2026-03-31` those days; local dates of the centre, both included. The answer is a
chart (handlers/stats_chart.py) captioned with the period, then the figures as text.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING

from markupsafe import Markup

from content.catalog import Catalog, Translator
from db import stats
from db.models import StaffRole
from handlers.messages import Photo, Reply
from handlers.stats_chart import ChartLabels, MissingGlyphs, chart_font, draw_chart

if TYPE_CHECKING:  # handlers/staff.py imports this module to dispatch /stats
    from handlers.staff import StaffTurn

log = logging.getLogger(__name__)
MANAGERS = (StaffRole.COORDINATOR, StaffRole.ADMIN)


async def stats_command(turn: StaffTurn) -> None:
    """/stats [FIRST [LAST]], for coordinators and admins only."""
    if turn.staff.role not in MANAGERS:
        turn.say("stats.coordinators_only")
        return
    hours = turn.catalog.office_hours
    words = (turn.inbound.text or "").split()
    first, last = stats.default_period(turn.now, timezone=hours.timezone)
    if len(words) > 2:
        turn.say("stats.usage")
        return
    days = []
    for word in words:
        try:
            days.append(date.fromisoformat(word))
        except ValueError:
            turn.replies.append(
                Reply(f"{turn.t('stats.bad_date', text=word)}\n{turn.t('stats.usage')}")
            )
            return
    if days:
        first = days[0]
        last = days[1] if len(days) == 2 else last
    if first > last:
        turn.say("stats.backwards", first=first.isoformat(), last=last.isoformat())
        return
    figures = await stats.figures(
        turn.session,
        first=first,
        last=last,
        hours=hours,
        now=turn.now,
        sla=turn.sla or stats.DEFAULT_SLA,
    )
    text = figures_text(turn.t, figures)
    png = await chart(turn.catalog, turn.t, figures) if figures.tickets.total else None
    if png is None:
        if figures.tickets.total:
            text = f"{text}\n\n{turn.t('stats.no_chart')}"
        turn.replies.append(Reply(text))
        return
    caption = turn.t("stats.caption", first=first.isoformat(), last=last.isoformat())
    turn.replies.append(Reply(str(caption), photo=Photo(png=png)))
    turn.replies.append(Reply(text))


async def chart(catalog: Catalog, t: Translator, figures: stats.Figures) -> bytes | None:
    """The chart's PNG, drawn in a thread (the bot goes on meanwhile): in the staff's language
    when a Chinese font is there, else in English; None when it cannot be drawn at all."""
    font = await asyncio.to_thread(chart_font)
    attempts = [(t, font.family)] if font is not None else []
    if "en" in catalog.languages and t.language != "en":
        attempts.append((catalog.translator("en"), None))
    elif t.language == "en" and font is None:
        attempts.append((t, None))
    for labels_t, family in attempts:
        labels = chart_labels(labels_t, catalog)
        try:
            return await asyncio.to_thread(draw_chart, figures.tickets, labels, font=family)
        except MissingGlyphs as missing:
            log.warning("the /stats chart's font lacks %s: drawn in English instead", missing)
    return None


def chart_labels(t: Translator, catalog: Catalog) -> ChartLabels:
    categories = {c.key: str(t(f"categories.{c.key}")) for c in catalog.categories}
    categories[stats.NONE] = str(t("stats.no_category"))
    return ChartLabels(
        weekly_title=str(t("stats.chart.weekly_title")),
        week_axis=str(t("stats.chart.week_axis")),
        tickets_axis=str(t("stats.chart.tickets_axis")),
        resolution_title=str(t("stats.chart.resolution_title")),
        hours_axis=str(t("stats.chart.hours_axis")),
        days_axis=str(t("stats.chart.days_axis")),
        nothing_resolved=str(t("stats.chart.nothing_resolved")),
        categories=categories,
    )


def figures_text(t: Translator, figures: stats.Figures) -> str:
    """The figures as the staff read them (HTML, labels in their language)."""
    tickets = figures.tickets
    lines = [t("stats.title", first=figures.first.isoformat(), last=figures.last.isoformat())]
    if not tickets.total:
        lines.append(t("stats.no_tickets"))
    else:
        lines.append(t("stats.tickets", total=tickets.total))
        for key, counts, prefix in (
            ("by_status", tickets.by_status, "stats.statuses"),
            ("by_kind", tickets.by_kind, "kinds"),
            ("by_category", tickets.by_category, "categories"),
            ("by_district", tickets.by_district, "districts"),
        ):
            items = [
                t("stats.item", label=_label(t, prefix, name), count=count)
                for name, count in counts.items()
            ]
            lines.append(t(f"stats.{key}", list=t("stats.separator").join(items)))
        lines.append(
            t("stats.resolved", count=tickets.resolved, rate=_share(tickets.resolution_rate))
        )
    for key, durations in (
        ("first_reply", tickets.first_reply),
        ("resolution", tickets.resolution),
    ):
        if durations.count:
            lines.append(
                t(
                    f"stats.{key}",
                    count=durations.count,
                    office=_duration(t, durations.median_office),
                    calendar=_duration(t, durations.median_calendar),
                )
            )
        elif tickets.total:
            lines.append(t(f"stats.no_{key}"))
    if tickets.total:
        minutes = int(tickets.sla.total_seconds() // 60)
        lines.append(t("stats.sla", count=tickets.sla_breaches, minutes=minutes))
        feedback = tickets.satisfaction
        if feedback.answers or feedback.ratings:
            mean = f"{feedback.mean_rating:.1f}" if feedback.mean_rating is not None else "—"
            lines.append(
                t(
                    "stats.satisfaction",
                    answers=feedback.answers,
                    solved=feedback.solved,
                    share=_share(feedback.solved_share),
                    ratings=feedback.ratings,
                    mean=mean,
                )
            )
        else:
            lines.append(t("stats.no_feedback"))
    lines.append(_broadcasts(t, figures.broadcasts))
    workers = figures.workers
    lines.append(t("stats.workers", new=workers.new, active=workers.active))
    return str(Markup("\n").join(lines))


def _broadcasts(t: Translator, broadcasts: stats.BroadcastFigures) -> Markup:
    if not broadcasts.broadcasts:
        return t("stats.no_broadcasts")
    d = broadcasts.deliveries
    return t(
        "stats.broadcasts",
        count=len(broadcasts.broadcasts),
        recipients=broadcasts.recipients,
        sent=d["sent"],
        rate=_share(broadcasts.delivery_rate),
        failed=d["failed"],
        blocked=d["blocked"],
        unknown=d["unknown"],
        waiting=d["pending"] + d["sending"],
    )


def _label(t: Translator, prefix: str, key: str) -> Markup | str:
    """A key's label; a key the catalogue does not know (a centre's old category) is shown
    as it is (escaped where it is used), a missing one as "not given"."""
    if key == stats.NONE:
        return t("stats.none")
    full = f"{prefix}.{key}"
    return t(full) if full in t.catalog.keys(t.language) else key


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _duration(t: Translator, delta: timedelta | None) -> Markup | str:
    """Whole minutes under an hour, hours and minutes under two days, then days and hours."""
    if delta is None:
        return "—"
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return t("stats.minutes", n=minutes)
    if minutes < 48 * 60:
        return t("stats.hours", hours=minutes // 60, minutes=minutes % 60)
    return t("stats.days", days=minutes // (24 * 60), hours=minutes % (24 * 60) // 60)
