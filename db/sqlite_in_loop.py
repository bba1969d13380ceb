"""SQLite called directly from the event loop, behind the interface SQLAlchemy expects of
aiosqlite.

Why not aiosqlite itself: it runs each call in a thread of its own, and SQLAlchemy makes four
hand-offs per statement (cursor, execute, fetch, close). Under load every hand-off waits a
full round of the busy event loop, and SQLite's single connection is held meanwhile: the
benchmark measured the hotline capped near 170 updates/s, the connection busy 99% of the
time. On a local file in WAL mode a statement takes microseconds, so doing it in the loop is
far cheaper than handing it off. PostgreSQL (asyncpg) is the path for heavy load.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any


async def connect(path: str) -> InLoopConnection:
    """The `async_creator` for SQLAlchemy's aiosqlite dialect."""
    connection = sqlite3.connect(path, timeout=30, isolation_level="", check_same_thread=False)
    return InLoopConnection(connection)


class InLoopCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def description(self):
        return self._cursor.description

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> InLoopCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> InLoopCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size or self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()


class _ImmediateQueue:
    """SQLAlchemy sets the isolation level through aiosqlite's private job queue."""

    def put_nowait(self, job: tuple[Any, Callable[[], Any]]) -> None:
        future, function = job
        try:
            future.set_result(function())
        except Exception as error:  # handed back to the awaiting code, as aiosqlite does
            future.set_exception(error)


class InLoopConnection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._tx = _ImmediateQueue()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    async def cursor(self) -> InLoopCursor:
        return InLoopCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Iterable[Any] = ()) -> InLoopCursor:
        return InLoopCursor(self._conn.execute(sql, parameters))

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)
