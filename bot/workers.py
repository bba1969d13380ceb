"""`hotline run --workers N`: N hotline processes on one PostgreSQL, started and kept running.

Each child is a plain `hotline run` (bot/cluster.py makes them share the work); this parent
only starts them, starts again one that dies (after a pause, so a child that cannot start does
not spin), and passes Ctrl-C or SIGTERM on. With a webhook the children listen on the same port
(SO_REUSEPORT: the kernel spreads Telegram's connections over them) and share one secret.
SQLite has one writer, so there it refuses: several processes would only wait for each other.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time

from bot.settings import Settings, SettingsError

log = logging.getLogger(__name__)

RESTART_PAUSE = 2.0  # seconds before a child that died is started again
STOP_GRACE = 30.0  # seconds children get to finish their turns before they are killed


def check_workers(settings: Settings, workers: int) -> None:
    if workers > 1 and not settings.database_url.startswith("postgresql"):
        raise SettingsError(
            f"--workers {workers} needs PostgreSQL: SQLite has one writer, so the hotline "
            "runs as one process on it (DATABASE_URL=postgresql+asyncpg://...)."
        )


def supervise(settings: Settings, workers: int, flags: list[str]) -> int:
    """Runs `workers` children with `flags` (the parent's own run flags) until signalled."""
    env = dict(os.environ, HOTLINE_LISTEN_SHARED="1")
    if settings.webhook_url and settings.webhook_secret is None:
        env["HOTLINE_WEBHOOK_SECRET"] = secrets.token_urlsafe(32)
    command = [sys.executable, "-m", "bot", "run", *flags]
    stopping = False

    def stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children = [subprocess.Popen(command, env=env) for _ in range(workers)]
    log.info("started %d hotline processes: %s", workers, [c.pid for c in children])
    while not stopping:
        time.sleep(0.2)
        for index, child in enumerate(children):
            if child.poll() is None or stopping:
                continue
            log.warning(
                "hotline process %d ended (exit %s); starting another in %.0f s",
                child.pid,
                child.returncode,
                RESTART_PAUSE,
            )
            time.sleep(RESTART_PAUSE)
            if not stopping:
                children[index] = subprocess.Popen(command, env=env)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("hotline process %d did not stop in time: killed", child.pid)
            child.kill()
            child.wait()
    return 0
