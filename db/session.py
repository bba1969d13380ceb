"""The async engine and sessions: one engine per process, one session per turn."""

from __future__ import annotations

from functools import partial

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from db import sqlite_in_loop


def create_engine(database_url: str) -> AsyncEngine:
    """SQLite gets one connection, called from the event loop (db/sqlite_in_loop.py): it has
    one writer anyway, and a turn's statements then run without yielding in between."""
    if database_url.startswith("sqlite"):
        path = make_url(database_url).database or ":memory:"
        engine = create_async_engine(
            database_url,
            pool_size=1,
            max_overflow=0,
            async_creator=partial(sqlite_in_loop.connect, path),
            hide_parameters=True,  # errors and logs never print what people wrote
        )
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    # 16 turns at once (bot/channels/telegram/channel.py) and the outbox's marks: 20
    # connections kept open. An overflow above a smaller pool was closed on return, and under
    # load opened again, a new PostgreSQL backend many times a second (bench/processes.py).
    # Four processes take 80 of PostgreSQL's default 100 (docs/scaling.md).
    return create_async_engine(
        database_url, pool_size=20, max_overflow=0, pool_pre_ping=True, hide_parameters=True
    )


def _tune_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted and overwritten rows are zeroed in the file, so what /forget erased is gone from
    # the disk too, not only from the tables (with `erase_traces` for the write-ahead log).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


async def erase_traces(engine: AsyncEngine) -> None:
    """Copies SQLite's write-ahead log into the database file and empties the log, whose
    frames still hold the pages as they were before an erasure. PostgreSQL keeps dead rows
    until VACUUM reclaims them (autovacuum); nothing to do from here."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
