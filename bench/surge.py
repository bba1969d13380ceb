"""Surge benchmark: N workers press "Submit" at the same moment, under Telegram's real limits.

Run from the repository root:

    .venv/bin/python bench/surge.py [--workers 100] [--database URL] [--kill-halfway]

The local Bot API server (local_servers/telegram) runs in this process with Telegram's limits
(TelegramLimits(): 20 messages in any 60 s into a group, per private chat a burst of 5 then
1 a second, 30 a second for the bot), with the staff forum and N simulated workers. The
hotline runs as `hotline run` does, in a process of its own (`python -m bot run`, its default
pacing and settings, HOTLINE_STAFF_CHAT_ID set to the forum).

1. Each worker walks a complaint up to the review at a human-ish pace: after each question it
   thinks for a random 1-3 s (--think), then types the answer (as bench/throughput.py's
   workers do). A worker who types faster than that is a flood the hotline slows down.
2. When every worker is at the review, all press the review's "确认提交" (Submit) button in the
   same instant. Each worker's wait runs from the press to the moment the server makes the
   reply that carries the ticket reference ("已提交！… HL-…"): p50, p95, max.
3. The staff group then receives one topic and one card per ticket, at 20 a minute: the drain.
   Counted per ticket reference: topics, cards, lost, duplicated; each topic's first post must
   be its own ticket's card; the rate from the first to the last group message; every 429 the
   server answered (api.rate_limited).
4. With --kill-halfway the hotline is killed (SIGKILL) when half the cards are in the group
   and started again at once; what it lost and repeated, and what its log said, are reported.

Progress is printed every 30 s; one summary block at the end, and every figure in
bench/results/surge.json. The run stops by itself (every wait has a limit). Nothing here
asserts on timings: it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dtm
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import (  # noqa: E402  (bench/ is a folder of scripts, not a package)
    BUSY_WARNING_PCT,
    HOST,
    REPO,
    RESULTS,
    STORY_TEXT,
    _percentile,
    hotline_database,
    machine_busy_now,
    source_version,
    tickets_and_rows,
)

STAFF_CHAT = -1001234567890
WORKER_ID_BASE = 800_000_000
GROUP_LIMIT, GROUP_WINDOW = 20, 60.0  # Telegram's: 20 messages in any 60 s into one group
TARGET_P95, TARGET_MAX, TARGET_GROUP_RATIO = 1.0, 3.0, 0.95
PROGRESS_SECONDS = 30.0
READY_SECONDS = 60.0  # for the hotline process to start polling
STEP_SECONDS = 60.0  # for one question to arrive while walking to the review
WALK_SECONDS = 300.0  # for every worker to reach the review
ANSWER_SECONDS = 60.0  # for every worker's "submitted" reply after the press
DRAIN_MARGIN = 150.0  # seconds beyond the ideal drain time before giving up
STALL_SECONDS = 180.0  # no group message for this long: the drain is stuck
REFERENCE = re.compile(r"HL-\d{4}-\d+")
SUBMIT = "确认提交"
ANSWERS = {  # what a worker types to each question, by its choice tag ("flow.step")
    "language.choose": "1",  # 中文
    "menu.main": "1",  # 投诉 / 反映问题
    "complaint.consent": "1",  # 同意
    "complaint.category": "1",  # 拖欠工资
    "complaint.employer": "宏达电子厂",
    "complaint.district": "1",
    "complaint.address": "玉山镇前进路88号",
    "complaint.amount": "8500",
    "complaint.months": "8月到10月",
    "complaint.evidence": "完成",  # no evidence
    "complaint.phone": "跳过",
    "complaint.identity": "2",  # anonymous
}


# =============================================================================================
# The workers and the staff group, as the server sees them
# =============================================================================================


@dataclass
class Worker:
    user: object  # a FakeUser
    review: object = None  # the review message, once reached
    failed: str | None = None  # why the walk stopped short of the review
    pressed_at: float | None = None
    reference: str | None = None
    submitted_at: float | None = None  # the reply with the reference was made (server clock)
    menu_at: float | None = None  # the next question: the turn complete
    replies: int = 0  # messages the Submit turn sent the worker, up to the menu
    story_told: bool = False


@dataclass
class Surge:
    api: object  # the LocalBotApi
    forum: object  # its FakeForum
    workers: dict[int, Worker]
    think: tuple[float, float]
    log: list[str] = field(default_factory=list)

    def on_send_message(self, params: dict, result: dict | None) -> None:
        """Timestamps each worker's replies after the press, at the moment they are made."""
        now = time.monotonic()
        chat = params.get("chat_id")
        if isinstance(chat, str) and chat.lstrip("-").isdigit():
            chat = int(chat)
        worker = self.workers.get(chat)
        if worker is None or worker.pressed_at is None:
            return
        if worker.menu_at is None:
            worker.replies += 1
        found = REFERENCE.search(str(params.get("text", "")))
        if worker.reference is None and found:
            worker.reference, worker.submitted_at = found.group(0), now
        if worker.reference is not None and worker.menu_at is None and _tag(params):
            worker.menu_at = now  # the menu's buttons: in the same message or a later one

    async def walk(self, worker: Worker) -> None:
        """From /start to the review, typing each answer after a moment's thought."""
        user = worker.user
        await asyncio.sleep(random.uniform(0, self.think[1]))
        user.send("/start")
        while True:
            try:
                message = await user.next_message(timeout=STEP_SECONDS)
            except TimeoutError:
                worker.failed = f"no question within {STEP_SECONDS:.0f}s"
                return
            tag = _tag({"reply_markup": message.raw.get("reply_markup")})
            if tag is None:
                continue  # a message before the question
            if tag == "complaint.review":
                worker.review = message
                return
            answer = self.answer(worker, tag)
            if answer is None:
                worker.failed = f"a question the script does not know: {tag}"
                return
            await asyncio.sleep(random.uniform(*self.think))
            user.send(answer)

    @staticmethod
    def answer(worker: Worker, tag: str) -> str | None:
        if tag == "complaint.story":
            if worker.story_told:
                return "完成"
            worker.story_told = True
            return STORY_TEXT
        return ANSWERS.get(tag)

    def press_submit(self) -> float:
        """Every worker at the review presses Submit, all in one instant."""
        pressed = time.monotonic()
        for worker in self.workers.values():
            if worker.review is not None:
                worker.pressed_at = pressed
                worker.user.press(SUBMIT, message=worker.review)
        return pressed

    def at_review(self) -> int:
        return sum(1 for w in self.workers.values() if w.review is not None)

    def answered(self) -> int:
        return sum(1 for w in self.workers.values() if w.submitted_at is not None)

    # -- the staff group ---------------------------------------------------------------------

    def group_times(self) -> list[float]:
        return list(self.api.sent_at.get(STAFF_CHAT, ()))

    def cards(self) -> list:
        """Bot messages in a ticket topic with the card's buttons."""
        return [m for m in self.forum.messages if m.message_thread_id and m.buttons]

    def every_ticket_in_group(self) -> bool:
        references = {w.reference for w in self.workers.values() if w.reference}
        group = self.staff_group()
        return all(group["topics"].get(r) and group["cards"][r] for r in references)

    def staff_group(self) -> dict:
        """Topics and cards per ticket reference, and whether each topic opens with its card."""
        topics: dict[str, list[int]] = {}
        for thread, topic in self.forum.topics.items():
            found = REFERENCE.search(topic["name"])
            topics.setdefault(found.group(0) if found else "?", []).append(thread)
        cards: Counter[str] = Counter()
        first_post: dict[int, object] = {}
        for message in self.forum.messages:
            if message.message_thread_id is None:
                continue
            first_post.setdefault(message.message_thread_id, message)
            if message.buttons:
                found = REFERENCE.search(message.plain or "")
                cards[found.group(0) if found else "?"] += 1
        in_order = 0
        for reference, threads in topics.items():
            for thread in threads:
                first = first_post.get(thread)
                if first is not None and first.buttons and reference in (first.plain or ""):
                    in_order += 1
        return {"topics": topics, "cards": cards, "in_order": in_order}


