"""Several processes: the hotline as 1, 2 and 4 OS processes on one PostgreSQL (issue 10).

Run from the repository root:

    .venv/bin/python bench/processes.py [--processes 1,2,4] [--seconds 15] [--workers 100]
        [--launch workers|separate] [--database postgresql+asyncpg://USER@HOST:PORT/DB]

For each N in --processes, one after the other:

1. a fresh scratch PostgreSQL database on --database's server, migrated (`db.migrate.upgrade`),
   dropped at the end (bench/throughput.py's `hotline_database`);
2. a fresh server process: the local Bot API server and the simulated workers walking the
   complaint flow (bench/throughput.py's `serve`, mode "hotline", Telegram's limits lifted);
3. the hotline as the production command starts it, in processes of its own:
   `--launch workers` (the default): one `python -m bot run --workers N` (N = 1: a plain
   `python -m bot run`); `--launch separate`: N separate `python -m bot run` processes;
   all against the scratch database, with the hotline's politeness limits lifted by their
   environment settings, each process's stderr in a temp file;
4. once every process logged that it runs, warm-up, the measured window, then the workers
   stop, the hotline finishes what is under way and is stopped (SIGTERM, then waited for).

A row per N: updates/s, latency percentiles, the CPU of all hotline processes together (their
descendants included) and of PostgreSQL (all `postgres` processes), both from /proc, the
server process's CPU, the machine's, and anomalies (stalls, unexpected replies, workers left
unanswered, ERROR lines in the hotline's logs, processes that exited badly). Then the curve:
updates/s relative to N = 1. Figures to stdout and bench/results/processes.json. Nothing here
asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dtm
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import (  # noqa: E402  (bench/ is a folder of scripts)
    BUSY_WARNING_PCT,
    DRAIN_SECONDS,
    REPO,
    RESULTS,
    _receive,
    add_load_arguments,
    code_line,
    database_counts,
    hotline_database,
    machine_busy_now,
    serve,
    source_version,
)

DEFAULT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
READY_SECONDS = 90.0  # how long N processes may take to start
STOP_SECONDS = 30.0  # how long they may take to stop after SIGTERM
RUNNING_LINE = "the hotline is running"  # bot/service.py logs it (INFO) once started
# Telegram's limits lifted, as bench/throughput.py's HotlineBot does in-process.
UNLIMITED = {
    "HOTLINE_MAX_SENDS_PER_SECOND": "100000",
    "HOTLINE_CHAT_BURST": "1000000",
    "HOTLINE_CHAT_SENDS_PER_SECOND": "100000",
    "HOTLINE_FLOOD_MESSAGES": "1000000",
}


# -- CPU from /proc ----------------------------------------------------------------------------


def process_table() -> dict[int, tuple[str, int, float]]:
    """Every process: pid -> (name, parent pid, CPU seconds of it and of its children that
    ended and were waited for). Summed over a set of live processes, the last figure stays
    continuous when one of them ends (its time moves to its parent's children's time)."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick  # utime stime cutime cstime
            table[int(entry)] = (name, int(fields[1]), cpu)
    return table


def descendants(table: dict[int, tuple[str, int, float]], roots: list[int]) -> set[int]:
    """The roots that are alive, and every live process below them."""
    children: dict[int, list[int]] = {}
    for pid, (_, parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found = set()
    stack = [pid for pid in roots if pid in table]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, ()))
    return found


class CpuSample:
    def __init__(self, roots: list[int]) -> None:
        self.wall = time.perf_counter()
        table = process_table()
        self.names = {pid: table[pid][0] for pid in descendants(table, roots)}
        self.hotline = {pid: table[pid][2] for pid in self.names}
        self.postgres = {pid: cpu for pid, (name, _, cpu) in table.items() if name == "postgres"}


