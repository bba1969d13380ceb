"""Nothing unbounded: the poller stops calling getUpdates while the queue is full (Telegram
keeps the rest), and a start pages through a stored backlog instead of loading it whole;
either way every update is answered, in order per person."""

from __future__ import annotations

import asyncio

import pytest

from bot.service import Hotline
from bot.settings import Settings, load_settings
from db import inbox
from db.models import utcnow
from db.session import create_engine, session_factory
from local_servers.telegram import LocalBotApi
from tests.conftest import OfficeClock
from tests.conversation import texts

BOUND = 4
# Each worker's three messages and what their replies say, in this order.
MESSAGES = ("/start", "English", "/help")
ANSWERS = ("Choose a language", "How can we help?", "How it works")


@pytest.fixture
async def small_queue(api: LocalBotApi, database_url: str):
    """Starts the hotline with a queue bound of BOUND updates (and pages of `resume_batch`)."""
    running: list[Hotline] = []

    async def start(*, resume_batch: int = 100) -> Hotline:
        settings = load_settings(
            Settings,
            telegram_bot_token=api.token,
            telegram_api_base_url=api.base_url,
            database_url=database_url,
            max_sends_per_second=1000,
            flood_messages=1000,
        )
        hotline = Hotline(settings, poll_timeout=1, retry_delay=0.05, clock=OfficeClock())
        hotline.telegram.max_queued = BOUND
        hotline.telegram.resume_batch = resume_batch
        queued: list[int] = []
        submit = hotline.telegram.lanes.submit

        def counted(key, job) -> None:
            submit(key, job)
            queued.append(hotline.telegram.lanes.pending)

        hotline.telegram.lanes.submit = counted
        hotline.queued = queued  # how many were queued after each submit
        await hotline.start()
        running.append(hotline)
        return hotline

    yield start
    for hotline in running:
        await hotline.stop()


async def answered_in_order(worker) -> None:
    seen = []
    while not any(ANSWERS[-1] in m.plain for m in seen):
        seen.append(await worker.next_message(timeout=15))
    said = texts(seen)
    positions = [said.index(answer) for answer in ANSWERS]
    assert positions == sorted(positions), said


async def test_the_poller_stops_fetching_while_the_queue_is_full(
    api: LocalBotApi, small_queue
) -> None:
    hotline = await small_queue()
    workers = [api.user(2201 + n, language_code="en") for n in range(3)]
    stalled, handle = asyncio.Event(), hotline.engine.handle
    started: list[str] = []

    async def slow_turn(inbound, **kwargs):  # every turn stalls: nothing leaves the queue
        started.append(inbound.person_id)
        await stalled.wait()
        return await handle(inbound, **kwargs)

    hotline.engine.handle = slow_turn
    try:
        await _fill_the_queue(api, hotline, workers, started)
    finally:  # a failure must not leave the turns stalled for the fixture's stop
        stalled.set()
    for worker in workers:
        await answered_in_order(worker)
    assert max(hotline.queued) <= BOUND


async def _fill_the_queue(api: LocalBotApi, hotline, workers, started: list[str]) -> None:
    for text in MESSAGES:
        for worker in workers:
            worker.send(text)
    # One process queues each worker's first message; several on PostgreSQL load a lane's
    # waiting rows together (bot/cluster.py): either way the queue fills to its bound.
    deadline = asyncio.get_running_loop().time() + 20
    while hotline.telegram.lanes.pending < BOUND or not started:
        assert asyncio.get_running_loop().time() < deadline, "the queue never filled"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # let the poller do whatever it would
    polls = len(api.calls("getUpdates"))
    await asyncio.sleep(1.5)  # longer than its long poll: a free poller would have polled
    assert len(api.calls("getUpdates")) == polls, "no getUpdates while the queue is full"
    assert not api.polling
    assert hotline.telegram.lanes.pending == BOUND
    assert api.pending_updates == len(MESSAGES) * len(workers), "Telegram keeps them all"
    drain_at_start, *polls_after = api.calls("getUpdates")  # the start stores all Telegram had
    assert drain_at_start["timeout"] == 0
    assert all(call["limit"] <= BOUND for call in polls_after), "never more than there is room"


async def test_a_start_pages_through_a_stored_backlog_in_order(
    api: LocalBotApi, database_url: str, small_queue
) -> None:
    """A dead run left more stored updates than a page and than the queue holds."""
    workers = [api.user(2211 + n, language_code="en") for n in range(4)]
    rows, update_id = [], 7000
    for text in MESSAGES:
        for worker in workers:
            update_id += 1
            content = {"text": text}
            if text.startswith("/"):
                content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
            message = worker.compose(worker.user, content)
            update = {"update_id": update_id, "message": message}
            rows.append((update_id, f"telegram:{worker.id}", update))
    engine = create_engine(database_url)
    async with session_factory(engine)() as session, session.begin():
        await inbox.store_updates(session, channel="telegram", now=utcnow(), updates=rows)
    await engine.dispose()
    hotline = await small_queue(resume_batch=3)
    for worker in workers:
        await answered_in_order(worker)
    assert len(hotline.queued) >= len(rows)
    assert max(hotline.queued) <= BOUND, "never more than the bound in memory"
