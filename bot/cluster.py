"""Several hotline processes on one PostgreSQL: which process leads, and which holds whose lane.

Every process takes updates (the leader's poll, or any process's webhook) and handles them, a
person at a time: a person's lane (bot/lanes.py) runs in the one process that holds it. Holding
is a PostgreSQL advisory lock, on a connection each process keeps for its lifetime; a process
that dies, kill -9 included, drops its connection and with it every lock, so another process
takes the lane over at once, from the inbox, where every unhandled update of it is stored.
A turn marks its inbox row handled only if nobody has (db/inbox.py, finish_turn), so even a
process that lost its locks without knowing it cannot handle an update twice.

One process leads (one more advisory lock): it polls Telegram (two pollers would get 409), runs
the periodic jobs (SLA reminders, failure alerts, pruning, broadcasts) and carries out the
whole outbox, so that the pace of every destination (a chat's one a second, the staff group's
20 a minute, the bot's 30 a second) is kept in one place; Telegram's limits are far below what
one process sends. The others tell it about the rows their turns wrote with NOTIFY.

On SQLite there is one process; `Solo` is this module's interface for it: everything is held.
asyncpg is used directly here rather than through SQLAlchemy: LISTEN, and a connection that is
never returned to the pool, are the whole job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

INBOX_TOPIC = "hotline_inbox"  # payload: lanes with new rows that the storer could not take
OUTBOX_TOPIC = "hotline_outbox"  # payload: what the leader's sender must do (see Courier)
LEADER = "hotline:leader"
APPLICATION_NAME = "hotline-cluster"
NOTIFY_BYTES = 7000  # PostgreSQL's payload limit is 8,000 bytes: longer lists go in parts


class Solo:
    """One process: it leads and holds every lane (SQLite, or a test of one process)."""

    shared = False
    leading = True

    def __init__(self) -> None:
        self.held: set[str] = set()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def lead(self) -> bool:
        return True

    async def take(self, lanes: Iterable[str]) -> set[str]:
        return set(lanes)

    async def release(self, lanes: Iterable[str]) -> None:
        return None

    async def announce(self, topic: str, items: list[Any]) -> None:
        return None

    def listen(self, topic: str, callback: Callable[[list[Any]], None]) -> None:
        return None


class Cluster:
    """This process's place among the others on one PostgreSQL database."""

    shared = True

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._connection: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the one connection
        self._listeners: dict[str, list[Callable[[list[Any]], None]]] = {}
        self.held: set[str] = set()  # lanes whose lock this process holds
        self.leading = False
        self._closing = False

    async def open(self) -> None:
        # Named, so that `SELECT * FROM pg_stat_activity WHERE application_name = ...` shows
        # the processes of a hotline (and tests wait for them).
        self._connection = await asyncpg.connect(
            self._dsn, server_settings={"application_name": APPLICATION_NAME}
        )
        self._connection.add_termination_listener(self._lost)
        for topic in self._listeners:
            await self._connection.add_listener(topic, self._heard)

    async def close(self) -> None:
        self._closing = True
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()  # every lock goes with it

    def listen(self, topic: str, callback: Callable[[list[Any]], None]) -> None:
        """Before open(): `callback` gets the items of every announcement on `topic` (every
        channel's lane keeper listens to the inbox's, each taking its own channel's lanes)."""
        self._listeners.setdefault(topic, []).append(callback)

    async def lead(self) -> bool:
        """Tries to become the leader; once it is, it stays until the process ends."""
        if not self.leading:
            self.leading = bool(await self._take([LEADER]))
        return self.leading

    async def take(self, lanes: Iterable[str]) -> set[str]:
        """Takes what it can of the lanes not held here; returns those it took."""
        wanted = sorted(set(lanes) - self.held)
        if not wanted:
            return set()
        taken = await self._take(wanted)
        self.held |= taken
        return taken

    async def release(self, lanes: Iterable[str]) -> None:
        gone = sorted(set(lanes) & self.held)
        if not gone:
            return
        self.held -= set(gone)
        async with self._lock:
            await self._conn().execute(
                "SELECT pg_advisory_unlock(hashtextextended(lane, 0)) FROM unnest($1::text[]) lane",
                gone,
            )

    async def announce(self, topic: str, items: list[Any]) -> None:
        """NOTIFY the other processes (and this one); long lists in several payloads."""
        for part in _parts(items):
            async with self._lock:
                await self._conn().execute("SELECT pg_notify($1, $2)", topic, part)

    async def _take(self, keys: list[str]) -> set[str]:
        # A session-level lock taken twice by one session is held twice, so a key already
        # held here is never asked for again (the callers go through `held`).
        async with self._lock:
            rows = await self._conn().fetch(
                "SELECT key FROM unnest($1::text[]) key "
                "WHERE pg_try_advisory_lock(hashtextextended(key, 0))",
                keys,
            )
        return {row["key"] for row in rows}

    def _conn(self) -> asyncpg.Connection:
        if self._connection is None:
            raise RuntimeError("the cluster connection is not open")
        return self._connection

    def _heard(self, _connection, _pid: int, topic: str, payload: str) -> None:
        items = json.loads(payload)
        for callback in self._listeners.get(topic, ()):
            try:
                callback(items)
            except Exception:  # one bad message must not stop the listening
                log.exception("could not act on a %s announcement", topic)

    def _lost(self, _connection) -> None:
        """The locks went with the connection: another process may now hold this one's lanes
        and lead. Handling on would risk order, so the process stops (a supervisor, or
        `hotline run --workers`, starts it again) and loses nothing: all is in the inbox."""
        if self._closing:
            return
        log.critical("lost the database connection that holds this process's lanes: stopping")
        os.kill(os.getpid(), signal.SIGTERM)


def _parts(items: list[Any]) -> list[str]:
    parts: list[str] = []
    current: list[Any] = []
    size = 2
    for item in items:
        length = len(json.dumps(item)) + 1
        if current and size + length > NOTIFY_BYTES:
            parts.append(json.dumps(current))
            current, size = [], 2
        current.append(item)
        size += length
    if current:
        parts.append(json.dumps(current))
    return parts


def cluster_for(database_url: str) -> Cluster | Solo:
    """PostgreSQL may be shared by several processes; SQLite never is."""
    return Cluster(database_url) if database_url.startswith("postgresql") else Solo()
