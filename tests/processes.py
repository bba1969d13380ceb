"""The hotline as a process of its own, for tests that kill it with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

from local_servers.telegram import LocalBotApi


def hotline_process(api: LocalBotApi, database_url: str, **settings: str) -> subprocess.Popen:
    """`hotline run` against the local server; its log (WARNING and up) on stderr, as text.
    Tests answer faster than people: the flood limit and the private chats' pace are lifted."""
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_API_BASE_URL": api.base_url,
        "DATABASE_URL": database_url,
        "HOTLINE_LOG_LEVEL": "WARNING",
        "HOTLINE_FLOOD_MESSAGES": "1000",
        "HOTLINE_CHAT_BURST": "1000",
        "HOTLINE_CHAT_SENDS_PER_SECOND": "1000",
        **settings,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def killed_after(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """The block runs with the process alive and ends with it killed (SIGKILL): the moment
    the block chose, or the moment it failed."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)
