"""Fixtures: the local Bot API server, a database (SQLite and PostgreSQL), a running hotline.

Every test that takes `database_url` runs twice, on SQLite and on PostgreSQL. PostgreSQL is
found at HOTLINE_TEST_POSTGRES_URL (default: 127.0.0.1:5432, trust auth, database `test`);
locally the PostgreSQL runs skip with a reason when it is unreachable, in CI (CI=true) they
fail instead, so they can never silently not run there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.service import Hotline
from bot.settings import Settings, load_settings
from content.catalog import Catalog
from db.migrate import upgrade
from db.models import SQLModel
from db.session import create_engine
from local_servers.telegram import LocalBotApi, TelegramLimits

POSTGRES_URL = os.environ.get(
    "HOTLINE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def run_apart(coroutine: Awaitable[object]) -> object:
    """Runs set-up work on an event loop of its own: session fixtures are requested from
    inside tests' running loops, where asyncio.run is not allowed."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _migrated_sqlite(path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    await engine.dispose()


async def _create_postgres_database(name: str) -> str:
    admin = create_engine(POSTGRES_URL)
    admin = admin.execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    return url


async def _drop_postgres_database(name: str) -> None:
    admin = create_engine(POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test: cheaper than migrating each time."""
    path = tmp_path_factory.mktemp("template") / "hotline.db"
    run_apart(_migrated_sqlite(path))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A migrated database of our own on the PostgreSQL server, dropped at the end."""
    name = f"hotline_test_{uuid.uuid4().hex[:10]}"
    try:
        url = run_apart(_create_postgres_database(name))
    except (OSError, Exception) as error:  # unreachable, refused, no permission
        message = f"PostgreSQL at {POSTGRES_URL} is not usable: {error}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield url
    run_apart(_drop_postgres_database(name))


async def empty_tables(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "hotline.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    run_apart(empty_tables(url))
    return url


@pytest.fixture
async def api() -> AsyncIterator[LocalBotApi]:
    """The local Bot API with Telegram's group limit (20 a minute into the staff group), which
    the hotline paces itself to, and the overall and private-chat limits lifted: tests answer
    faster than people (the hotline's own limits are lifted in start_hotline), so under them a
    worker's burst of replies would wait a second a message and most tests would time out.

    A test of pacing starts a server of its own with all of Telegram's limits, or some::

        async with LocalBotApi(limits=TelegramLimits()) as api:  # Telegram's real limits
            ...
        api.limits = TelegramLimits(group_per_minute=20, private_burst=None)  # while running
        api.rate_limited  # [(method, chat_id, rule, retry_after), ...] refused with 429
        api.sent_at[chat_id]  # when each accepted message went into that chat
    """
    limits = TelegramLimits(overall_per_second=None, private_burst=None, private_per_second=None)
    async with LocalBotApi(limits=limits) as server:
        yield server


@pytest.fixture
def catalog() -> Catalog:
    return Catalog()


StartHotline = Callable[..., Awaitable[Hotline]]
OFFICE_MORNING = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


class OfficeClock:
    """Runs from a chosen moment at the real pace; `advance` jumps ahead. The suite starts
    on a Monday morning in office hours, so no test depends on when it is run."""

    def __init__(self, start: datetime = OFFICE_MORNING) -> None:
        self.start, self.began, self.skipped = start, time.monotonic(), timedelta()

    def __call__(self) -> datetime:
        return self.start + self.skipped + timedelta(seconds=time.monotonic() - self.began)

    def advance(self, delta: timedelta) -> None:
        self.skipped += delta


@pytest.fixture
async def start_hotline(api: LocalBotApi, database_url: str) -> AsyncIterator[StartHotline]:
    """Starts the real hotline against the local server; stopped at the end of the test.

    Tests answer faster than people, so the flood limit is lifted unless a test sets it."""
    running: list[Hotline] = []

    async def start(clock=None, **settings: object) -> Hotline:
        values = {
            "telegram_bot_token": api.token,
            "telegram_api_base_url": api.base_url,
            "database_url": database_url,
            "max_sends_per_second": 1000,
            "chat_burst": 1000,
            "chat_sends_per_second": 1000,
            "flood_messages": 1000,
            **settings,
        }
        hotline = Hotline(
            load_settings(Settings, **values),
            poll_timeout=1,
            retry_delay=0.05,
            clock=clock or OfficeClock(),
        )
        await hotline.start()
        running.append(hotline)
        return hotline

    yield start
    for hotline in running:
        await hotline.stop()


@pytest.fixture
async def hotline(start_hotline: StartHotline) -> Hotline:
    return await start_hotline()
