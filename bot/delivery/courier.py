"""Where what a turn decided goes to be sent: this process's sender when it leads, else the
leader's, told by NOTIFY (bot/cluster.py says why one process sends everything).

The calls are the sender's own (wake, hold, release, drop), in the order the turn made them;
the leader applies them in the order they arrive. A follower that dies between its commit
and its announcement loses nothing: the leader's refresh reads pending rows every few seconds
(bot/service.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from bot.cluster import OUTBOX_TOPIC, Cluster, Solo
from bot.delivery.sender import Queued, Sender
from db import outbox

log = logging.getLogger(__name__)


class Courier:
    def __init__(self, sender: Sender, cluster: Cluster | Solo) -> None:
        self.sender = sender
        self.cluster = cluster
        self._heard: asyncio.Queue[list[dict]] = asyncio.Queue()
        self._applying: asyncio.Task[None] | None = None
        cluster.listen(OUTBOX_TOPIC, self._heard.put_nowait)

    async def hand(self, calls: Sequence[dict]) -> None:
        """`calls`: {"wake": [ids]}, {"hold": lane, "until": iso}, {"release": lane},
        {"drop": lane, "before": id}, {"unpark": lane}, with the woken rows in `rows` for
        the local sender."""
        if not calls:
            return
        if self.cluster.leading:
            await self._apply(calls)
        else:
            await self.cluster.announce(OUTBOX_TOPIC, [_portable(call) for call in calls])

    def start_applying(self) -> None:
        """The leader applies what the others announce (and what it missed before leading
        is in the database, read by the sender's start)."""
        if self._applying is None:
            self._applying = asyncio.create_task(self._apply_heard(), name="outbox-courier")

    async def stop(self) -> None:
        if self._applying is not None:
            self._applying.cancel()
            await asyncio.gather(self._applying, return_exceptions=True)

    async def _apply_heard(self) -> None:
        while True:
            calls = [await self._heard.get()]
            while not self._heard.empty():  # what came meanwhile goes in one round
                calls.append(self._heard.get_nowait())
            try:
                await self._apply([call for batch in calls for call in batch])
            except Exception:  # the rows stay pending: the next refresh finds them
                log.exception("could not take over rows announced by another process")

    async def _apply(self, calls: Sequence[dict]) -> None:
        for call in calls:
            if "wake" in call:
                rows = call.get("rows")
                if rows is None:  # announced: read from the database
                    rows = await self._read(call["wake"])
                self.sender.wake(rows)
            elif "hold" in call:
                self.sender.hold(call["hold"], datetime.fromisoformat(call["until"]))
            elif "release" in call:
                self.sender.release(call["release"])
            elif "unpark" in call:
                self.sender.unpark(call["unpark"])
            elif "drop" in call:
                self.sender.drop(call["drop"], before=call["before"])

    async def _read(self, ids: list[int]) -> list[Queued]:
        async with self.sender.sessions() as session:
            rows = await outbox.pending_of(session, ids=ids)
        return [Queued.of(row) for row in rows]


def wake(rows: Sequence[Queued]) -> dict:
    return {"wake": [row.id for row in rows], "rows": list(rows)}


def hold(lane: str, until: datetime) -> dict:
    return {"hold": lane, "until": until.isoformat()}


def release(lane: str) -> dict:
    return {"release": lane}


def unpark(lane: str) -> dict:
    return {"unpark": lane}


def drop(lane: str, *, before: int) -> dict:
    return {"drop": lane, "before": before}


def _portable(call: dict) -> dict:
    return {key: value for key, value in call.items() if key != "rows"}
