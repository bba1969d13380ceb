"""The pacer keeps each destination within Telegram's limits, on a clock moved by hand: every
window it allows holds no more than Telegram's server lets through."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.delivery import pacing
from bot.delivery.pacing import Pacer, Paces
from bot.delivery.sender import Queued, Sender, _replies_to_merge
from db.models import utcnow
from handlers.messages import Place, Reply
from local_servers.telegram import busiest_window


class HandClock:
    """Time moves only when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> HandClock:
    clock = HandClock()
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        clock.now += seconds
        await real_sleep(0)

    monkeypatch.setattr(pacing.asyncio, "sleep", sleep)
    return clock


async def test_the_bot_never_sends_more_than_its_rate_in_any_second(clock: HandClock) -> None:
    pacer = Pacer(Paces(), clock=clock)
    sent: list[float] = []

    async def one(chat: str) -> None:
        await pacer.private(chat)
        sent.append(clock())

    await asyncio.gather(*(one(str(n)) for n in range(120)))
    assert len(sent) == 120
    assert busiest_window(sent, 1.0) <= 30


async def test_the_staff_group_gets_twenty_a_minute_and_a_chat_a_burst_then_one_a_second(
    clock: HandClock,
) -> None:
    pacer = Pacer(Paces(), clock=clock)
    group: list[float] = []
    for _ in range(45):
        await pacer.group("-100")
        group.append(clock())
    assert busiest_window(group, 60.0) <= 20
    assert group[-1] - group[0] >= 2 * 60, "45 messages need more than two minutes"
    chat: list[float] = []
    for _ in range(10):
        await pacer.private("7")
        chat.append(clock())
    assert chat[4] == chat[0], "a burst of five at once"
    assert all(later - earlier >= 0.99 for earlier, later in zip(chat[4:], chat[5:], strict=False))


async def test_conversation_goes_before_bulk() -> None:
    """On the real clock: 40 bulk sends and then 20 replies want seconds of 20 each."""
    pacer = Pacer(Paces(overall_per_second=20))
    order: list[str] = []

    async def send(name: str, *, bulk: bool) -> None:
        await pacer.private(name, bulk=bulk)
        order.append(name)

    bulk = [asyncio.create_task(send(f"bulk{n}", bulk=True)) for n in range(40)]
    await asyncio.sleep(0)  # the first second goes to the bulk sends already in line
    replies = [asyncio.create_task(send(f"reply{n}", bulk=False)) for n in range(20)]
    await asyncio.gather(*bulk, *replies)
    assert order[:20] == [f"bulk{n}" for n in range(20)]
    assert set(order[20:40]) == {f"reply{n}" for n in range(20)}, "the replies overtake"


async def test_a_429_pauses_only_that_destination(clock: HandClock) -> None:
    pacer = Pacer(Paces(), clock=clock)
    await pacer.private("1")
    await pacer.private("2")
    start = clock()
    pacer.pause("1", 5.0)
    await pacer.private("2")
    assert clock() == start, "another chat is not held up"
    await pacer.private("1")
    assert clock() >= start + 5.0


async def test_a_new_run_counts_the_groups_last_minute_before_sending_there(
    clock: HandClock,
) -> None:
    pacer = Pacer(Paces(), clock=clock)
    pacer.seed_group("-100", [10.0] * 19 + [5.0, 90.0])  # 20 within the minute, 1 long ago
    assert pacer.group_counted("-100") == 20
    start = clock()
    await pacer.group("-100")
    assert clock() >= start + pacing.GROUP_WINDOW - 10.0, "it waits for the oldest to leave"
    assert clock() < start + pacing.GROUP_WINDOW - 5.0


def test_a_reply_with_a_map_pin_is_never_merged_into_others() -> None:
    def row(n: int, *, held: bool = False, place: bool = False) -> Queued:
        reply = Reply(f"text {n}", place=Place(31.38, 120.98, "站", "路") if place else None)
        body = {"to": "chat", "reply": reply.to_dict()}
        return Queued(n, "private", "telegram:chat:1", body, held)

    queue = [row(1), row(2, place=True), row(3)]
    assert [r.id for r in _replies_to_merge(queue, queue[0])] == [1]
    assert [r.id for r in _replies_to_merge(queue, queue[1])] == [2]
    held = [row(1, held=True), row(2, held=True, place=True), row(3, held=True)]
    batch, _ = Sender._next(held, utcnow() + timedelta(seconds=1))
    assert [r.id for r in batch] == [1], "held replies gather up to the pin, which goes alone"
