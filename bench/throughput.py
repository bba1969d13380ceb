"""Throughput benchmark: the hotline against a bare python-telegram-bot echo bot.

Run from the repository root:

    .venv/bin/python bench/throughput.py [--workers 100] [--seconds 20] [--database URL] [--profile]

Two bots are measured one after the other, each against a fresh local Bot API server
(local_servers/telegram) in a separate process, so the bot under test has its own process and core:

1. the reference: a bare python-telegram-bot Application (default Updater polling, one echo
   MessageHandler, sequential processing, no rate limiter);
2. the hotline: the real `Hotline` (SQLite file in a temp dir, or --database PostgreSQL), with
   the Telegram politeness limits raised so that they do not throttle the measurement.

N simulated workers live in the server process. Each sends a message and, as soon as the bot's
turn is complete (echo: the reply; hotline: the message that carries the inline keyboard),
answers the next one, walking the complaint flow over and over. They react inside the server's
sendMessage hook, so no polling or sleeping sits between a reply and the next message. The
server process timestamps each update when it is pushed and when its turn completes; after a
warm-up, every turn completed within the measured window counts as one update handled.

Figures go to stdout and to bench/results/throughput.json. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dtm
import io
import json
import logging
import multiprocessing
import os
import pstats
import sys
import tempfile
import time
from array import array
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"  # all traffic stays on the loopback interface
TARGET_RATIO = 1.0
TARGET_P95_MS = 250.0  # issue 10
STALL_SECONDS = 5.0  # a worker waiting longer than this for its turn is revived with /menu
DRAIN_SECONDS = 15.0  # after the window, how long the bot may take to answer what is under way
WORKER_ID_BASE = 700_000_000
BUSY_WARNING_PCT = 15.0  # the machine busier than this before a phase: figures are suspect

# What a worker answers to each question of the hotline, recognised by the question's
# choice tag ("flow.step", carried in the callback_data of its inline keyboard).
STORY_TEXT = "老板三个月没发工资，每次问都说下个月发。"
HOTLINE_ANSWERS = {
    "language.choose": "1",  # 中文
    "menu.main": "1",  # 投诉 / 反映问题
    "complaint.consent": "1",  # 同意
    "complaint.category": "1",  # 拖欠工资
    "complaint.employer": "宏达电子厂",
    "complaint.district": "1",
    "complaint.address": "玉山镇前进路88号",
    "complaint.story": None,  # the story once, then 完成
    "complaint.amount": "8500",
    "complaint.months": "8月到10月",
    "complaint.evidence": "完成",  # no evidence
    "complaint.phone": "跳过",
    "complaint.identity": "2",  # anonymous
    "complaint.review": "1",  # confirm: a ticket reference, then the main menu
}


# =============================================================================================
# The server process: the local Bot API server and the simulated workers
# =============================================================================================


class _Worker:
    __slots__ = ("sent_at", "story_told", "user")

    def __init__(self, user) -> None:
        self.user = user
        self.sent_at: float | None = None  # perf_counter() when the awaited message was pushed
        self.story_told = False


class Crowd:
    """The simulated workers: they answer inside the server's sendMessage hook."""

    def __init__(self, server, mode: str, workers: int, latency: float = 0.0) -> None:
        self.server = server
        self.mode = mode
        # With a network round trip a bot that answers one update at a time keeps each of N
        # workers waiting about N round trips: that is slowness, not a lost turn.
        self.stall_seconds = max(STALL_SECONDS, 4 * workers * latency)
        self.workers = {
            WORKER_ID_BASE + n: _Worker(
                server.user(WORKER_ID_BASE + n, f"工友{n}", language_code="zh-hans")
            )
            for n in range(workers)
        }
        self.running = False
        self.done_at = array("d")  # when each turn completed (perf_counter)
        self.latency = array("d")  # how long it took (seconds)
        self.sent = 0
        self.unexpected = 0  # replies nobody was waiting for, or questions the script lacks
        self.stalls = 0
        self.tickets: list[float] = []  # when each ticket reference reached a worker
        self.echo_counter = 0
        server.on_call("sendMessage", self.on_send_message)

    # -- the workers' side -----------------------------------------------------------------

    def begin(self) -> None:
        self.running = True
        for worker in self.workers.values():
            self._send(worker, "/start" if self.mode == "hotline" else self._echo_text())

    def _send(self, worker: _Worker, text: str) -> None:
        self.sent += 1
        worker.sent_at = time.perf_counter()
        worker.user.send(text)

    def _echo_text(self) -> str:
        self.echo_counter += 1
        return f"你好，这是第 {self.echo_counter} 条消息"

    def on_send_message(self, params: dict, result: dict | None) -> None:
        now = time.perf_counter()
        chat_id = params.get("chat_id")
        if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
            chat_id = int(chat_id)
        worker = self.workers.get(chat_id)
        if worker is None:
            return
        tag = None
        if self.mode == "hotline":
            markup = params.get("reply_markup")
            rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
            if not rows:  # a message before the question: the turn is not complete yet
                if "HL-" in str(params.get("text", "")):
                    self.tickets.append(now)
                return
            tag = str(rows[0][0].get("callback_data") or "").rpartition("|")[0]
        if worker.sent_at is None:
            self.unexpected += 1
            return
        self.done_at.append(now)
        self.latency.append(now - worker.sent_at)
        worker.sent_at = None
        if self.running:
            self._send(
                worker, self._answer(worker, tag) if self.mode == "hotline" else self._echo_text()
            )

    def _answer(self, worker: _Worker, tag: str | None) -> str:
        if tag == "complaint.category":
            worker.story_told = False
        if tag == "complaint.story":
            if worker.story_told:
                return "完成"
            worker.story_told = True
            return STORY_TEXT
        answer = HOTLINE_ANSWERS.get(tag or "")
        if answer is None:
            self.unexpected += 1
            return "/menu"
        return answer

    def revive_stalled(self) -> None:
        """A worker whose turn never completes (a failed turn) would stop for good."""
        if not self.running:
            return
        now = time.perf_counter()
        for worker in self.workers.values():
            if worker.sent_at is not None and now - worker.sent_at > self.stall_seconds:
                self.stalls += 1
                self._send(worker, "/menu" if self.mode == "hotline" else self._echo_text())

    def waiting(self) -> int:
        """Workers whose message the bot has not finished answering."""
        return sum(1 for worker in self.workers.values() if worker.sent_at is not None)

    # -- figures ---------------------------------------------------------------------------

    def figures(self, start: float, end: float) -> dict:
        pairs = zip(self.done_at, self.latency, strict=True)
        window = [lat for at, lat in pairs if start <= at < end]
        window.sort()
        seconds = end - start
        return {
            "updates": len(window),
            "seconds": round(seconds, 3),
            "updates_per_second": len(window) / seconds if seconds > 0 else 0.0,
            "p50_ms": _percentile(window, 50) * 1000,
            "p95_ms": _percentile(window, 95) * 1000,
            "p99_ms": _percentile(window, 99) * 1000,
            "max_ms": (window[-1] if window else 0.0) * 1000,
            "tickets": sum(1 for at in self.tickets if start <= at < end),
        }