def _tag(params: dict) -> str | None:
    """The question's choice tag, from its first inline button's callback data."""
    markup = params.get("reply_markup")
    if isinstance(markup, str):
        with contextlib.suppress(ValueError):
            markup = json.loads(markup)
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not rows or not rows[0]:
        return None
    return str(rows[0][0].get("callback_data") or "").rpartition("|")[0] or None


# =============================================================================================
# The hotline process
# =============================================================================================


class HotlineProcess:
    """`python -m bot run` with the benchmark's settings; its log goes to a file."""

    def __init__(
        self, api, database_url: str, folder: Path, settings: dict[str, str] | None = None
    ) -> None:
        self.api = api
        self.database_url = database_url
        self.folder = folder
        self.settings = settings or {}  # more of the hotline's environment (bench/broadcast.py)
        self.runs: list[tuple[subprocess.Popen, Path]] = []

    @property
    def process(self) -> subprocess.Popen:
        return self.runs[-1][0]

    async def start(self) -> float:
        """Starts a run and waits until it polls; returns how long that took."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("HOTLINE_", "TELEGRAM_")) and key != "DATABASE_URL"
        }
        env.update(
            TELEGRAM_BOT_TOKEN=self.api.token,
            TELEGRAM_API_BASE_URL=self.api.base_url,
            DATABASE_URL=self.database_url,
            HOTLINE_STAFF_CHAT_ID=str(STAFF_CHAT),
            HOTLINE_LOG_LEVEL="INFO",
            PYTHONPATH=str(REPO),
        )
        env.update(self.settings)
        log_path = self.folder / f"hotline-run{len(self.runs) + 1}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                cwd=self.folder,  # no .env of the repository, no hotline.db left behind
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.runs.append((process, log_path))
        started = time.monotonic()
        # A killed run's long poll stays open at the server until it times out: the new run
        # is ready when a poll of its own waits.
        dead_poll = self.api._poll
        while not (self.api.polling and self.api._poll is not dead_poll):
            if process.poll() is not None:
                raise SystemExit(
                    f"the hotline exited with {process.returncode} at start:\n"
                    + log_path.read_text(errors="replace")[-3000:]
                )
            if time.monotonic() - started > READY_SECONDS:
                raise SystemExit(f"the hotline did not poll within {READY_SECONDS:.0f}s")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    async def stop(self) -> int | None:
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(process.wait, 30)
        if process.poll() is None:
            process.kill()
            process.wait(10)
            return None
        return process.returncode

    def cpu_seconds(self) -> float:
        """CPU time of the current run so far (user + system), from /proc."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{self.process.pid}/stat") as file:
                stat = file.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def logs(self) -> list[dict]:
        """Per run: its errors and warnings, and the restart's "were being sent" line."""
        found = []
        for process, path in self.runs:
            lines = path.read_text(errors="replace").splitlines()
            found.append(
                {
                    "log": str(path),
                    "exit": process.returncode,
                    "errors": [line for line in lines if " ERROR " in line],
                    "warnings": [line for line in lines if " WARNING " in line],
                    "repeated": [line for line in lines if "were being sent when the last" in line],
                }
            )
        return found


