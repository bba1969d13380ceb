"""Broadcast benchmark: one notice to N subscribers at a raised ceiling, with workers talking
to the bot meanwhile.

Run from the repository root:

    .venv/bin/python bench/broadcast.py [--subscribers 100000] [--ceiling 1000]
        [--database URL] [--kill-halfway] [--talkers 5]

N subscribers are written straight into a fresh database; the local Bot API server runs in
this process with Telegram's limits except the bot's overall one, raised to --ceiling a
second (as for paid broadcasts), and knows every subscriber. The hotline runs as `hotline
run` does, in a process of its own, with HOTLINE_MAX_SENDS_PER_SECOND and
HOTLINE_BROADCAST_PER_SECOND at the ceiling. `hotline broadcast send` schedules the notice.

Measured: the achieved rate from the first notice to the last, as a share of the ceiling (the
reference, enforced by the server in this same run; target >= 0.95); 429s the server
answered; duplicates (target 0) and subscribers who got nothing; the hotline's peak RSS
(VmHWM, target <= 150 MB) per run; and the reply time of --talkers workers who use the bot
during the broadcast (send to reply, p50/p95, target p95 <= 1 s). With --kill-halfway the
hotline is killed (SIGKILL) when half the notices are out and started again at once: the
figures then include what the restart reported as unknown. Figures go to
bench/results/broadcast.json. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dtm
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from surge import STAFF_CHAT, HotlineProcess  # noqa: E402  (bench/ is a folder of scripts)
from throughput import (  # noqa: E402
    REPO,
    RESULTS,
    _percentile,
    hotline_database,
    machine_busy_now,
    source_version,
)

SUBSCRIBER_BASE = 500_000_000
TALKER_BASE = 900_000_000
TEXT_ZH, TEXT_EN = (
    "📣 下周一起开展欠薪专项行动，有问题请来服务中心。",
    "📣 The wage campaign starts Monday.",
)
TARGET_SHARE, TARGET_RSS_MB, TARGET_P95 = 0.95, 150.0, 1.0
DONE_MARGIN = 120.0  # seconds beyond the ideal time before giving up
PROGRESS_SECONDS = 15.0


async def add_subscribers(url: str, count: int) -> None:
    """Workers who chose a language (four in five Chinese) and never stopped notices."""
    from sqlalchemy import insert

    from db.models import Person, utcnow
    from db.session import create_engine, session_factory

    engine = create_engine(url)
    now = utcnow()
    try:
        async with session_factory(engine)() as session, session.begin():
            for start in range(0, count, 5000):
                await session.exec(
                    insert(Person),
                    params=[
                        {
                            "channel": "telegram",
                            "external_id": str(SUBSCRIBER_BASE + n),
                            "language": "en" if n % 5 == 4 else "zh",
                            "created_at": now,
                        }
                        for n in range(start, min(count, start + 5000))
                    ],
                )
    finally:
        await engine.dispose()


async def delivery_counts(url: str) -> dict[str, int]:
    from sqlalchemy import func
    from sqlmodel import select

    from db.models import BroadcastDelivery
    from db.session import create_engine, session_factory

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.exec(
                select(BroadcastDelivery.status, func.count()).group_by(BroadcastDelivery.status)
            )
            return dict(rows.all())
    finally:
        await engine.dispose()


async def broadcast_done(url: str) -> bool:
    from sqlmodel import select

    from db.models import Broadcast, BroadcastStatus
    from db.session import create_engine, session_factory

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            statuses = (await session.exec(select(Broadcast.status))).all()
            return bool(statuses) and all(s == BroadcastStatus.DONE for s in statuses)
    finally:
        await engine.dispose()


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), while it is alive."""
    with contextlib.suppress(OSError, ValueError):
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return None


