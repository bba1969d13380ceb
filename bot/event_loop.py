"""The event loop the hotline's commands run on: uvloop where it is installed.

uvloop runs the loop's own work (sockets, timers, callbacks) in C; bench/throughput.py
measures what it gives the hotline. It is a dependency on Linux and macOS (pyproject.toml);
elsewhere, or with HOTLINE_ASYNCIO_LOOP=asyncio for a debugger that needs the pure-Python loop,
the standard loop runs the same code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop, or None for asyncio's default."""
    if os.environ.get("HOTLINE_ASYNCIO_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on the loop above."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def name() -> str:
    """Which loop run() uses, for logs and benchmark reports."""
    return "uvloop" if loop_factory() is not None else "asyncio"