def cpu_between(first: CpuSample, last: CpuSample) -> dict:
    """CPU over the window, in % of one core. A process that started within it counts from 0;
    one that ended and was waited for is in its parent's figure."""
    wall = last.wall - first.wall
    if wall <= 0:
        return {}

    def own(before: dict[int, float], after: dict[int, float], pid: int) -> float:
        """One process's CPU in the window (0 for one that ended: its time is its parent's)."""
        return after[pid] - before.get(pid, 0.0) if pid in after else 0.0

    return {
        "hotline_pct": 100 * (sum(last.hotline.values()) - sum(first.hotline.values())) / wall,
        "hotline_processes": len(last.hotline),
        "hotline_per_process_pct": {
            str(pid): 100 * own(first.hotline, last.hotline, pid) / wall
            for pid in sorted(last.hotline)
        },
        "postgres_pct": 100 * (sum(last.postgres.values()) - sum(first.postgres.values())) / wall,
    }


class DatabaseStats:
    """PostgreSQL's own counters for the scratch database (pg_stat_database), over the window:
    sessions opened (a connection the hotline's pool opens beyond its kept ones costs a backend
    process), commits, rollbacks, deadlocks. PostgreSQL publishes them about once a second."""

    QUERY = (
        "SELECT sessions, xact_commit, xact_rollback, deadlocks, numbackends"
        " FROM pg_stat_database WHERE datname = current_database()"
    )

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.connection = None
        self.marks: list[tuple[float, dict]] = []

    async def open(self) -> None:
        import asyncpg

        self.connection = await asyncpg.connect(self.dsn, timeout=10)
        self.max_connections = int(await self.connection.fetchval("SHOW max_connections"))

    async def mark(self) -> None:
        with contextlib.suppress(Exception):  # figures only: a failed read leaves them out
            await self.connection.execute("SELECT pg_stat_clear_snapshot()")
            row = await self.connection.fetchrow(self.QUERY)
            self.marks.append((time.perf_counter(), dict(row)))

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    def figures(self) -> dict:
        if len(self.marks) < 2:
            return {}
        (t0, first), (t1, last) = self.marks[0], self.marks[-1]
        seconds = t1 - t0
        delta = {key: last[key] - first[key] for key in first if key != "numbackends"}
        return {
            "sessions_opened": delta["sessions"],
            "sessions_per_second": delta["sessions"] / seconds,
            "commits_per_second": delta["xact_commit"] / seconds,
            "rollbacks": delta["xact_rollback"],
            "deadlocks": delta["deadlocks"],
            "connections_at_end": last["numbackends"] - 1,  # without this one
            "max_connections": self.max_connections,
        }


# -- the hotline's processes -------------------------------------------------------------------