def _percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds over all cores since boot, from /proc/stat."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/stat") as file:
            values = [int(v) for v in file.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        total = sum(values[:8])
        tick = os.sysconf("SC_CLK_TCK")
        return (total - idle) / tick, total / tick
    return 0.0, 0.0


async def machine_busy_now(seconds: float = 1.0) -> float:
    """How busy the machine is before a phase (percent of all cores): other people's work."""
    busy0, total0 = machine_cpu()
    await asyncio.sleep(seconds)
    busy1, total1 = machine_cpu()
    return 100 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


class CpuMeter:
    """CPU time of this process, of the bot's process (per thread) and of the whole machine,
    read from /proc, so a report can show which side was saturated. Without a bot pid (the
    bot is several processes, bench/processes.py measures them) only this process and the
    machine."""

    def __init__(self, bot_pid: int | None) -> None:
        self.bot_pid = bot_pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> dict:
        return {
            "wall": time.perf_counter(),
            "self": time.process_time(),
            "bot_threads": self._threads(self.bot_pid) if self.bot_pid is not None else {},
            "machine": self._machine(),
        }

    def _threads(self, pid: int) -> dict[int, tuple[str, float]]:
        threads = {}
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    with open(f"/proc/{pid}/task/{tid}/stat") as file:
                        stat = file.read()
                    name = stat[stat.index("(") + 1 : stat.rindex(")")]
                    fields = stat[stat.rindex(")") + 2 :].split()
                    threads[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / self.tick)
        return threads

    def _machine(self) -> tuple[float, float]:
        return machine_cpu()

    def between(self, first: dict, last: dict) -> dict:
        wall = last["wall"] - first["wall"]
        if wall <= 0:
            return {}
        main = other = 0.0
        for tid, (_, seconds) in last["bot_threads"].items():
            spent = seconds - first["bot_threads"].get(tid, ("", 0.0))[1]
            if tid == self.bot_pid:
                main += spent
            else:
                other += spent
        busy = last["machine"][0] - first["machine"][0]
        total = last["machine"][1] - first["machine"][1]
        bot = (
            {"bot_main_thread_pct": 100 * main / wall, "bot_other_threads_pct": 100 * other / wall}
            if self.bot_pid is not None
            else {}
        )
        return {
            "server_process_pct": 100 * (last["self"] - first["self"]) / wall,
            **bot,
            "machine_busy_pct": 100 * busy / total if total > 0 else 0.0,
            "cores": os.cpu_count(),
        }


def serve(
    conn,
    mode: str,
    workers: int,
    warmup: float,
    seconds: float,
    bot_pid: int | None,
    latency: float = 0.0,
) -> None:
    """The server process's entry point (spawned); bot_pid None: no bot CPU figures."""
    asyncio.run(_serve(conn, mode, workers, warmup, seconds, bot_pid, latency))


async def _serve(
    conn,
    mode: str,
    workers: int,
    warmup: float,
    seconds: float,
    bot_pid: int | None,
    latency: float,
) -> None:
    from local_servers.telegram import LocalBotApi, TelegramLimits

    # Both bots' own turn cost is measured, not Telegram's sending limits (bench/surge.py
    # measures those): the echo bot has no pacing, and 100 closed-loop workers exceed 30/s.
    server = LocalBotApi(host=HOST, port=0, latency=latency, limits=TelegramLimits.unlimited())
    await server.start()
    try:
        crowd = Crowd(server, mode, workers, latency)
        conn.send(
            (
                "ready",
                {
                    "token": server.token,
                    "base_url": server.base_url,
                    "base_file_url": server.base_file_url,
                },
            )
        )
        if (await _receive(conn, 120))[0] != "go":
            return
        meter = CpuMeter(bot_pid)
        crowd.begin()
        watchdog = asyncio.create_task(_watch(crowd))
        await asyncio.sleep(warmup)
        first = meter.sample()
        conn.send(("window", "start"))
        await asyncio.sleep(seconds)
        last = meter.sample()
        conn.send(("window", "end"))
        crowd.running = False  # no new messages; the bot finishes what is under way
        watchdog.cancel()
        drain_until = time.perf_counter() + DRAIN_SECONDS
        while crowd.waiting() and time.perf_counter() < drain_until:
            await asyncio.sleep(0.05)
        figures = crowd.figures(first["wall"], last["wall"])
        figures["cpu"] = meter.between(first, last)
        figures.update(
            sent=crowd.sent,
            unexpected=crowd.unexpected,
            stalls=crowd.stalls,
            unanswered_at_end=crowd.waiting(),
        )
        conn.send(("result", figures))
        await _receive(conn, 120)  # "stop", once the bot has shut down
    finally:
        await server.stop()


async def _watch(crowd: Crowd) -> None:
    while True:
        await asyncio.sleep(1.0)
        crowd.revive_stalled()


async def _receive(conn, timeout: float):
    if not await asyncio.to_thread(conn.poll, timeout):
        raise TimeoutError(f"nothing from the other process within {timeout:.0f}s")
    return conn.recv()


# =============================================================================================
# The bot process (this one): the bots under test
# =============================================================================================


class ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.first is None:
            self.first = f"{record.name}: {record.getMessage()}"


class EchoBot:
    """The reference: python-telegram-bot as its documentation shows it, nothing added."""

    def __init__(self, endpoints: dict) -> None:
        from telegram.ext import Application, MessageHandler, filters

        async def echo(update, context) -> None:
            await update.message.reply_text(update.message.text)

        self.application = (
            Application.builder()
            .token(endpoints["token"])
            .base_url(endpoints["base_url"])
            .base_file_url(endpoints["base_file_url"])
            .build()
        )
        self.application.add_handler(MessageHandler(filters.TEXT, echo))

    async def start(self) -> None:
        await self.application.initialize()
        await self.application.start()
        await self.application.updater.start_polling(
            poll_interval=0, timeout=dtm.timedelta(seconds=1)
        )

    async def stop(self) -> None:
        if self.application.updater.running:
            await self.application.updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    def window(self, starting: bool) -> None:
        pass

    def figures(self) -> dict:
        return {}


class PoolMeter:
    """How busy the hotline's database connections are: listens to SQLAlchemy's pool and
    cursor events (observation only; the hotline is not changed)."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        sync = engine.sync_engine
        pool = sync.pool
        size = pool.size() if hasattr(pool, "size") else 1
        self.capacity = size + max(int(getattr(pool, "_max_overflow", 0)), 0)
        self.closed_held = 0.0  # seconds of connections checked out and back in
        self.checkouts = 0
        self.statements = 0
        self._out: dict[int, float] = {}
        self._marks: list[tuple[float, float, int, int]] = []
        event.listen(sync, "checkout", self._checkout)
        event.listen(sync, "checkin", self._checkin)
        event.listen(sync, "before_cursor_execute", self._statement)

    def _checkout(self, dbapi_connection, record, proxy) -> None:
        self.checkouts += 1
        self._out[id(record)] = time.perf_counter()

    def _checkin(self, dbapi_connection, record) -> None:
        since = self._out.pop(id(record), None)
        if since is not None:
            self.closed_held += time.perf_counter() - since

    def _statement(self, *args) -> None:
        self.statements += 1

    def mark(self) -> None:
        now = time.perf_counter()
        held = self.closed_held + sum(now - since for since in self._out.values())
        self._marks.append((now, held, self.checkouts, self.statements))

    def figures(self) -> dict:
        if len(self._marks) < 2:
            return {}
        (t0, h0, c0, s0), (t1, h1, c1, s1) = self._marks[0], self._marks[-1]
        checkouts = c1 - c0
        return {
            "connections_in_use_avg": (h1 - h0) / (t1 - t0),
            "connections_max": self.capacity,
            "checkouts": checkouts,
            "held_ms_per_checkout": 1000 * (h1 - h0) / checkouts if checkouts else 0.0,
            "statements": s1 - s0,
        }


class StageTimer:
    """Wall time of the hotline's stages, by wrapping a few of its objects' methods on the
    instances (--profile only); a stage the hotline no longer has is left out. Waiting counts:
    for the database connection, for the event loop."""

    STAGES = (
        ("telegram.accept", "store a getUpdates batch in the inbox (one transaction)"),
        ("engine.handle", "the turn: load, route, save, mark handled (one transaction)"),
        ("telegram.deliver", "send the replies (sendMessage calls)"),
        ("telegram._mark", "mark one inbox row done (one more transaction)"),
        ("telegram.done.flush", "mark a batch of inbox rows done (one transaction)"),
    )

    def __init__(self, hotline) -> None:
        self.totals: dict[str, list] = {}
        self.active = False
        for path, what in self.STAGES:
            *owners, method = path.split(".")
            owner = hotline
            for name in owners:
                owner = getattr(owner, name, None)
            original = getattr(owner, method, None) if owner is not None else None
            if original is not None and asyncio.iscoroutinefunction(original):
                label = f"{type(owner).__name__}.{method}"
                self.totals[label] = [0, 0, 0.0, what]  # started, finished, seconds, what
                setattr(owner, method, self._wrap(self.totals[label], original))

    def _wrap(self, totals: list, original):
        async def timed(*args, **kwargs):
            counted = self.active  # calls that start within the window
            if counted:
                totals[0] += 1
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                if counted and self.active:  # and end within it
                    totals[1] += 1
                    totals[2] += time.perf_counter() - started

        return timed

    def figures(self) -> dict:
        return {
            label: {
                "calls": started,
                "finished": finished,
                "mean_ms": 1000 * seconds / finished if finished else None,
                "what": what,
            }
            for label, (started, finished, seconds, what) in self.totals.items()
        }


class HotlineBot:
    """The real hotline, with Telegram's politeness limits out of the way."""

    def __init__(self, endpoints: dict, database_url: str, *, stages: bool = False) -> None:
        from bot.service import Hotline
        from bot.settings import Settings, load_settings

        settings = load_settings(
            Settings,
            telegram_bot_token=endpoints["token"],
            telegram_api_base_url=endpoints["base_url"],
            database_url=database_url,
            max_sends_per_second=100_000,
            chat_burst=1_000_000,  # the workers answer at once: no private chat's pace either
            chat_sends_per_second=100_000,
            flood_messages=1_000_000,
        )
        self.hotline = Hotline(settings, poll_timeout=1, retry_delay=0.1)
        self.pool = PoolMeter(self.hotline.database)
        self.stages = StageTimer(self.hotline) if stages else None

    async def start(self) -> None:
        await self.hotline.start()

    async def stop(self) -> None:
        await self.hotline.stop()

    def window(self, starting: bool) -> None:
        self.pool.mark()
        if self.stages is not None:
            self.stages.active = starting

    def figures(self) -> dict:
        figures = {"database": self.pool.figures()}
        if self.stages is not None:
            figures["stages"] = self.stages.figures()
        return figures


async def measure(name: str, make_bot, args, profiler: cProfile.Profile | None) -> dict:
    """One phase: a fresh server process, the bot here, warm-up, window, shutdown."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=serve,
        name=f"bench-server-{name}",
        daemon=True,
        args=(
            theirs,
            "hotline" if name == "hotline" else "echo",
            args.workers,
            args.warmup,
            args.seconds,
            os.getpid(),
            args.latency_ms / 1000,
        ),
    )
    busy_before = await machine_busy_now()
    if busy_before > BUSY_WARNING_PCT:
        print(
            f"warning: the machine was {busy_before:.0f}% busy before the {name} phase "
            "(someone else's work): its figures will be low",
            file=sys.stderr,
        )
    process.start()
    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)
    bot = None
    try:
        kind, endpoints = await _receive(ours, 60)
        if kind != "ready":
            raise RuntimeError(f"the server process said {kind!r}")
        bot = make_bot(endpoints)
        await bot.start()
        ours.send(("go",))
        deadline = time.monotonic() + args.warmup + args.seconds + DRAIN_SECONDS + 60
        while True:
            kind, payload = await _receive(ours, max(1.0, deadline - time.monotonic()))
            if kind == "window":
                starting = payload == "start"
                bot.window(starting)
                if profiler is not None:
                    profiler.enable() if starting else profiler.disable()
            elif kind == "result":
                figures = payload
                break
        figures.update(bot.figures())
        await asyncio.wait_for(bot.stop(), 60)
        bot = None
        ours.send(("stop",))
    finally:
        if profiler is not None:
            profiler.disable()
        if bot is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bot.stop(), 30)
        logging.getLogger().removeHandler(errors)
        await asyncio.to_thread(process.join, 15)
        if process.is_alive():
            process.terminate()
            await asyncio.to_thread(process.join, 5)
    figures["machine_busy_before_pct"] = busy_before
    figures["errors_logged"] = errors.count
    figures["first_error"] = errors.first
    return figures


# -- databases ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def hotline_database(url: str | None):
    """Yields (database_url, description): a SQLite file in a temp dir by default; for a
    PostgreSQL URL, a scratch database on that server, migrated, dropped afterwards."""
    if url is None or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="hotline-bench-") as folder:
            if url is None:
                yield f"sqlite+aiosqlite:///{folder}/bench.db", "sqlite (temp file)"
            else:
                yield url, "sqlite (given file)"
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    from db.migrate import upgrade
    from db.session import create_engine

    given = make_url(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    scratch = f"hotline_bench_{os.getpid()}"
    admin_dsn = given.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
            await admin.execute(f'CREATE DATABASE "{scratch}"')
        finally:
            await admin.close()
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        raise SystemExit(
            f"could not create the scratch database {scratch} on "
            f"{given.host}:{given.port or 5432}: {error}"
        ) from None
    bench_url = given.set(database=scratch).render_as_string(hide_password=False)
    try:
        engine = create_engine(bench_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        yield bench_url, f"postgresql {given.host}:{given.port or 5432} (scratch {scratch})"
    finally:
        admin = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        finally:
            await admin.close()


async def tickets_and_rows(url: str, *columns) -> tuple[int, list]:
    """The tickets in the hotline's database, and its rows counted by `columns` (of one table)."""
    from sqlalchemy import func, select

    from db.models import Ticket
    from db.session import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            tickets = (await connection.execute(select(func.count()).select_from(Ticket))).scalar()
            rows = (
                await connection.execute(select(*columns, func.count()).group_by(*columns))
            ).all()
        return tickets, rows
    finally:
        await engine.dispose()


async def database_counts(url: str) -> dict:
    """What the hotline left in its database: tickets, and inbox rows not finished."""
    from db.models import InboxUpdate

    tickets, rows = await tickets_and_rows(url, InboxUpdate.status)
    return {
        "tickets_in_database": tickets,
        "inbox_rows": {str(status): count for status, count in rows},
    }


# -- reporting ---------------------------------------------------------------------------------


def print_profile(profiler: cProfile.Profile, hotline: dict, top: int = 25) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(RESULTS / "hotline.prof")
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        text = out.getvalue()
        body = text[text.index("   ncalls") :] if "   ncalls" in text else text
        print(f"--- hotline profile (event-loop thread, measured window): top {top} by {order} ---")
        print(body.rstrip())
        print()
    print(
        "(SQLAlchemy's asyncio layer switches greenlets, which cProfile's call stack does not\n"
        " follow: cumulative times of code that awaits the database are inflated (n/m calls\n"
        " show it); own times (tottime) and the summary by package below are sound.)\n"
    )
    print("--- hotline profile: own time by package, top 15 ---")
    by_package = _own_time_by_package(profiler)
    total = sum(by_package.values()) or 1.0
    for package, seconds in sorted(by_package.items(), key=lambda item: -item[1])[:15]:
        print(f"  {seconds:7.2f} s  {100 * seconds / total:5.1f}%  {package}")
    print()
    stages = hotline.get("stages") or {}
    updates = max(hotline["updates"], 1)
    if stages:
        print("--- where a hotline update's time goes (wall time, waiting included) ---")
        for name, stage in stages.items():
            mean = (
                f"{stage['mean_ms']:8.1f} ms per call"
                if stage["mean_ms"] is not None
                else "     (none ended)"
            )
            print(
                f"  {name:<26} {mean}  {stage['calls'] / updates:5.2f} calls per update"
                f"   {stage['what']}"
            )
        print()
    print(
        f"(raw profile: {RESULTS / 'hotline.prof'}; threads other than the event loop's, "
        "e.g. aiosqlite's, are not in it: see the bot CPU column)\n"
    )


def _own_time_by_package(profiler: cProfile.Profile) -> dict[str, float]:
    totals: dict[str, float] = {}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _, function), (_, _, own, _, _) in stats.items():
        path = filename.replace("\\", "/")
        if "site-packages/" in path:
            key = path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        elif path.startswith(str(REPO).replace("\\", "/") + "/"):
            key = "hotline: " + path[len(str(REPO)) + 1 :].split("/", 1)[0] + "/"
        elif filename == "~":
            key = "built-in: " + function.strip("<>").removeprefix("method ")[:40]
        elif "importlib" in path:
            key = "importlib (imports at run time)"
        else:
            key = "stdlib: " + Path(path).name.removesuffix(".py")
        totals[key] = totals.get(key, 0.0) + own
    return totals


