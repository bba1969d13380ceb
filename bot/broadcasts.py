"""Sends broadcasts: starts the scheduled ones whose time has come (writing one delivery row
per recipient), hands their deliveries to the outbox a window at a time as bulk rows sent
only once, reads back what became of each, and keeps the progress message in the staff group
up to date. Run every second; a restarted run takes over where the dead one stopped.

The outbox holds a broadcast's next few seconds only (`FEED_SECONDS` at the bulk rate), not
its 100,000 rows: memory stays flat, a pause or a cancel takes effect within those seconds,
and two broadcasts at once share the window and so the rate.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.items import enqueue
from bot.delivery.sender import Queued, Sender
from content.catalog import Catalog
from db import broadcasts
from db.models import Broadcast, BroadcastStatus, DeliveryStatus, OutboxItem, Pace, utcnow
from db.outbox import NewItem, chat_lane, group_lane, mass_lane
from handlers.notices import notice_reply
from handlers.staff_broadcast import final_reply, progress_reply

log = logging.getLogger(__name__)
FEED_SECONDS = 2.0  # of sending handed to the outbox ahead, at the bulk rate
MIN_WINDOW = 2  # a very low rate still keeps a next one ready
PROGRESS_SECONDS = 5.0  # the progress message is redrawn this often (edits: no group quota)
RATE_SECONDS = 15.0  # the rate shown is the average over this long
# Channels whose broadcasts go as one message to a list of people, and how many such a person
# may get in a calendar month: WeChat's mass send, 4 a month to a service account's follower.
MASS_SEND = {"wechat": 4}


class Broadcaster:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        sender: Sender,
        channel: str,
        per_second: float,
        staff_group: bool,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.sender = sender
        self.channel = channel
        self.window = max(MIN_WINDOW, int(per_second * FEED_SECONDS))
        self.staff_group = staff_group
        self.clock = clock
        self._replies: dict[
            tuple[int, str, str | None], dict
        ] = {}  # a notice per language, rendered once
        self._drawn: dict[int, float] = {}  # broadcast id: when its progress was last redrawn
        self._drawing: dict[int, int] = {}  # broadcast id: its last redraw's outbox row
        self._done_counts: dict[int, deque[tuple[float, int]]] = {}  # for the rate
        self._active: set[int] = set()  # sending or paused at the last round
        self._undrawn: set[int] = set()  # ended, their progress message not yet redrawn so

    async def tick(self) -> None:
        """One round: start what is due, feed what is sending, redraw the progress."""
        queued: list[Queued] = []
        now = self.clock()
        async with self.sessions() as session, session.begin():
            for broadcast in await broadcasts.due(session, now=now):
                queued += await self._start(session, broadcast, now)
        async with self.sessions() as session:
            running = await broadcasts.running(session)
        sending = [b for b in running if b.status == BroadcastStatus.SENDING]
        share = max(1, self.window // max(1, len(sending)))
        for broadcast in running:
            async with self.sessions() as session, session.begin():
                broadcast = await session.get(Broadcast, broadcast.id, with_for_update=True)
                if broadcast is not None and broadcast.status in broadcasts.RUNNING:
                    queued += await self._feed(session, broadcast, share, now)
        # Cancelled since the last round (a button, the command line), or done before its
        # progress message was out: drawn once more, as they ended.
        ended = (self._active - {b.id for b in running}) | self._undrawn
        self._active = {b.id for b in running}
        for broadcast_id in ended:
            async with self.sessions() as session, session.begin():
                broadcast = await session.get(Broadcast, broadcast_id)
                if broadcast is None or not self.staff_group:
                    self._undrawn.discard(broadcast_id)
                    continue
                counts = await broadcasts.counts(session, broadcast_id=broadcast_id)
                drawn = await self._redraw(session, broadcast, counts, now, force=True)
                queued += drawn
                if drawn:
                    self._undrawn.discard(broadcast_id)
                else:
                    self._undrawn.add(broadcast_id)
        self.sender.wake(queued)

    async def _start(self, session: AsyncSession, broadcast: Broadcast, now: datetime):
        total = await broadcasts.start_sending(
            session, broadcast=broadcast, fallback=self.catalog.languages[0], now=now
        )
        log.info("broadcast %s: sending to %d worker(s)", broadcast.id, total)
        if not self.staff_group:
            return []
        counts = await broadcasts.counts(session, broadcast_id=broadcast.id)
        reply = progress_reply(self.catalog, broadcast, counts, rate=None, now=now)
        lane = group_lane(self.channel, broadcast.thread_id)
        body = {"to": "group", "thread": broadcast.thread_id, "reply": reply.to_dict()}
        rows = await enqueue(session, [NewItem(self.channel, Pace.GROUP, lane, body)], now=now)
        broadcast.progress_outbox_id = rows[0].id
        session.add(broadcast)
        return rows

    async def _feed(
        self, session: AsyncSession, broadcast: Broadcast, share: int, now: datetime
    ) -> list[Queued]:
        await broadcasts.take_outcomes(session, broadcast_id=broadcast.id)
        counts = await broadcasts.counts(session, broadcast_id=broadcast.id)
        queued: list[Queued] = []
        room = share - counts["sending"]
        if broadcast.status == BroadcastStatus.SENDING and room > 0 and counts["pending"]:
            recipients = await broadcasts.next_recipients(
                session, broadcast_id=broadcast.id, limit=room
            )
            plan = [  # each row, and the deliveries it carries
                (
                    NewItem(
                        r.channel,
                        Pace.BULK,
                        chat_lane(r.channel, r.external_id),
                        {
                            "to": "chat",
                            "chat": r.external_id,
                            "reply": self._notice(broadcast, r.language, r.reads),
                        },
                        once=True,
                    ),
                    [r.delivery_id],
                )
                for r in recipients
                if r.channel not in MASS_SEND
            ]
            listed = [r for r in recipients if r.channel in MASS_SEND]
            plan += await self._mass_rows(session, broadcast, listed, counts)
            queued = await enqueue(session, [item for item, _ in plan], now=now)
            await broadcasts.handed_to_outbox(
                session,
                pairs=[
                    (delivery, row.id)
                    for (_, deliveries), row in zip(plan, queued, strict=True)
                    for delivery in deliveries
                ],
            )
            handed = sum(len(deliveries) for _, deliveries in plan)
            counts["pending"] -= len(recipients)
            counts["sending"] += handed
        finished = broadcast.status == BroadcastStatus.SENDING and not (
            counts["pending"] or counts["sending"]
        )
        if finished:
            broadcast.status, broadcast.finished_at = BroadcastStatus.DONE, now
            broadcast.updated_at = now
            session.add(broadcast)
            log.info("broadcast %s: done %s", broadcast.id, counts)
        if self.staff_group:
            drawn = await self._redraw(session, broadcast, counts, now, force=finished)
            queued += drawn
            if finished:
                if not drawn:
                    self._undrawn.add(broadcast.id)
                final = final_reply(self.catalog, broadcast, counts)
                queued += await self._post(session, broadcast, final, now)
        return queued

    async def _mass_rows(
        self,
        session: AsyncSession,
        broadcast: Broadcast,
        recipients: list[broadcasts.Recipient],
        counts: dict[str, int],
    ) -> list[tuple[NewItem, list[int]]]:
        """People on a channel that sends one message to a list (WeChat's mass send, which
        reaches followers whatever the 48-hour window): one row per channel and text, with
        the people past their monthly allowance ended as failed (not deliverable this month)."""
        if not recipients:
            return []
        zone = self.catalog.office_hours.timezone
        local = self.clock().astimezone(zone)
        month = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        received = await broadcasts.notices_sent_since(
            session, person_ids=[r.person_id for r in recipients], since=month.astimezone(UTC)
        )
        over = [r for r in recipients if received.get(r.person_id, 0) >= MASS_SEND[r.channel]]
        ended = {r.delivery_id for r in over}
        await broadcasts.end_deliveries(
            session, ids=[r.delivery_id for r in over], status=DeliveryStatus.FAILED
        )
        counts["failed"] += len(over)
        if over:
            log.info("broadcast %s: %d past their monthly allowance", broadcast.id, len(over))
        groups: dict[tuple[str, str, str | None], list[broadcasts.Recipient]] = {}
        for r in recipients:
            if r.delivery_id not in ended:
                groups.setdefault((r.channel, r.language, r.reads), []).append(r)
        return [
            (
                NewItem(
                    channel,
                    Pace.BULK,
                    mass_lane(channel, broadcast.id),
                    {
                        "to": "mass",
                        "chats": [r.external_id for r in group],
                        "reply": self._notice(broadcast, language, reads),
                        # the same batch sent again (a retry) is refused by WeChat, not sent
                        "clientmsgid": f"hotline-{broadcast.id}-{group[0].delivery_id}",
                    },
                    once=True,
                ),
                [r.delivery_id for r in group],
            )
            for (channel, language, reads), group in groups.items()
        ]

    def _notice(self, broadcast: Broadcast, language: str, reads: str | None) -> dict:
        key = (broadcast.id, language, reads)
        if key not in self._replies:
            notice = notice_reply(self.catalog, broadcast, language, reads)
            self._replies[key] = notice.to_dict()
        return self._replies[key]

    def _rate(self, broadcast_id: int, done: int) -> float | None:
        samples = self._done_counts.setdefault(broadcast_id, deque())
        moment = time.monotonic()
        samples.append((moment, done))
        while samples and moment - samples[0][0] > RATE_SECONDS:
            samples.popleft()
        first_moment, first_done = samples[0]
        if moment - first_moment < 1.0:
            return None
        return (done - first_done) / (moment - first_moment)

    async def _redraw(
        self,
        session: AsyncSession,
        broadcast: Broadcast,
        counts: dict[str, int],
        now: datetime,
        *,
        force: bool = False,
    ) -> list[Queued]:
        """An edit of the progress message every few seconds (never two waiting at once)."""
        done = sum(counts[s] for s in ("sent", "failed", "blocked", "unknown"))
        rate = self._rate(broadcast.id, done)
        moment = time.monotonic()
        if not force and moment - self._drawn.get(broadcast.id, 0.0) < PROGRESS_SECONDS:
            return []
        if not force and self.sender.queued(self._drawing.get(broadcast.id, 0)):
            return []
        message_id = await self._progress_message(session, broadcast)
        if message_id is None:
            return []
        reply = progress_reply(self.catalog, broadcast, counts, rate=rate, now=now)
        lane = group_lane(self.channel, broadcast.thread_id)
        # An edit is no new message in the group: it goes at the private pace's slots, and
        # the channel paces it by the bot's overall rate alone.
        body = {"to": "edit", "message": message_id, "reply": reply.to_dict()}
        rows = await enqueue(session, [NewItem(self.channel, Pace.PRIVATE, lane, body)], now=now)
        self._drawn[broadcast.id] = moment
        self._drawing[broadcast.id] = rows[0].id
        return rows

    async def _progress_message(self, session: AsyncSession, broadcast: Broadcast) -> int | None:
        if broadcast.progress_message_id is not None:
            return broadcast.progress_message_id
        if broadcast.progress_outbox_id is None:
            return None
        row = await session.get(OutboxItem, broadcast.progress_outbox_id)
        if row is None or not row.sent_ids:
            return None
        broadcast.progress_message_id = row.sent_ids[-1]
        session.add(broadcast)
        return broadcast.progress_message_id

    async def _post(self, session: AsyncSession, broadcast: Broadcast, reply, now: datetime):
        lane = group_lane(self.channel, broadcast.thread_id)
        body = {"to": "group", "thread": broadcast.thread_id, "reply": reply.to_dict()}
        return await enqueue(session, [NewItem(self.channel, Pace.GROUP, lane, body)], now=now)