class Hotline:
    """The hotline as `hotline run` starts it, in one or N processes; stderr to temp files."""

    def __init__(self, endpoints: dict, url: str, processes: int, launch: str, folder: Path):
        self.processes = processes
        self.launch = launch
        self.folder = folder
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("HOTLINE_", "TELEGRAM_")) and key != "DATABASE_URL"
        }
        self.env.update(
            TELEGRAM_BOT_TOKEN=endpoints["token"],
            TELEGRAM_API_BASE_URL=endpoints["base_url"],
            DATABASE_URL=url,
            HOTLINE_LOG_LEVEL="INFO",  # its "is running" line says when it has started
            PYTHONPATH=str(REPO),
            **UNLIMITED,
        )
        self.runs: list[tuple[subprocess.Popen, Path]] = []
        self.leftovers = 0  # processes below ours still alive after theirs stopped: killed
        self.died_early = 0  # processes started here that ended before the SIGTERM
        self.stopping = False
        self.seen: dict[int, str] = {}  # every hotline process met while sampling: its name

    def commands(self) -> list[list[str]]:
        plain = [sys.executable, "-m", "bot", "run"]
        if self.launch == "separate":
            return [plain] * self.processes
        return [plain if self.processes == 1 else [*plain, "--workers", str(self.processes)]]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process, _ in self.runs]

    def start(self) -> None:
        for number, command in enumerate(self.commands(), 1):
            path = self.folder / f"hotline-{number}.stderr"
            with open(path, "wb") as stderr:
                process = subprocess.Popen(
                    command,
                    cwd=self.folder,  # no .env of the repository
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            self.runs.append((process, path))

    def lines(self) -> list[str]:
        return [
            line
            for _, path in self.runs
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        ]

    async def ready(self) -> float:
        """Waits until N processes logged that they run; returns how long that took."""
        started = time.monotonic()
        while sum(RUNNING_LINE in line for line in self.lines()) < self.processes:
            for process, path in self.runs:
                if process.poll() is not None:
                    tail = path.read_text(encoding="utf-8", errors="replace")[-3000:]
                    hint = (
                        "\n(`hotline run --workers` may not exist yet: try --launch separate)"
                        if self.launch == "workers" and "--workers" in tail
                        else ""
                    )
                    raise SystemExit(
                        f"a hotline process exited with {process.returncode} at start "
                        f"({' '.join(process.args[1:])}):\n{tail}{hint}"
                    )
            if time.monotonic() - started > READY_SECONDS:
                raise SystemExit(
                    f"the hotline did not start {self.processes} process(es) within "
                    f"{READY_SECONDS:.0f}s"
                )
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    def sample(self) -> CpuSample:
        sample = CpuSample(self.pids)
        self.seen.update(sample.names)
        return sample

    async def stop(self) -> list[int | None]:
        """SIGTERM to each process started, then waits; exit codes (None: had to be killed)."""
        table = process_table()
        self.seen.update({pid: table[pid][0] for pid in descendants(table, self.pids)})
        for process, _ in self.runs:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            elif not self.stopping:
                self.died_early += 1  # ended before it was asked to
        self.stopping = True
        deadline = time.monotonic() + STOP_SECONDS
        codes: list[int | None] = []
        for process, _ in self.runs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(process.wait, max(0.1, deadline - time.monotonic()))
            if process.poll() is None:
                process.kill()
                process.wait(10)
                codes.append(None)
            else:
                codes.append(process.returncode)
        # A child of `--workers` its parent left behind: only a process seen below ours, still
        # with the same name and under one of them or orphaned (not a reused pid).
        table = process_table()
        for pid, name in self.seen.items():
            if pid in self.pids or pid not in table or table[pid][0] != name:
                continue
            if table[pid][1] in self.seen or table[pid][1] == 1:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self.leftovers += 1
        return codes

    def keep_logs(self, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        kept = []
        for number, (_, path) in enumerate(self.runs, 1):
            target = folder / f"n{self.processes}-{self.launch}-{number}.stderr"
            shutil.copyfile(path, target)
            kept.append(str(target))
        return kept

    def log_figures(self) -> dict:
        lines = self.lines()
        errors = [line for line in lines if " ERROR " in line or line.startswith("Traceback")]
        return {
            "errors_logged": sum(" ERROR " in line for line in lines),
            "warnings_logged": sum(" WARNING " in line for line in lines),
            "first_error": errors[0] if errors else None,
            "running_lines": sum(RUNNING_LINE in line for line in lines),
            "leftover_processes_killed": self.leftovers,
            "died_before_sigterm": self.died_early,
            "error_lines": errors[:20],
        }


# -- one N -------------------------------------------------------------------------------------


async def measure(args, processes: int) -> dict:
    """A fresh scratch database and server process, the hotline in `processes` processes."""
    async with hotline_database(args.database) as (url, description):
        busy_before = await machine_busy_now()
        if busy_before > BUSY_WARNING_PCT:
            print(
                f"warning: the machine was {busy_before:.0f}% busy before N={processes} "
                "(someone else's work): its figures will be low",
                file=sys.stderr,
            )
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        server = context.Process(
            target=serve,
            name=f"bench-server-{processes}",
            daemon=True,
            args=(theirs, "hotline", args.workers, args.warmup, args.seconds, None, 0.0),
        )
        server.start()
        hotline = None
        codes: list[int | None] = []
        stats = DatabaseStats(url)
        stopped = False  # the server process told to end (it waits for "go", then for "stop")
        with tempfile.TemporaryDirectory(prefix="hotline-processes-") as folder:
            try:
                await stats.open()
                kind, endpoints = await _receive(ours, 60)
                if kind != "ready":
                    raise RuntimeError(f"the server process said {kind!r}")
                hotline = Hotline(endpoints, url, processes, args.launch, Path(folder))
                hotline.start()
                start_seconds = await hotline.ready()
                ours.send(("go",))
                first = last = None
                deadline = time.monotonic() + args.warmup + args.seconds + DRAIN_SECONDS + 60
                while True:
                    kind, payload = await _receive(ours, max(1.0, deadline - time.monotonic()))
                    if kind == "window" and payload == "start":
                        first = hotline.sample()
                        await stats.mark()
                    elif kind == "window" and payload == "end":
                        last = hotline.sample()
                        await stats.mark()
                    elif kind == "result":
                        figures = payload
                        break
                codes = await hotline.stop()
                ours.send(("stop",))
                stopped = True
                figures["logs"] = hotline.log_figures()
                if args.keep_logs:
                    figures["logs"]["kept"] = hotline.keep_logs(RESULTS / "processes-logs")
            finally:
                if not stopped:
                    with contextlib.suppress(OSError, ValueError):
                        ours.send(("stop",))
                await stats.close()  # before the scratch database is dropped
                if hotline is not None and any(p.poll() is None for p, _ in hotline.runs):
                    await hotline.stop()
                await asyncio.to_thread(server.join, 15)
                if server.is_alive():
                    server.terminate()
                    await asyncio.to_thread(server.join, 5)
        figures["cpu"].update(cpu_between(first, last) if first and last else {})
        figures["postgres"] = stats.figures()
        figures.update(await database_counts(url))
    figures.update(
        processes=processes,
        launch=args.launch,
        commands=[" ".join(command[1:]) for command in hotline.commands()],
        database=description,
        start_seconds=round(start_seconds, 2),
        exit_codes=codes,
        machine_busy_before_pct=busy_before,
    )
    return figures


# -- reporting ---------------------------------------------------------------------------------


def anomalies(f: dict) -> str:
    logs = f["logs"]
    bad_exits = sum(code != 0 for code in f["exit_codes"])
    return (
        f"{f['unexpected']} unexpected, {f['stalls']} stalls, {f['unanswered_at_end']} "
        f"unanswered, {logs['errors_logged']} ERROR lines, {bad_exits} bad exits"
        + (f", {logs['died_before_sigterm']} died early" if logs.get("died_before_sigterm") else "")
        + (
            f", {logs['leftover_processes_killed']} left behind"
            if logs.get("leftover_processes_killed")
            else ""
        )
    )


def row(f: dict) -> str:
    cpu = f.get("cpu", {})
    return (
        f"{f['processes']:>2} {f['updates']:>8} {f['updates_per_second']:>10.1f} "
        f"{f['p50_ms']:>8.1f} {f['p95_ms']:>8.1f} {f['p99_ms']:>8.1f} {f['max_ms']:>8.1f}"
        f" {cpu.get('hotline_pct', 0):>8.0f}% {cpu.get('postgres_pct', 0):>8.0f}%"
        f" {cpu.get('server_process_pct', 0):>6.0f}% {cpu.get('machine_busy_pct', 0):>7.0f}%"
        f"   {anomalies(f)}"
    )


def speed_ups(runs: list[dict]) -> dict[int, float | None]:
    base = next((r["updates_per_second"] for r in runs if r["processes"] == 1), None)
    return {r["processes"]: (r["updates_per_second"] / base if base else None) for r in runs}


def print_header(config: dict) -> None:
    print(
        f"processes: {config['workers']} workers, {config['warmup']:g} s warm-up, "
        f"{config['seconds']:g} s measured, launch {config['launch']}; "
        f"hotline database: {config['database']}"
    )
    print(code_line(config))


def print_report(runs: list[dict]) -> None:
    print(
        f"{'N':>2} {'updates':>8} {'updates/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'hotline':>9} {'postgres':>9} {'server':>7} {'machine':>8}   anomalies"
    )
    for figures in runs:
        print(row(figures))
    cores = runs[0].get("cpu", {}).get("cores", "?") if runs else "?"
    print(
        "N: hotline processes; hotline: all its processes together (children included), "
        "postgres: all\n`postgres` processes, server: the local Bot API and workers' process "
        f"(100% = one core each);\nmachine: all {cores} cores busy; anomalies: unexpected replies, "
        "workers revived after 5 s, workers\nunanswered at the end, ERROR lines in the hotline's "
        "stderr, processes that did not exit 0 on SIGTERM"
    )
    for figures in runs:
        cpu = figures.get("cpu", {})
        logs = figures["logs"]
        per_process = cpu.get("hotline_per_process_pct") or {}
        print(
            f"N={figures['processes']}: {' + '.join(figures['commands'])}; started in "
            f"{figures['start_seconds']:.1f} s; CPU per hotline process: "
            + (", ".join(f"{pct:.0f}%" for pct in per_process.values()) or "?")
            + f"; {figures['tickets']} complaints filed, "
            f"{figures.get('tickets_in_database', '?')} tickets in the database; exit codes "
            f"{figures['exit_codes']}; busy before {figures['machine_busy_before_pct']:.0f}%"
        )
        database = figures.get("postgres") or {}
        if database:
            print(
                f"  postgres (scratch database, over the window): "
                f"{database['commits_per_second']:.0f} commits/s, "
                f"{database['sessions_opened']} sessions opened "
                f"({database['sessions_per_second']:.1f}/s), {database['rollbacks']} rollbacks, "
                f"{database['deadlocks']} deadlocks; {database['connections_at_end']} "
                f"connections at the end (max_connections {database['max_connections']})"
            )
        if logs["first_error"]:
            print(f"  first error logged: {logs['first_error'][:300]}")
    curve = speed_ups(runs)
    print(
        "speed-up (updates/s relative to N=1): "
        + ", ".join(
            f"N={n}: {'-' if ratio is None else f'{ratio:.2f}'}" for n, ratio in curve.items()
        )
    )


# -- main --------------------------------------------------------------------------------------


async def run(args) -> int:
    config = {
        "workers": args.workers,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "processes": args.processes,
        "launch": args.launch,
        "database": None,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        **source_version(),
    }
    runs = []
    for processes in args.processes:
        figures = await measure(args, processes)
        config["database"] = figures["database"]
        runs.append(figures)
    print_header(config)
    print_report(runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "when": dtm.datetime.now(dtm.UTC).isoformat(timespec="seconds"),
        "config": config,
        "runs": runs,
        "speed_up": {str(n): ratio for n, ratio in speed_ups(runs).items()},
    }
    (RESULTS / "processes.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"figures: {RESULTS / 'processes.json'}")
    return 0


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            "must be numbers separated by commas, e.g. 1,2,4"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("must be numbers >= 1, e.g. 1,2,4")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--processes",
        type=_counts,
        default=[1, 2, 4],
        help="hotline processes to measure, one run each (default 1,2,4)",
    )
    parser.add_argument(
        "--launch",
        choices=("workers", "separate"),
        default="workers",
        help="workers: one `hotline run --workers N` (default); separate: N `hotline run`",
    )
    add_load_arguments(parser, seconds=15.0)
    parser.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help="a PostgreSQL server, as postgresql+asyncpg://USER@HOST:PORT/DB: a scratch "
        f"database is created on it for each N and dropped afterwards (default {DEFAULT_DATABASE})",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="copy each hotline process's stderr to bench/results/processes-logs/",
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--workers must be >= 1, --seconds > 0, --warmup >= 0")
    if not args.database.startswith(("postgresql://", "postgresql+asyncpg://")):
        parser.error("--database must be PostgreSQL: several processes share one (issue 10)")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