def print_report(config: dict, echo: dict, hotline: dict) -> None:
    def row(name: str, f: dict) -> str:
        cpu = f.get("cpu", {})
        bot_cpu = (
            f"{cpu.get('bot_main_thread_pct', 0):.0f}%+{cpu.get('bot_other_threads_pct', 0):.0f}%"
        )
        return (
            f"{name:<9} {f['updates']:>8} {f['updates_per_second']:>10.1f} "
            f"{f['p50_ms']:>8.1f} {f['p95_ms']:>8.1f} {f['p99_ms']:>8.1f} {f['max_ms']:>8.1f}"
            f"  {bot_cpu:>9} {cpu.get('server_process_pct', 0):>6.0f}%"
            f" {cpu.get('machine_busy_pct', 0):>7.0f}%"
        )

    print(
        f"throughput: {config['workers']} workers, {config['warmup']:g} s warm-up, "
        f"{config['seconds']:g} s measured; hotline database: {config['database']}; "
        f"event loop: echo asyncio, hotline {config['hotline_event_loop']}"
        + ("; hotline under cProfile (slowed by it)" if config["profile"] else "")
    )
    print(code_line(config))
    print(
        f"{'':<9} {'updates':>8} {'updates/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8}  {'bot CPU':>9} {'server':>7} {'machine':>8}"
    )
    print(row("echo bot", echo))
    print(row("hotline", hotline))
    print(
        "bot CPU: the bot process's event-loop thread + its other threads (100% = one core);"
        " server: the local\nBot API and workers' process; machine: all "
        f"{echo.get('cpu', {}).get('cores', '?')} cores busy (PostgreSQL included); "
        f"busy before each phase: echo {echo['machine_busy_before_pct']:.0f}%, "
        f"hotline {hotline['machine_busy_before_pct']:.0f}%"
    )
    database = hotline.get("database") or {}
    if database:
        updates = max(hotline["updates"], 1)
        print(
            f"hotline database: {database['connections_in_use_avg']:.2f} connections in use on "
            f"average (pool max {database['connections_max']}), "
            f"{database['held_ms_per_checkout']:.1f} ms per checkout, "
            f"{database['checkouts'] / updates:.1f} checkouts and "
            f"{database['statements'] / updates:.1f} SQL statements per update"
        )
    print(
        f"hotline: {hotline['tickets']} complaints filed in the window "
        f"({hotline['tickets'] / max(hotline['seconds'], 1e-9):.1f}/s), "
        f"{hotline.get('tickets_in_database', '?')} tickets in the database"
    )
    print(f"anomalies: echo bot {_anomalies(echo)}; hotline {_anomalies(hotline)}")
    for name, figures in (("echo bot", echo), ("hotline", hotline)):
        if figures.get("first_error"):
            print(f"first error the {name} logged: {figures['first_error']}")
    ratio = (
        hotline["updates_per_second"] / echo["updates_per_second"]
        if echo["updates_per_second"]
        else 0.0
    )
    print(
        f"echo bot:  {echo['updates_per_second']:.1f} updates/s  p50 {echo['p50_ms']:.1f} ms  "
        f"p95 {echo['p95_ms']:.1f} ms"
    )
    print(
        f"hotline:   {hotline['updates_per_second']:.1f} updates/s  p50 {hotline['p50_ms']:.1f} "
        f"ms  p95 {hotline['p95_ms']:.1f} ms"
    )
    print(
        f"ratio hotline/echo: {ratio:.2f}   (target >= {TARGET_RATIO})   hotline p95 "
        f"{hotline['p95_ms']:.1f} ms (target <= {TARGET_P95_MS:g} ms)"
    )