async def outbox_counts(url: str) -> dict:
    """Tickets, and outbox rows per destination class and status (the hotline's own record)."""
    from db.models import OutboxItem

    tickets, rows = await tickets_and_rows(url, OutboxItem.pace, OutboxItem.status)
    return {"tickets": tickets, "outbox": {f"{p} {s}": n for p, s, n in sorted(rows)}}


# =============================================================================================
# The run
# =============================================================================================


async def run(args) -> int:
    from local_servers.telegram import LocalBotApi, TelegramLimits, busiest_window

    busy = await machine_busy_now()
    if busy > BUSY_WARNING_PCT:
        print(f"warning: the machine was {busy:.0f}% busy before the run (someone else's work)")
    report: dict = {
        "when": dtm.datetime.now(dtm.UTC).isoformat(timespec="seconds"),
        "workers": args.workers,
        "think_seconds": list(args.think),
        "kill_halfway": args.kill_halfway,
        "machine_busy_before_pct": round(busy, 1),
        "cpus": os.cpu_count(),
        **source_version(),
    }
    with tempfile.TemporaryDirectory(prefix="hotline-surge-") as folder:
        async with (
            hotline_database(args.database) as (url, description),
            LocalBotApi(host=HOST, port=0, limits=TelegramLimits()) as api,
        ):
            report["database"] = description
            forum = api.forum(STAFF_CHAT, "Hotline staff")
            workers = {
                WORKER_ID_BASE + n: Worker(
                    api.user(WORKER_ID_BASE + n, f"工友{n}", language_code="zh-hans")
                )
                for n in range(args.workers)
            }
            surge = Surge(api, forum, workers, tuple(args.think))
            api.on_call("sendMessage", surge.on_send_message)
            hotline = HotlineProcess(api, url, Path(folder))
            report["startup_seconds"] = round(await hotline.start(), 2)
            try:
                await measure(surge, hotline, args, report, url)
            finally:
                report["exit_code"] = await hotline.stop()
                report["logs"] = hotline.logs()
                if args.keep_logs:
                    keep = RESULTS / "surge-logs"
                    keep.mkdir(parents=True, exist_ok=True)
                    for _, path in hotline.runs:
                        (keep / path.name).write_bytes(path.read_bytes())
            report.update(await outbox_counts(url))
            report["busiest_group_minute"] = busiest_window(surge.group_times(), GROUP_WINDOW)
    print_summary(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "surge.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    return 0


async def measure(surge: Surge, hotline: HotlineProcess, args, report: dict, url: str) -> None:
    began = time.monotonic()
    walks = [asyncio.create_task(surge.walk(w)) for w in surge.workers.values()]
    done, pending = await asyncio.wait(walks, timeout=WALK_SECONDS)
    for task in pending:
        task.cancel()
    report["walk_seconds"] = round(time.monotonic() - began, 1)
    report["walk_failed"] = {
        str(uid): w.failed or "still walking"
        for uid, w in surge.workers.items()
        if w.review is None
    }
    print(
        f"walk: {surge.at_review()}/{len(surge.workers)} workers at the review after "
        f"{report['walk_seconds']:.0f} s; all press {SUBMIT} now",
        flush=True,
    )
    await asyncio.sleep(2.0)  # the walk's last replies are out: only the surge is measured
    group_before = len(surge.group_times())
    pressed = surge.press_submit()
    submitted = surge.at_review()
    expected_group = 2 * submitted  # a topic and a card per ticket
    ideal = GROUP_WINDOW * max(0, (expected_group - 1) // GROUP_LIMIT)
    deadline = pressed + ideal + DRAIN_MARGIN + (READY_SECONDS if args.kill_halfway else 0)
    next_progress = pressed + PROGRESS_SECONDS
    killed = None
    while True:
        now = time.monotonic()
        cards = len(surge.cards())
        if args.kill_halfway and killed is None and cards >= max(1, submitted // 2):
            killed = await kill_and_restart(surge, hotline, url, pressed, cards)
            report["kill"] = killed
        times = surge.group_times()
        if now >= next_progress:
            next_progress += PROGRESS_SECONDS
            print(progress(surge, now - pressed, cards, times), flush=True)
        # Settled when every ticket has its topic and its card, by reference: counting
        # messages, a repeated card made up for a missing one and ended the run too early.
        if surge.answered() >= submitted and surge.every_ticket_in_group():
            await asyncio.sleep(3.0)  # a duplicate would come right after
            break
        if now > deadline:
            print(f"drain: stopped waiting at +{now - pressed:.0f} s (limit)", flush=True)
            report["gave_up"] = "deadline"
            break
        last = times[-1] if times else pressed
        if now - max(last, pressed) > STALL_SECONDS and (killed is None or now - killed["at"] > 60):
            print(f"drain: no group message for {STALL_SECONDS:.0f} s, stopped", flush=True)
            report["gave_up"] = "stalled"
            break
        await asyncio.sleep(0.05)
    report["hotline_cpu_seconds_last_run"] = round(hotline.cpu_seconds(), 1)
    report.update(figures(surge, pressed, group_before))


async def kill_and_restart(
    surge: Surge, hotline: HotlineProcess, url: str, pressed: float, cards: int
) -> dict:
    """SIGKILL the hotline with half the cards in the group; look at its outbox; start again."""
    group = len(surge.group_times())
    at = time.monotonic()
    hotline.kill()
    outbox = await outbox_counts(url)
    print(
        f"kill -9 at +{at - pressed:.1f} s: {cards} cards, {group} group messages in; "
        f"outbox then: {outbox['outbox']}",
        flush=True,
    )
    restart = await hotline.start()
    print(f"restarted: polling again after {restart:.1f} s", flush=True)
    return {
        "at": at,
        "after_press_seconds": round(at - pressed, 1),
        "cards_in_group": cards,
        "group_messages": group,
        "outbox_at_kill": outbox["outbox"],
        "restart_seconds": round(restart, 2),
    }


def progress(surge: Surge, elapsed: float, cards: int, times: list[float]) -> str:
    rate = ""
    if len(times) > 1 and times[-1] > times[0]:
        rate = f" ({60 * len(times) / (times[-1] - times[0]):.1f}/min so far)"
    return (
        f"[+{elapsed:4.0f} s] submitted replies {surge.answered()}, "
        f"topics {len(surge.forum.topics)}, cards {cards}, group messages {len(times)}{rate}, "
        f"refused 429 {len(surge.api.rate_limited)}"
    )


def figures(surge: Surge, pressed: float, group_before: int) -> dict:
    workers = [w for w in surge.workers.values() if w.pressed_at is not None]
    waits = sorted(w.submitted_at - w.pressed_at for w in workers if w.submitted_at is not None)
    turns = sorted(w.menu_at - w.pressed_at for w in workers if w.menu_at is not None)
    # Every 429 the limits answered (scripted faults there are none): the requests refused,
    # in order, beside what the limits recorded of each.
    refused_requests = [q for q in surge.api.requests if q.status == 429]
    refused = [
        {
            "method": limited.method,
            "chat": limited.chat_id,
            "rule": limited.rule,
            "retry_after": limited.retry_after,
            "after_press": round(q.at - pressed, 2),
        }
        for q, limited in zip(refused_requests, surge.api.rate_limited, strict=False)
    ]
    slowest = sorted(
        (
            (w.submitted_at - w.pressed_at if w.submitted_at else None, uid)
            for uid, w in surge.workers.items()
            if w.pressed_at is not None
        ),
        key=lambda pair: -1e9 if pair[0] is None else -pair[0],
    )[:5]
    times = surge.group_times()[group_before:]
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    per_minute = 60 * len(times) / span if span > 0 else 0.0
    best_span = GROUP_WINDOW * max(0, (len(times) - 1) // GROUP_LIMIT)
    best = 60 * len(times) / best_span if best_span > 0 else 0.0
    group = surge.staff_group()
    references = {w.reference for w in workers if w.reference}
    topics, cards = group["topics"], group["cards"]
    return {
        "pressed": len(workers),
        "answered": len(waits),
        "submitted_p50": _percentile(waits, 50),
        "submitted_p95": _percentile(waits, 95),
        "submitted_max": waits[-1] if waits else None,
        "menu_p50": _percentile(turns, 50),
        "menu_p95": _percentile(turns, 95),
        "menu_max": turns[-1] if turns else None,
        "replies_per_submit": dict(Counter(w.replies for w in workers)),
        "slowest": [
            {
                "worker": uid,
                "seconds": None if s is None else round(s, 3),
                "refused_into_chat": [
                    f"{q['rule']} {q['method']} at +{q['after_press']} s"
                    for q in refused
                    if q["chat"] == uid and q["after_press"] >= 0
                ],
            }
            for s, uid in slowest
        ],
        "refused": refused,
        "group_after_press": [round(t - pressed, 2) for t in times],
        "group_per_window": _per_window(times),
        "sent_per_second_after_press": _per_second(surge, pressed, seconds=15),
        "group_messages": len(times),
        "group_span_seconds": round(span, 1),
        "group_first_after_press": round(times[0] - pressed, 2) if times else None,
        "group_last_after_press": round(times[-1] - pressed, 1) if times else None,
        "group_per_minute": per_minute,
        "group_ratio": per_minute / GROUP_LIMIT,
        "group_best_per_minute": best,
        "group_ratio_to_best": per_minute / best if best else 0.0,
        "references": len(references),
        "topics": sum(len(t) for t in topics.values()),
        "cards": sum(cards.values()),
        "lost_topics": sorted(r for r in references if r not in topics),
        "lost_cards": sorted(r for r in references if cards[r] == 0),
        "duplicated_topics": {r: len(t) for r, t in topics.items() if len(t) > 1},
        "duplicated_cards": {r: n for r, n in cards.items() if n > 1},
        "unknown_in_group": [r for r in (*topics, *cards) if r not in references],
        "in_order": group["in_order"],
    }


def _per_second(surge: Surge, pressed: float, seconds: int) -> list[int]:
    """Messages the server accepted into all chats in each second after the press."""
    counts = [0] * seconds
    for times in surge.api.sent_at.values():
        for at in times:
            if 0 <= at - pressed < seconds:
                counts[int(at - pressed)] += 1
    return counts


def _per_window(times: list[float]) -> list[int]:
    """Messages in each 60 s from the first one: the shape of the drain."""
    counts: list[int] = []
    for at in times:
        index = int((at - times[0]) // GROUP_WINDOW)
        counts.extend([0] * (index + 1 - len(counts)))
        counts[index] += 1
    return counts


# -- reporting ---------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.2f}"


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_summary(r: dict) -> None:
    changed = r.get("uncommitted_changes") or []
    print()
    print(
        f"surge: {r['workers']} workers, {r['think_seconds'][0]:g}-{r['think_seconds'][1]:g} s "
        f"a question, then all press {SUBMIT} at once; staff group {STAFF_CHAT}; Telegram's "
        "limits (group 20/60 s, private 5 then 1/s, 30/s overall)"
        + ("; kill -9 halfway" if r["kill_halfway"] else "")
    )
    print(
        f"code: commit {r.get('commit')}"
        + (f" + uncommitted changes to {', '.join(changed[:6])}" if changed else "")
        + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        + f"; database {r['database']}; {r['cpus']} cores, "
        f"busy before {r['machine_busy_before_pct']:.0f}%"
    )
    print(
        f"walk: {r['pressed']}/{r['workers']} at the review after {r['walk_seconds']:.0f} s"
        + (f"; stopped short: {r['walk_failed']}" if r["walk_failed"] else "")
    )
    print(f"{'seconds from the press':<34} {'p50':>6} {'p95':>6} {'max':>6}")
    print(
        f"{'  to the submitted reply (HL-…)':<34} {_s(r['submitted_p50'])} "
        f"{_s(r['submitted_p95'])} {_s(r['submitted_max'])}   "
        f"{r['answered']}/{r['pressed']} answered"
    )
    print(
        f"{'  to the main menu (turn complete)':<34} {_s(r['menu_p50'])} {_s(r['menu_p95'])} "
        f"{_s(r['menu_max'])}   messages per Submit turn: {r['replies_per_submit']}"
    )
    slowest = (
        f"{s['worker']} "
        + ("no reply" if s["seconds"] is None else f"{s['seconds']:.2f} s")
        + (
            f" (refused into its chat: {'; '.join(s['refused_into_chat'])})"
            if s["refused_into_chat"]
            else ""
        )
        for s in r["slowest"]
    )
    print("  slowest: " + ", ".join(slowest))
    print(
        f"staff group: {r['group_messages']} messages ({r['topics']} topics + {r['cards']} cards), "
        f"first at +{r['group_first_after_press']} s, last at +{r['group_last_after_press']} s "
        f"(span {r['group_span_seconds']:.0f} s); busiest 60 s: {r['busiest_group_minute']} "
        f"(limit {GROUP_LIMIT}); per 60 s from the first: {r['group_per_window']}"
    )
    rated = r["group_best_per_minute"] > 0  # more than one window's worth of messages
    print(
        f"  {r['group_per_minute']:.2f} messages/min from the first to the last; the best a "
        f"20-in-any-60 s schedule does for {r['group_messages']} messages: "
        f"{r['group_best_per_minute']:.2f}/min"
        if rated
        else f"  rate: not measured (at most {GROUP_LIMIT} messages: they fit in one window)"
    )
    lost = len(set(r["lost_topics"]) | set(r["lost_cards"]))
    duplicated = sum(n - 1 for n in r["duplicated_topics"].values()) + sum(
        n - 1 for n in r["duplicated_cards"].values()
    )
    print(
        f"tickets: {r['references']} references given, {r['tickets']} in the database; "
        f"lost: {len(r['lost_topics'])} topics, {len(r['lost_cards'])} cards; duplicated: "
        f"topics {r['duplicated_topics'] or 0}, cards {r['duplicated_cards'] or 0}; "
        f"topics opening with their own card: {r['in_order']}/{r['topics']}"
        + (
            f"; in the group but given to nobody: {r['unknown_in_group']}"
            if r["unknown_in_group"]
            else ""
        )
    )
    print(f"messages accepted per second after the press: {r['sent_per_second_after_press']}")
    refused = Counter(
        f"{q['rule']} {q['method']} "
        + ("during the walk" if q["after_press"] < 0 else "after the press")
        for q in r["refused"]
    )
    print(
        f"refused by the server (429): {len(r['refused'])}"
        + (f": {dict(refused)}" if refused else "")
    )
    group_refused = [q for q in r["refused"] if q["chat"] == STAFF_CHAT]
    if group_refused:
        print(
            "  into the staff group at +"
            + ", +".join(f"{q['after_press']} s ({q['rule']})" for q in group_refused[:10])
        )
    print(f"outbox at the end: {r['outbox']}")
    for n, log in enumerate(r["logs"], 1):
        print(
            f"hotline run {n}: exit {log['exit']}, {len(log['errors'])} errors, "
            f"{len(log['warnings'])} warnings logged"
            + "".join(f"\n  {line}" for line in (log["errors"] + log["warnings"])[:5])
        )
    kill = r.get("kill")
    if kill:
        repeated = [line for log in r["logs"] for line in log["repeated"]]
        print(
            f"kill -9 at +{kill['after_press_seconds']} s with {kill['cards_in_group']} cards "
            f"({kill['group_messages']} group messages) in; outbox then {kill['outbox_at_kill']}; "
            f"polling again {kill['restart_seconds']} s later"
        )
        print(
            "  the restart said: "
            + (repeated[0].split(": ", 1)[-1] if repeated else "nothing about rows being sent")
        )
    if r.get("gave_up"):
        print(f"the drain did not finish ({r['gave_up']}): figures are of what arrived")
    print(
        f"submitted reply: p95 {_s(r['submitted_p95']).strip()} s (target <= {TARGET_P95:g} s, "
        f"{_met((r['submitted_p95'] or 99) <= TARGET_P95)}), "
        f"max {_s(r['submitted_max']).strip()} s "
        f"(target <= {TARGET_MAX:g} s, {_met((r['submitted_max'] or 99) <= TARGET_MAX)})"
    )
    rate = (
        f"{r['group_per_minute']:.2f}/min ÷ {GROUP_LIMIT} = {r['group_ratio']:.2f} "
        f"(target >= {TARGET_GROUP_RATIO}, {_met(r['group_ratio'] >= TARGET_GROUP_RATIO)}); "
        f"÷ the best schedule = {r['group_ratio_to_best']:.2f}"
        if rated
        else "rate not measured"
    )
    print(
        f"staff group: {rate}; lost {lost} (target 0), duplicated {duplicated} (target 0), "
        f"refused {len(r['refused'])} (target 0)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers", type=int, default=100, help="workers who submit at once (default 100)"
    )
    parser.add_argument(
        "--database",
        default=None,
        help="hotline database: default a SQLite file in a temp dir; a "
        "postgresql+asyncpg://USER@HOST:PORT/DB URL runs on a scratch database created on "
        "that server and dropped afterwards",
    )
    parser.add_argument(
        "--kill-halfway",
        action="store_true",
        help="SIGKILL the hotline when half the cards are in the group, then start it again",
    )
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(1.0, 3.0),
        metavar=("MIN", "MAX"),
        help="seconds a worker thinks before each answer on the way to the review (default 1 3)",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="copy the hotline's logs to bench/results/surge-logs/",
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or not 0 <= args.think[0] <= args.think[1]:
        parser.error("--workers must be >= 1 and --think MIN MAX with 0 <= MIN <= MAX")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
