"""Figures (/stats in the staff group, `hotline stats`): exact figures on a known data set, on
SQLite and PostgreSQL; the chart is a PNG in Chinese with no glyph missing; the CSV is safe
for spreadsheets; counsellors, bad dates and backwards periods are refused."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.stats_admin import CSV_HEADER, csv_rows, spreadsheet_safe, write_csv
from content.catalog import Catalog
from db import stats
from db.models import (
    Broadcast,
    BroadcastDelivery,
    Direction,
    Person,
    Ticket,
    TicketEvent,
    TicketMessage,
)
from db.session import create_engine, session_factory
from handlers import staff_stats
from handlers.stats_chart import MissingGlyphs, chart_font, draw_chart
from tests.desk import COORDINATOR_WU, COUNSELLOR_LI, start_desk
from tests.test_cli import hotline as run_cli

SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRST, LAST = date(2026, 3, 2), date(2026, 3, 15)  # Monday to Sunday, two weeks
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # the bot tests' clock (tests/conftest.py)
BAD_DISTRICT = '=HYPERLINK("http://x.cn")'


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


async def load_dataset(sessions) -> None:
    """Nine people, ten tickets (eight opened in the period), four broadcasts (two started in
    it). The figures each makes are worked out in the comments; the office is open 09:00-12:00
    and 13:30-17:30 on weekdays, 09:00-12:00 on Saturdays (content/office_hours.yaml)."""
    async with sessions() as session, session.begin():
        people = {}
        for n, created in {
            1: local(2, 20, 10),
            2: local(3, 5, 10),  # new in the period
            3: local(3, 7, 10),  # new
            4: local(1, 10, 10),
            5: local(3, 13, 8),  # new
            6: local(3, 15, 23, 0),  # new
            7: local(2, 1, 10),  # active only by a message in the period
            8: local(3, 12, 10),  # new, never opened a ticket: not active
            9: local(3, 16, 0),  # just after the period
        }.items():
            person = Person(channel="telegram", external_id=str(9000 + n), created_at=created)
            session.add(person)
            people[n] = person
        await session.flush()
        count = iter(range(1, 100))

        async def ticket(person, created, *, status, kind="complaint", category, district, **kw):
            row = Ticket(
                reference=f"HL-2026-{next(count):06d}",
                kind=kind,
                category=category,
                district=district,
                status=status,
                person_id=people[person].id,
                language="zh",
                created_at=created,
                updated_at=created,
                **kw,
            )
            session.add(row)
            await session.flush()
            session.add(
                TicketEvent(ticket_id=row.id, actor="worker", to_status="new", created_at=created)
            )
            return row

        def events(row, *changes):
            for at, from_status, to_status in changes:
                session.add(
                    TicketEvent(
                        ticket_id=row.id,
                        actor="Counsellor Li",
                        from_status=from_status,
                        to_status=to_status,
                        created_at=at,
                    )
                )

        def message(row, at, direction=Direction.TO_WORKER):
            session.add(
                TicketMessage(
                    ticket_id=row.id, direction=direction, author="x", text="…", created_at=at
                )
            )

        # T1: claimed after 10 min, answered after 20, resolved the next day at 10:00
        # (25 h, 8 office hours); solved, rated 5.
        t1 = await ticket(
            1, local(3, 2, 9), status="resolved", category="unpaid_wages", district="yushan",
            solved=True, rating=5,
        )  # fmt: skip
        message(t1, local(3, 2, 9, 5), Direction.FROM_WORKER)
        message(t1, local(3, 2, 9, 20))
        events(t1, (local(3, 2, 9, 10), "new", "claimed"), (local(3, 3, 10), "claimed", "resolved"))
        # T2: claimed after 20 office minutes (lunch in between), a note (not a reply), the
        # answer 25 office minutes / 115 minutes in; referred on Wednesday 09:30 (700 office
        # minutes, 45 h 40 min), then closed: still a resolution.
        t2 = await ticket(
            1, local(3, 2, 11, 50), status="closed", category="work_injury", district="zhoushi"
        )
        message(t2, local(3, 2, 12), Direction.NOTE)
        message(t2, local(3, 2, 13, 45))
        events(
            t2,
            (local(3, 2, 13, 40), "new", "claimed"),
            (local(3, 4, 9, 30), "claimed", "referred"),
            (local(3, 4, 10), "referred", "closed"),
        )
        # T3: never claimed (an SLA breach), a district a spreadsheet would run as a formula.
        await ticket(
            2, local(3, 6, 17), status="new", category="unpaid_wages", district=BAD_DISTRICT
        )
        # T4: a conversation opened on Saturday 11:00, claimed Monday 09:40: 100 office
        # minutes (a breach); answered at 09:45 (105 office minutes, 2805 in all); waiting.
        t4 = await ticket(
            3, local(3, 7, 11), status="waiting", kind="talk", category=None, district=None
        )
        message(t4, local(3, 9, 9, 45))
        events(
            t4, (local(3, 9, 9, 40), "new", "claimed"), (local(3, 9, 9, 45), "claimed", "waiting")
        )
        # T5: withdrawn by the worker after 20 minutes.
        t5 = await ticket(
            4, local(3, 10, 14), status="withdrawn", category="dismissal", district="yushan"
        )
        events(t5, (local(3, 10, 14, 20), "new", "withdrawn"))
        # T6: legal aid, claimed after exactly the SLA (30 min: a breach), answered after 60,
        # resolved at 15:00 (210 office minutes, 300 in all), closed the next morning;
        # not solved, rated 3.
        t6 = await ticket(
            4, local(3, 11, 10), status="closed", kind="legal_aid", category="contract",
            district="yushan", solved=False, rating=3,
        )  # fmt: skip
        message(t6, local(3, 11, 11))
        events(
            t6,
            (local(3, 11, 10, 30), "new", "claimed"),
            (local(3, 11, 15), "claimed", "resolved"),
            (local(3, 12, 9), "resolved", "closed"),
        )
        # T7: resolved in 30 minutes, then reopened by the worker: not a resolution now, but
        # its time to resolution counts.
        t7 = await ticket(
            5, local(3, 13, 9), status="claimed", category="overtime", district="lujia"
        )
        message(t7, local(3, 13, 9, 10))
        events(
            t7,
            (local(3, 13, 9, 5), "new", "claimed"),
            (local(3, 13, 9, 30), "claimed", "resolved"),
            (local(3, 14, 10), "resolved", "claimed"),
        )
        # T9: the last evening of the period, still waiting (a breach).
        await ticket(6, local(3, 15, 23, 30), status="new", category="other", district="other")
        # Outside the period: a minute before it and at its end (00:00 of the day after);
        # a worker's message on the first, in the period, makes its worker active.
        t0 = await ticket(
            7, local(3, 1, 23, 59), status="new", category="housing", district="jinxi"
        )
        message(t0, local(3, 10, 12), Direction.FROM_WORKER)
        t8 = await ticket(9, local(3, 16, 0), status="new", category="housing", district="jinxi")
        message(t8, local(3, 16, 1), Direction.FROM_WORKER)

        # Broadcasts: two started in the period (5 + 4 deliveries), one just after, a draft.
        for started, statuses in (
            (local(3, 3, 10), ["sent", "sent", "sent", "failed", "blocked"]),
            (local(3, 12, 16), ["sent", "sent", "unknown", "pending"]),
            (local(3, 16, 1), ["sent"] * 5),
            (None, []),
        ):
            notice = Broadcast(
                status="done" if started else "draft",
                created_by="Coordinator Wu",
                texts={"zh": "通知"},
                started_at=started,
                recipients=len(statuses),
            )
            session.add(notice)
            await session.flush()
            for n, status in enumerate(statuses, start=1):
                session.add(
                    BroadcastDelivery(
                        broadcast_id=notice.id, person_id=people[n].id, language="zh", status=status
                    )
                )


async def read_figures(sessions, catalog: Catalog) -> stats.Figures:
    async with sessions() as session:
        return await stats.figures(
            session, first=FIRST, last=LAST, hours=catalog.office_hours, now=NOW
        )


@pytest.fixture
async def sessions(database_url):
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


async def test_the_figures_of_a_known_data_set(sessions, catalog) -> None:
    await load_dataset(sessions)
    figures = await read_figures(sessions, catalog)
    tickets = figures.tickets
    assert tickets.total == 8
    assert tickets.by_status == {
        "closed": 2, "new": 2, "claimed": 1, "resolved": 1, "waiting": 1, "withdrawn": 1,
    }  # fmt: skip
    assert tickets.by_kind == {"complaint": 6, "legal_aid": 1, "talk": 1}
    assert tickets.by_category == {
        "unpaid_wages": 2, "contract": 1, "dismissal": 1, "none": 1, "other": 1, "overtime": 1,
        "work_injury": 1,
    }  # fmt: skip
    assert tickets.by_district == {
        "yushan": 3, BAD_DISTRICT: 1, "lujia": 1, "none": 1, "other": 1, "zhoushi": 1,
    }  # fmt: skip
    assert tickets.resolved == 3 and tickets.resolution_rate == 3 / 8  # T1, T2, T6
    # first replies: office 10, 20, 25, 60, 105; calendar 10, 20, 60, 115, 2805 minutes
    assert tickets.first_reply == stats.Durations(5, minutes(25), minutes(60))
    # resolutions: office 30, 210, 480, 700; calendar 30, 300, 1500, 2740 minutes
    assert tickets.resolution == stats.Durations(4, minutes(345), minutes(900))
    assert sorted(tickets.resolution_times) == [minutes(m) for m in (30, 300, 1500, 2740)]
    assert tickets.sla == timedelta(minutes=30) and tickets.sla_breaches == 4  # T3 T4 T6 T9
    assert tickets.satisfaction == stats.Satisfaction(answers=2, solved=1, ratings=2, mean_rating=4)
    assert tickets.satisfaction.solved_share == 0.5
    assert tickets.weeks == [
        stats.Week(date(2026, 3, 2), {"unpaid_wages": 2, "work_injury": 1, "none": 1}),
        stats.Week(date(2026, 3, 9), {"dismissal": 1, "contract": 1, "overtime": 1, "other": 1}),
    ]
    broadcasts = figures.broadcasts
    assert [b.deliveries for b in broadcasts.broadcasts] == [
        {"sent": 3, "failed": 1, "blocked": 1},
        {"sent": 2, "unknown": 1, "pending": 1},
    ]
    assert broadcasts.deliveries == {
        "pending": 1, "sending": 0, "sent": 5, "failed": 1, "blocked": 1, "unknown": 1,
    }  # fmt: skip
    assert broadcasts.recipients == 9 and broadcasts.delivery_rate == 5 / 9
    assert figures.workers == stats.WorkerFigures(new=5, active=7)

    # A longer SLA: only the tickets that waited longer breach it (T3, T4 and T9).
    async with sessions() as session:
        since, until = stats.period_bounds(FIRST, LAST, timezone=SHANGHAI)
        longer = await stats.ticket_figures(
            session, since=since, until=until, hours=catalog.office_hours, now=NOW, sla=minutes(60)
        )
    assert longer.sla_breaches == 3


async def test_an_empty_period_has_no_medians_and_no_rates(sessions, catalog) -> None:
    figures = await read_figures(sessions, catalog)
    assert figures.tickets.total == 0 and figures.tickets.resolution_rate is None
    assert figures.tickets.first_reply == stats.Durations(0, None, None)
    assert figures.tickets.satisfaction.mean_rating is None
    assert figures.broadcasts.delivery_rate is None
    assert [w.start for w in figures.tickets.weeks] == [date(2026, 3, 2), date(2026, 3, 9)]
    text = staff_stats.figures_text(catalog.translator("zh"), figures)
    assert "期间没有新开的工单" in text and "期间没有群发" in text


def test_periods_are_whole_local_days() -> None:
    since, until = stats.period_bounds(FIRST, LAST, timezone=SHANGHAI)
    assert since == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)  # 00:00 in Shanghai
    assert until == datetime(2026, 3, 15, 16, 0, tzinfo=UTC)  # the end of the 15th
    with pytest.raises(ValueError):
        stats.period_bounds(LAST, FIRST, timezone=SHANGHAI)
    first, last = stats.default_period(datetime(2026, 3, 31, 17, 0, tzinfo=UTC), timezone=SHANGHAI)
    assert (first, last) == (date(2026, 3, 3), date(2026, 4, 1))  # 30 days, today included


def test_what_counts_as_a_resolution() -> None:
    assert stats.is_resolution("resolved") and stats.is_resolution("referred")
    assert stats.is_resolution("closed", "resolved") and stats.is_resolution("closed", "referred")
    assert not stats.is_resolution("closed", "claimed") and not stats.is_resolution("withdrawn")
    assert not stats.is_resolution("claimed", "resolved")  # reopened


# The chart.


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def every_category_figures(catalog: Catalog) -> stats.TicketFigures:
    """Two weeks with a ticket of every category (and none), so every label is drawn."""
    keys = [c.key for c in catalog.categories] + [stats.NONE]
    return stats.TicketFigures(
        total=2 * len(keys),
        by_status={}, by_kind={}, by_category={}, by_district={}, resolved=0,
        first_reply=stats.Durations(0, None, None), resolution=stats.Durations(0, None, None),
        sla=stats.DEFAULT_SLA, sla_breaches=0,
        satisfaction=stats.Satisfaction(0, 0, 0, None),
        weeks=[stats.Week(date(2026, 3, 2), dict.fromkeys(keys, 1))] * 2,
        resolution_times=[minutes(m) for m in (30, 300, 1500, 2740, 9000)],
    )  # fmt: skip


def test_the_chart_has_every_chinese_label_with_no_glyph_missing(catalog) -> None:
    font = chart_font()
    assert font is not None, "no Chinese font: the packaged noto-cjk-sans-otc is missing"
    labels = staff_stats.chart_labels(catalog.translator("zh"), catalog)
    png = draw_chart(every_category_figures(catalog), labels, font=font.family)  # else raises
    assert 10_000 < len(png) < 1_000_000
    assert png_size(png) == (1000, 900)


def test_a_missing_glyph_is_an_error_not_a_box(catalog) -> None:
    labels = staff_stats.chart_labels(catalog.translator("zh"), catalog)
    with pytest.raises(MissingGlyphs) as missing:
        draw_chart(every_category_figures(catalog), labels, font=None)  # matplotlib's DejaVu
    assert "工" in missing.value.characters


async def test_without_a_chinese_font_the_chart_is_in_english(catalog, monkeypatch) -> None:
    monkeypatch.setattr(staff_stats, "chart_font", lambda: None)
    figures = stats.Figures(
        FIRST,
        LAST,
        every_category_figures(catalog),
        stats.BroadcastFigures([], {}),
        stats.WorkerFigures(0, 0),
    )
    png = await staff_stats.chart(catalog, catalog.translator("zh"), figures)
    english = staff_stats.chart_labels(catalog.translator("en"), catalog)
    assert png == draw_chart(figures.tickets, english, font=None)


# /stats in the staff group.


@pytest.fixture
async def desk(api, start_hotline):
    return await start_desk(api, start_hotline, COUNSELLOR_LI, COORDINATOR_WU)


async def test_stats_in_the_staff_group_sends_the_chart_and_the_figures(api, desk, caplog) -> None:
    hotline, forum = desk
    await load_dataset(hotline.sessions)
    wu = api.user(COORDINATOR_WU[0], "Wu")
    caplog.set_level(logging.WARNING, logger="handlers")
    forum.send(wu, "/stats 2026-03-02 2026-03-15")
    photo, text = await forum.next_messages(2, timeout=60)
    assert photo.kind == "photo" and photo.plain == "📊 热线统计：2026-03-02 至 2026-03-15"
    png = api.files.content(photo.media_file_id)
    assert 10_000 < len(png) < 1_000_000 and png_size(png) == (1000, 900)
    # the very chart drawn in Chinese with the Chinese font (draw_chart raises on a glyph
    # missing), not the English one drawn when the font lacks something
    figures = await read_figures(hotline.sessions, hotline.catalog)
    zh = staff_stats.chart_labels(hotline.catalog.translator("zh"), hotline.catalog)
    assert png == draw_chart(figures.tickets, zh, font=chart_font().family)
    assert not [r for r in caplog.records if "chart" in r.getMessage()]

    lines = text.plain.splitlines()
    assert lines[0] == "📊 热线统计：2026-03-02 至 2026-03-15（当地日期，含首尾）"
    assert lines[1:] == [
        "工单：期间新开 8 个",
        "• 现在的状态：已关闭 2、待认领 2、处理中 1、已解决 1、等工友回复 1、工友撤回 1",
        "• 种类：投诉 6、法律援助回电 1、咨询 1",
        "• 问题类型：拖欠工资 2、没签合同 / 合同纠纷 1、被辞退 1、未填写 1、其他 1、"
        "超时加班 1、工伤 1",
        f"• 区镇：玉山镇 3、{BAD_DISTRICT} 1、陆家镇 1、未填写 1、其他 / 不清楚 1、周市镇 1",
        "已解决：3 个（37.5%）",
        "首次回复用时（中位数，5 个工单）：按办公时间 25 分钟，按实际时间 1 小时 0 分钟",
        "解决用时（中位数，4 个工单）：按办公时间 5 小时 45 分钟，按实际时间 15 小时 0 分钟",
        "超时未认领：4 个（等待认领达到 30 分钟办公时间）",
        "工友反馈：2 人回答了问题是否解决，其中 1 人说解决了（50.0%）；评分 2 个，平均 4.0 分",
        "群发通知：2 条，共 9 人次；已送达 5（55.6%），失败 1，已屏蔽机器人 1，情况不明 1，"
        "还在发送 1",
        "工友：新来的 5 人；活跃的 7 人（期间提交过工单或在工单里发过消息）",
    ]  # fmt: skip


async def test_stats_refuses_counsellors_bad_dates_and_backwards_periods(api, desk) -> None:
    hotline, forum = desk
    li, wu = api.user(COUNSELLOR_LI[0], "Li"), api.user(COORDINATOR_WU[0], "Wu")
    forum.send(li, "/stats")
    assert (await forum.next_message()).plain == "只有协调员和管理员可以查看统计数据。"
    forum.send(wu, "/stats 2026-13-01")
    answer = (await forum.next_message()).plain
    assert answer.startswith("“2026-13-01”不是日期") and "用法：/stats" in answer
    forum.send(wu, "/stats 2026-03-15 2026-03-02")
    assert "开始日期 2026-03-15 在结束日期 2026-03-02 之后" in (await forum.next_message()).plain
    forum.send(wu, "/stats")  # the last 30 days: nothing happened, so no chart
    answer = await forum.next_message(timeout=30)
    assert answer.kind == "text" and "期间没有新开的工单" in answer.plain
    assert await forum.quiet(0.5) == []


# `hotline stats` and its CSV.


def spreadsheet_cells(*cells: str) -> list[str]:
    return [spreadsheet_safe(cell) for cell in cells]


def test_every_formula_start_is_neutralised() -> None:
    dangerous = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"]
    assert spreadsheet_cells(*dangerous) == ["'" + cell for cell in dangerous]
    assert spreadsheet_cells("yushan", "0.375", "", "a=b", "'quoted") == [
        "yushan", "0.375", "", "a=b", "'quoted",
    ]  # fmt: skip


def _stats_cli(database_url: str, *args: str):
    return run_cli("stats", *args, env={"DATABASE_URL": database_url})


async def test_hotline_stats_prints_the_figures_and_writes_a_safe_csv(
    database_url, sessions, tmp_path: Path
) -> None:
    await load_dataset(sessions)
    path = tmp_path / "figures.csv"
    result = await asyncio.to_thread(
        _stats_cli,
        database_url,
        "--since",
        "2026-03-02",
        "--until",
        "2026-03-15",
        "--csv",
        str(path),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.splitlines()[0] == (
        "Hotline figures 2026-03-02 to 2026-03-15 (local dates, both included)"
    )
    assert "tickets opened: 8" in out and "resolved: 3 (37.5%)" in out
    assert "time to first reply (median of 5): 25m office hours, 1h00m calendar" in out
    assert "time to resolution (median of 4): 5h45m office hours, 15h00m calendar" in out
    assert "unclaimed for 30 min of office hours or more: 4" in out
    assert "feedback: 1 of 2 said solved (50.0%); 2 rating(s), mean 4.0" in out
    assert "broadcasts: 2 to 9 recipient(s), delivered 55.6%" in out
    assert "workers: 5 new, 7 active" in out
    assert f"CSV written to {path}" in out

    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    assert tuple(rows[0]) == CSV_HEADER
    figures = {(section, key): value for section, key, value in rows[1:]}
    assert figures[("period", "first")] == "2026-03-02"
    assert figures[("tickets", "opened")] == "8"
    assert figures[("resolution", "rate")] == "0.375"
    assert figures[("first_reply", "median_office_minutes")] == "25"
    assert figures[("time_to_resolution", "median_calendar_minutes")] == "900"
    assert figures[("sla", "breaches")] == "4" and figures[("sla", "minutes")] == "30"
    assert figures[("satisfaction", "mean_rating")] == "4"
    assert figures[("broadcasts", "delivery_rate")] == "0.5556"
    assert figures[("workers", "active")] == "7"
    assert figures[("week", "2026-03-09/dismissal")] == "1"
    assert figures[("district", "'" + BAD_DISTRICT)] == "1"  # shown as text, not run
    assert ("district", BAD_DISTRICT) not in figures
    assert not [cell for row in rows for cell in row if cell[:1] in "=+-@\t\r"]


async def test_hotline_stats_refuses_a_backwards_period_and_an_unreadable_date(
    database_url,
) -> None:
    backwards = await asyncio.to_thread(
        _stats_cli, database_url, "--since", "2026-03-15", "--until", "2026-03-02"
    )
    assert backwards.returncode == 2 and backwards.stdout == ""
    assert backwards.stderr.strip() == (
        "hotline stats: --since 2026-03-15 is after --until 2026-03-02: the period would be empty"
    )
    unreadable = await asyncio.to_thread(_stats_cli, database_url, "--since", "1 March")
    assert unreadable.returncode == 2 and "Traceback" not in unreadable.stderr
    assert unreadable.stderr.strip() == "hotline stats: '1 March' is not a date like 2026-01-31"


def test_the_csv_of_an_empty_period_has_empty_values_not_errors(catalog) -> None:
    empty = stats.Figures(
        FIRST,
        LAST,
        stats.TicketFigures(
            total=0, by_status={}, by_kind={}, by_category={}, by_district={}, resolved=0,
            first_reply=stats.Durations(0, None, None), resolution=stats.Durations(0, None, None),
            sla=stats.DEFAULT_SLA, sla_breaches=0, satisfaction=stats.Satisfaction(0, 0, 0, None),
            weeks=[],
        ),
        stats.BroadcastFigures([], {"sent": 0}),
        stats.WorkerFigures(0, 0),
    )  # fmt: skip
    out = io.StringIO()
    write_csv(empty, out)
    rows = dict(((s, k), v) for s, k, v in csv_rows(empty))
    assert rows[("resolution", "rate")] == "" and rows[("satisfaction", "mean_rating")] == ""
    assert out.getvalue().startswith("section,key,value\nperiod,first,2026-03-02\n")