def _anomalies(f: dict) -> str:
    return (
        f"{f['unexpected']} unexpected replies, {f['stalls']} stalls, "
        f"{f['unanswered_at_end']} unanswered at the end, {f['errors_logged']} errors logged"
    )


def code_line(config: dict) -> str:
    """The commit measured, and the files changed since, for a report's header."""
    changed = config.get("uncommitted_changes") or []
    line = f"code: commit {config.get('commit')}"
    if changed:
        line += f" + uncommitted changes to {', '.join(changed[:6])}"
        if len(changed) > 6:
            line += f" and {len(changed) - 6} more"
    return line


def source_version() -> dict:
    """Which code was measured: the commit, and the files changed since (outside bench/)."""
    import subprocess

    def git(*command: str) -> str:
        try:
            return subprocess.run(
                ["git", *command], cwd=REPO, capture_output=True, text=True, check=False, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [
        line[3:]
        for line in git("status", "--porcelain").splitlines()
        if line[3:] and not line[3:].startswith("bench/")
    ]
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "uncommitted_changes": changed,
    }


# -- main --------------------------------------------------------------------------------------


def run(args) -> int:
    """Each bot on the event loop it runs on in production: the echo bot on asyncio's (what
    python-telegram-bot's run_polling uses), the hotline on `hotline run`'s (bot/event_loop.py:
    uvloop where installed). The server process is the same for both."""
    from bot import event_loop

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = {
        "workers": args.workers,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "latency_ms": args.latency_ms,
        "profile": args.profile,
        "database": None,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "hotline_event_loop": event_loop.name(),
        **source_version(),
    }
    echo = hotline = None
    if args.only in (None, "echo"):
        echo = asyncio.run(measure("echo", EchoBot, args, None))
    profiler = cProfile.Profile() if args.profile else None
    if args.only in (None, "hotline"):
        hotline = event_loop.run(measure_hotline(args, config, profiler))
    if profiler is not None and hotline is not None:
        print_profile(profiler, hotline)
    if echo is None or hotline is None:  # a look at one bot alone, e.g. to check the harness
        for name, figures in (("echo bot", echo), ("hotline", hotline)):
            if figures is not None:
                print(
                    f"{name + ':':<10} {figures['updates_per_second']:.1f} updates/s  "
                    f"p50 {figures['p50_ms']:.1f} ms  p95 {figures['p95_ms']:.1f} ms  "
                    f"cpu {json.dumps(figures['cpu'])}  anomalies: {_anomalies(figures)}"
                )
        return 0
    print_report(config, echo, hotline)
    ratio = (
        hotline["updates_per_second"] / echo["updates_per_second"]
        if echo["updates_per_second"]
        else 0.0
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "when": dtm.datetime.now(dtm.UTC).isoformat(timespec="seconds"),
        "config": config,
        "echo": echo,
        "hotline": hotline,
        "ratio": ratio,
        "targets": {
            "ratio_min": TARGET_RATIO,
            "hotline_p95_ms_max": TARGET_P95_MS,
            "ratio_met": ratio >= TARGET_RATIO,
            "p95_met": hotline["p95_ms"] <= TARGET_P95_MS,
        },
    }
    (RESULTS / "throughput.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return 0


def add_load_arguments(parser: argparse.ArgumentParser, *, seconds: float) -> None:
    """The load every throughput benchmark takes: workers at once, the window, the warm-up."""
    parser.add_argument(
        "--workers", type=int, default=100, help="simulated workers chatting at once (default 100)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=seconds,
        help=f"length of each measured window (default {seconds:g})",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of traffic before each window, not measured (default 3)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser, seconds=20.0)
    parser.add_argument(
        "--database",
        default=None,
        help="hotline database: default a SQLite file in a temp dir; a "
        "postgresql+asyncpg://USER@HOST:PORT/DB URL runs on a scratch "
        "database created on that server and dropped afterwards",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the hotline's measured window under cProfile and print the top 25 functions",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="delay the server adds to every API call, as the round trip to "
        "Telegram's servers would (default 0: loopback)",
    )
    parser.add_argument(
        "--only",
        choices=("echo", "hotline"),
        default=None,
        help="measure one bot only (to check the harness); no ratio, no JSON",
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--workers must be >= 1, --seconds > 0, --warmup >= 0")
    return run(args)


async def measure_hotline(args, config: dict, profiler: cProfile.Profile | None) -> dict:
    async with hotline_database(args.database) as (url, description):
        config["database"] = description
        hotline = await measure(
            "hotline",
            lambda endpoints: HotlineBot(endpoints, url, stages=args.profile),
            args,
            profiler,
        )
        hotline.update(await database_counts(url))
    return hotline


if __name__ == "__main__":
    sys.exit(main())
