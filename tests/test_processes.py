"""Several hotline processes on one PostgreSQL (bot/cluster.py), as `hotline run` runs them:
each person's updates in order and once, whichever process holds them, through kill -9."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest
from sqlalchemy import text
from sqlmodel import select

from bot.cluster import APPLICATION_NAME
from db.models import Conversation, InboxUpdate, Person
from db.session import create_engine, session_factory
from local_servers.telegram import FakeUser, LocalBotApi
from tests.conftest import empty_tables, run_apart
from tests.conversation import say
from tests.processes import hotline_process, killed_after
from tests.test_ordering import TO_STORY

pytestmark = pytest.mark.postgres
PEOPLE = 50
PARTS = 10


@pytest.fixture
def shared_database(postgres_url: str) -> str:
    """Several processes share PostgreSQL only (SQLite refuses: the last test)."""
    run_apart(empty_tables(postgres_url))
    return postgres_url


async def _rows(url: str, sql: str, **params: object) -> list:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(sql), params)).all()
    finally:
        await engine.dispose()


async def _lanes_held(url: str) -> dict[int, int]:
    """Advisory locks per PostgreSQL backend in this test's database: the lanes (and the
    lead) each process holds. pg_locks shows every database's, and the suite's other workers
    run hotlines of their own on the same server."""
    rows = await _rows(
        url,
        "SELECT pid, count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
        "database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "GROUP BY pid",
    )
    return {pid: count for pid, count in rows}


async def _processes_connected(url: str, count: int) -> bool:
    """Whether `count` hotline processes have their cluster connection open (and listen)."""
    [(found,)] = await _rows(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
        "AND datname = current_database()",
        name=APPLICATION_NAME,
    )
    return found >= count


async def _walk_to_story(worker: FakeUser) -> None:
    for answer in TO_STORY:
        await say(worker, answer)


async def _until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0, process.stderr.read()


async def test_two_processes_keep_each_persons_order_and_survive_kill_9(
    api: LocalBotApi, shared_database: str
) -> None:
    """50 people write to two processes at once; the leader (it polls and sends) is killed
    with -9 halfway through their interleaved messages; the other takes over its people and
    its outbox. Every story holds each part once, in the order sent."""
    workers = [api.user(5000 + n, language_code="en") for n in range(PEOPLE)]
    with killed_after(hotline_process(api, shared_database)) as leader:
        await say(workers[0], "/start")  # the first process leads before the second starts
        follower = hotline_process(api, shared_database)
        try:
            await _until(lambda: _processes_connected(shared_database, 2))
            await asyncio.gather(*(_walk_to_story(worker) for worker in workers))
            held = await _lanes_held(shared_database)
            # The follower holds no lead, so any lock of its own is a person's lane; which
            # process gets how many is the least-busy race's (bot/cluster.py).
            assert len(held) == 2, f"the process that does not lead runs people too: {held}"
            assert sum(held.values()) == PEOPLE + 1, "every person's lane, and the lead"
            for n in range(PARTS // 2):  # interleaved, without waiting for any reply
                for worker in workers:
                    worker.send(f"{worker.id} part {n}")
            await asyncio.sleep(0.3)  # some answered, some stored, some in flight
        except BaseException:
            follower.kill()
            raise
    assert leader.returncode == -signal.SIGKILL
    try:
        for n in range(PARTS // 2, PARTS):
            for worker in workers:
                worker.send(f"{worker.id} part {n}")
        engine = create_engine(shared_database)
        sessions = session_factory(engine)

        async def all_handled() -> bool:
            async with sessions() as session:
                waiting = await session.exec(
                    select(InboxUpdate.id).where(InboxUpdate.status == "received")
                )
                return not waiting.all() and api.pending_updates == 0

        await _until(all_handled)
        async with sessions() as session:
            for worker in workers:
                person = (
                    await session.exec(select(Person).where(Person.external_id == str(worker.id)))
                ).one()
                story = (await session.get(Conversation, person.id)).data["answers"]["story"]
                assert story == [f"{worker.id} part {n}" for n in range(PARTS)]
        await engine.dispose()
        for worker in workers:  # every part was answered (a reply in flight at the kill may
            await worker.next_messages(PARTS, timeout=30)  # come twice: Telegram has no key)
    finally:
        _stop(follower)


async def test_workers_refuses_sqlite(tmp_path) -> None:
    """`hotline run --workers 2` on SQLite says why in one sentence and starts nothing."""
    import os
    import sys

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'h.db'}",
        "TELEGRAM_BOT_TOKEN": "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "needs PostgreSQL" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "h.db").exists()