def hotline_cli(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TELEGRAM_"))}
    env.update(DATABASE_URL=url, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=120
    )


class Talkers:
    """Workers using the bot while the broadcast goes: /start, a language, then /help again
    and again, a second or two apart; each wait from send to reply is kept."""

    def __init__(self, api, count: int) -> None:
        self.users = [api.user(TALKER_BASE + n, f"工友{n}") for n in range(count)]
        self.waits: list[float] = []
        self.timeouts = 0
        self.measuring = False

    async def talk(self, user) -> None:
        with contextlib.suppress(TimeoutError):
            user.send("/start")
            await user.quiet(0.5)
            user.send("1")  # 中文
            await user.quiet(0.5)
        while True:
            await user.quiet(0.05)  # nothing left over from the last answer
            sent = time.monotonic()
            user.send("/help")
            try:
                await user.next_message(timeout=10)
            except (TimeoutError, AssertionError):
                self.timeouts += self.measuring
                continue
            if self.measuring:
                self.waits.append(time.monotonic() - sent)
            await asyncio.sleep(random.uniform(1.0, 2.0))


async def run(args) -> int:
    from local_servers.telegram import LocalBotApi, TelegramLimits

    busy = await machine_busy_now()
    report: dict = {
        "when": dtm.datetime.now(dtm.UTC).isoformat(timespec="seconds"),
        "subscribers": args.subscribers,
        "ceiling_per_second": args.ceiling,
        "kill_halfway": args.kill_halfway,
        "machine_busy_before_pct": round(busy, 1),
        "cpus": os.cpu_count(),
        **source_version(),
    }
    n = args.subscribers
    with tempfile.TemporaryDirectory(prefix="hotline-broadcast-") as folder:
        async with (
            hotline_database(args.database) as (url, description),
            LocalBotApi(limits=TelegramLimits(overall_per_second=args.ceiling)) as api,
        ):
            report["database"] = description
            if url.startswith("sqlite"):
                upgraded = hotline_cli(url, "db", "upgrade")
                assert upgraded.returncode == 0, upgraded.stderr
            began = time.monotonic()
            await add_subscribers(url, n)
            for k in range(n):
                api.user(SUBSCRIBER_BASE + k, language_code="en" if k % 5 == 4 else "zh-hans")
            report["setup_seconds"] = round(time.monotonic() - began, 1)
            api.forum(STAFF_CHAT, "Hotline staff")
            arrivals: list[float] = []
            per_chat: Counter[int] = Counter()

            def on_send(params: dict, result: dict | None) -> None:
                chat = int(params.get("chat_id", 0))
                if result is not None and SUBSCRIBER_BASE <= chat < SUBSCRIBER_BASE + n:
                    arrivals.append(time.monotonic())
                    per_chat[chat] += 1

            api.on_call("sendMessage", on_send)
            ceiling = str(args.ceiling)
            hotline = HotlineProcess(
                api,
                url,
                Path(folder),
                settings={
                    "HOTLINE_MAX_SENDS_PER_SECOND": ceiling,
                    "HOTLINE_BROADCAST_PER_SECOND": ceiling,
                },
            )
            await hotline.start()
            report["idle_rss_mb"] = peak_rss_mb(hotline.process.pid)  # the reference
            talkers = Talkers(api, args.talkers)
            talking = [asyncio.create_task(talkers.talk(u)) for u in talkers.users]
            await asyncio.sleep(3)  # the talkers are at the menu: their replies are measured
            scheduled = hotline_cli(
                url, "broadcast", "send", "--text-zh", TEXT_ZH, "--text-en", TEXT_EN
            )
            print(scheduled.stdout.strip() or scheduled.stderr.strip(), flush=True)
            talkers.measuring = True
            scheduled_at = time.monotonic()
            harness_cpu = time.process_time()  # this process: the server, the subscribers
            rss: list[float | None] = []
            killed = None
            deadline = scheduled_at + n / args.ceiling + DONE_MARGIN
            next_progress = scheduled_at + PROGRESS_SECONDS
            try:
                while len(per_chat) < n and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    if len(arrivals) >= n - 100 and await broadcast_done(url):
                        break  # the rest ended unknown or failed: nothing more will come
                    if args.kill_halfway and killed is None and len(arrivals) >= n // 2:
                        rss.append(peak_rss_mb(hotline.process.pid))
                        hotline.kill()
                        killed = {"at_notices": len(arrivals), "after": time.monotonic()}
                        killed["restart_seconds"] = round(await hotline.start(), 2)
                        print(f"kill -9 at {killed['at_notices']} notices; restarted", flush=True)
                    if time.monotonic() >= next_progress:
                        next_progress += PROGRESS_SECONDS
                        elapsed = time.monotonic() - scheduled_at
                        print(f"[+{elapsed:4.0f} s] notices {len(arrivals)}/{n}", flush=True)
                await asyncio.sleep(3.0)  # a late duplicate would come now
                talkers.measuring = False
                rss.append(peak_rss_mb(hotline.process.pid))
                report["hotline_cpu_seconds_last_run"] = round(hotline.cpu_seconds(), 1)
                report["harness_cpu_seconds"] = round(time.process_time() - harness_cpu, 1)
            finally:
                for task in talking:
                    task.cancel()
                report["exit_code"] = await hotline.stop()
                report["logs"] = hotline.logs()
            report["deliveries"] = await delivery_counts(url)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    rate = (len(arrivals) - 1) / span if span else 0.0
    waits = sorted(talkers.waits)
    report.update(
        notices=len(arrivals),
        recipients_reached=len(per_chat),
        missing=n - len(per_chat),
        duplicates=sum(c - 1 for c in per_chat.values() if c > 1),
        first_notice_after_schedule=round(arrivals[0] - scheduled_at, 2) if arrivals else None,
        span_seconds=round(span, 1),
        rate_per_second=round(rate, 1),
        share_of_ceiling=round(rate / args.ceiling, 3),
        refused_429=len(api.rate_limited),
        peak_rss_mb=[round(r, 1) if r else None for r in rss],
        talker_replies=len(waits),
        talker_timeouts=talkers.timeouts,
        talker_p50=round(_percentile(waits, 50), 3),
        talker_p95=round(_percentile(waits, 95), 3),
        talker_max=round(waits[-1], 3) if waits else None,
        kill=killed,
    )
    print_summary(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "broadcast.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    return 0


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_summary(r: dict) -> None:
    print()
    print(
        f"broadcast to {r['subscribers']:,} subscribers, {r['database']}, "
        f"ceiling {r['ceiling_per_second']}/s" + (", kill -9 halfway" if r["kill_halfway"] else "")
    )
    share = r["share_of_ceiling"]
    print(
        f"rate: {r['rate_per_second']}/s over {r['span_seconds']} s = {share} of the ceiling "
        f"(target >= {TARGET_SHARE}, {_met(share >= TARGET_SHARE)}); first notice "
        f"{r['first_notice_after_schedule']} s after scheduling"
    )
    print(
        f"delivered to {r['recipients_reached']:,}; missing {r['missing']}; duplicates "
        f"{r['duplicates']} (target 0, {_met(r['duplicates'] == 0)}); 429s {r['refused_429']}; "
        f"deliveries in the database {r['deliveries']}"
    )
    peak = max((m for m in r["peak_rss_mb"] if m), default=0.0)
    print(
        f"peak RSS per run (MB): {r['peak_rss_mb']} (target <= {TARGET_RSS_MB:.0f}, "
        f"{_met(peak <= TARGET_RSS_MB)}); started and idle: {r['idle_rss_mb']} MB"
    )
    print(
        f"talkers during it: {r['talker_replies']} replies, p50 {r['talker_p50']} s, p95 "
        f"{r['talker_p95']} s (target <= {TARGET_P95}, {_met(r['talker_p95'] <= TARGET_P95)}), "
        f"max {r['talker_max']} s, {r['talker_timeouts']} timed out"
    )
    cpu = r["hotline_cpu_seconds_last_run"]
    print(
        f"CPU over the {r['span_seconds']} s span: the hotline (last run) {cpu} s, this "
        f"process (the Bot API server, subscribers, talkers) {r['harness_cpu_seconds']} s"
    )
    if r["kill"]:
        print(
            f"kill -9 at {r['kill']['at_notices']:,} notices, restarted in "
            f"{r['kill']['restart_seconds']} s; unknown: {r['deliveries'].get('unknown', 0)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument(
        "--ceiling", type=int, default=1000, help="the bot's overall limit a second"
    )
    parser.add_argument("--database", default=None, help="DATABASE_URL (default: a SQLite file)")
    parser.add_argument("--kill-halfway", action="store_true")
    parser.add_argument("--talkers", type=int, default=5)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
