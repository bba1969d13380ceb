"""Which stored inbox rows run in this process, and when: the part of receiving that every
channel shares (Telegram's poll and webhook now, WeChat's callback next).

A channel stores what arrives in the inbox, each row in its lane (a person's chat, a ticket's
topic), and hands the new rows here. With one process every lane is held here and a row is
queued at once. With several on PostgreSQL (bot/cluster.py) a row in a lane another process
holds is announced for it; a lane nobody holds goes to whichever process takes it first,
usually the least busy (it waits less before taking), which then runs the lane's waiting rows
from the database in their stored order. Each process sweeps for lanes whose rows wait with
nobody holding them (a process died, or this one just started) and lets go of lanes idle for
LANE_KEPT_SECONDS, so that a person's next message usually finds their lane where it was.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cluster import INBOX_TOPIC, Cluster, Solo
from bot.lanes import Lanes
from db import inbox
from db.models import utcnow

log = logging.getLogger(__name__)

LANE_SWEEP_SECONDS = 1.0  # how often waiting lanes nobody holds are looked for
LANE_STRAY_SECONDS = 1.0  # how long a row waits before it counts as one (its storer takes it)
LANE_KEPT_SECONDS = 60.0  # how long an idle lane stays (and a person's flood window with it)
TAKE_DELAY_PER_TURN = 0.001  # seconds a process waits per turn queued before taking a lane
TAKE_LEADER_PENALTY = 10  # the leader counts as this many turns busier (it polls and sends)
TAKE_DELAY_MAX = 0.05
INBOX_FULL_WAIT = 0.1  # seconds between looks at a full inbox before receiving more
FINISHED_SEEN = 64  # rows finished here that a lane's reading may still list (see load_lane)

Payload = dict[str, Any]


class LaneKeeper:
    def __init__(
        self,
        *,
        channel: str,
        sessions: async_sessionmaker[AsyncSession],
        lanes: Lanes,
        cluster: Cluster | Solo,
        max_queued: int,
        lane_of: Callable[[Payload], str],
        run_row: Callable[[int, Payload], Awaitable[None]],
    ) -> None:
        self.channel = channel
        self.sessions = sessions
        self.lanes = lanes
        self.cluster = cluster
        self.max_queued = max_queued
        self.lane_of = lane_of  # the lane of a stored payload, as the channel stored it
        self.run_row = run_row  # one row's turn, in its lane
        self._prefix = f"{channel}:"
        cluster.listen(INBOX_TOPIC, self.heard)
        self._rows_queued: set[int] = set()  # inbox rows queued or running here
        # and the last ones finished: a lane read just before one finished still lists it
        self._rows_finished: collections.deque[int] = collections.deque(maxlen=FINISHED_SEEN)
        self._loads: set[asyncio.Task[None]] = set()
        self._last_active: dict[str, float] = {}  # lanes held here: when they last ran

    def queue(self, row_id: int, payload: Payload) -> None:
        """Runs the row in its lane, after the lane's rows queued before it."""
        lane = self.lane_of(payload)
        self._rows_queued.add(row_id)
        self._last_active[lane] = time.monotonic()
        self.lanes.submit(lane, lambda: self._run(lane, row_id, payload))

    async def queue_new(self, new: Sequence[tuple[int, Payload]]) -> None:
        """What was just stored, (row id, payload) in stored order: queued here when its lane
        is held here, announced otherwise (see the module's docstring)."""
        if not self.cluster.shared:
            for row_id, payload in new:
                self.queue(row_id, payload)
            return
        elsewhere = set()
        for row_id, payload in new:
            lane = self.lane_of(payload)
            if lane in self.cluster.held:
                self.queue(row_id, payload)
            else:
                elsewhere.add(lane)
        if elsewhere:
            await self.cluster.announce(INBOX_TOPIC, sorted(elsewhere))

    async def room(self) -> int:
        """How many more rows may be received: this process's queue bounds it, and with
        several processes so does the inbox's waiting rows, all processes together (any of
        them runs what this one stores)."""
        room = await self.lanes.room(self.max_queued)
        if not self.cluster.shared:
            return room
        while True:
            async with self.sessions() as session:
                waiting = await inbox.count_waiting(session, channel=self.channel)
            if waiting < self.max_queued:
                return self.max_queued - waiting
            await asyncio.sleep(INBOX_FULL_WAIT)

    async def load_lane(self, lane: str) -> None:
        """Queues a lane's waiting rows, in stored order, that are not queued here yet, as
        many as there is room for (the sweep comes back for the rest)."""
        async with self.sessions() as session:
            rows = await inbox.waiting_in_lane(session, channel=self.channel, lane=lane)
        for row in rows:
            if row.id in self._rows_queued or row.id in self._rows_finished:
                continue
            if self.lanes.pending >= self.max_queued:
                return
            self.queue(row.id, row.payload)

    def heard(self, lanes: list[str]) -> None:
        """A process stored rows in lanes it does not hold: those held here run, the others
        are taken if this process has room."""
        lanes = [lane for lane in lanes if lane.startswith(self._prefix)]  # another channel's
        held = [lane for lane in lanes if lane in self.cluster.held]
        free = [lane for lane in lanes if lane not in self.cluster.held]
        if free and self.lanes.pending >= self.max_queued:
            free = []  # full here: another process takes them, or the sweep later
        task = asyncio.create_task(self._take_and_load(held, free), name="lanes heard")
        self._loads.add(task)
        task.add_done_callback(self._loads.discard)

    async def keep_lanes(self) -> None:
        """With several processes, forever: takes the lanes whose rows wait with nobody
        holding them, and gives back the lanes idle here for LANE_KEPT_SECONDS, looking once
        more after letting go, so that a row announced while it was let go is not left."""
        while True:
            try:
                await self.keep_lanes_once()
            except Exception:  # the next round tries again
                log.exception("taking over waiting lanes failed")
            await asyncio.sleep(LANE_SWEEP_SECONDS)

    async def keep_lanes_once(self, stray_seconds: float = LANE_STRAY_SECONDS) -> None:
        quiet_since = time.monotonic() - LANE_KEPT_SECONDS
        idle = [
            lane
            for lane in self.cluster.held
            if lane.startswith(self._prefix)  # the process's other channels keep their own
            and not self.lanes.busy(lane)
            and self._last_active.get(lane, 0) < quiet_since
        ]
        if idle:
            await self.cluster.release(idle)
            for lane in idle:
                self._last_active.pop(lane, None)
        async with self.sessions() as session:
            waiting = await inbox.lanes_waiting(
                session, channel=self.channel, before=utcnow() - timedelta(seconds=stray_seconds)
            )
        for lane in sorted(waiting & self.cluster.held):  # an announcement missed
            await self.load_lane(lane)
        for lane in sorted(await self.cluster.take(waiting - self.cluster.held)):
            await self.load_lane(lane)

    async def stop(self) -> None:
        """Lanes being taken are let be: their rows stay in the inbox for whoever runs next."""
        for task in list(self._loads):
            task.cancel()
        await asyncio.gather(*self._loads, return_exceptions=True)

    async def _take_and_load(self, held: list[str], free: list[str]) -> None:
        try:
            taken = set()
            if free:
                # Every process hears the same announcement; a busy one waits a little
                # before taking, so that lanes go to where there is room.
                busy = self.lanes.pending + (TAKE_LEADER_PENALTY if self.cluster.leading else 0)
                await asyncio.sleep(min(TAKE_DELAY_MAX, TAKE_DELAY_PER_TURN * busy))
                taken = await self.cluster.take(free)
            for lane in [*held, *sorted(taken)]:
                await self.load_lane(lane)
        except Exception:  # the sweep finds what is left
            log.exception("could not take over announced lanes")

    async def _run(self, lane: str, row_id: int, payload: Payload) -> None:
        try:
            await self.run_row(row_id, payload)
        finally:
            self._rows_queued.discard(row_id)
            self._rows_finished.append(row_id)
            self._last_active[lane] = time.monotonic()
