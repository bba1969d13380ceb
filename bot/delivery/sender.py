"""Carries out the outbox: each lane (a chat, a ticket's topic) in order, lanes side by side,
each destination class with its own bound on sends in flight, so that a worker's reply never
waits behind the staff group's 20 a minute or a broadcast. Each row goes through the carrier
of its lane's channel (Telegram, WeChat): one sender, one order per lane, whatever the channel.

A row is marked "sending" in the database just before the channel is called and "sent" after
(in batches); at start, rows a dead run left "sending" are sent again (they may repeat, and are
counted in the log) and every pending row is queued in order. Replies a flood held back wait
for their time and then go as one message, without holding up the lane's other rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.marks import Batcher
from bot.turn_results import gathered
from db import outbox
from db.models import OutboxItem, OutboxStatus, Pace, utcnow
from handlers.messages import Reply

log = logging.getLogger(__name__)

# Sends under way at once per destination class: the staff group is paced at one message in
# three seconds, so two in flight keep it busy; private chats are many and quick.
IN_FLIGHT = {Pace.PRIVATE: 16, Pace.GROUP: 2, Pace.BULK: 8}
LOAD_PAGE = 1000
# A refresh reads pending rows from this far below the highest id seen: another process's
# transaction may commit a row with a lower id after this process saw a higher one.
REFRESH_OVERLAP = 1000
FINISHED_KEPT = 20 * REFRESH_OVERLAP  # ids below the highest by more cannot be read again
MARK_AHEAD = 4  # rows of a lane marked "sending" together (see Sender._ahead)
STOP_GRACE = 5.0  # seconds a stop waits for sends under way before leaving them "sending"


@dataclass(slots=True)
class Queued:
    """An outbox row as the sender holds it in memory."""

    id: int
    pace: str
    lane: str
    body: dict
    held: bool = False
    due: datetime = field(default_factory=utcnow)

    @classmethod
    def of(cls, row: OutboxItem) -> Queued:
        return cls(row.id, row.pace, row.lane, row.body, row.held, row.next_attempt_at)


# A channel cannot send to the person until they write again (WeChat's customer-service
# window or quota): the row stays pending, and its lane waits until the channel says the
# person wrote (`unpark`); new rows for them queue behind it meanwhile.
WAITING = "waiting"


@dataclass(frozen=True, slots=True)
class Delivered:
    """What the channel made of a row: "sent" (with the ids it produced), "blocked" (the
    person blocked the bot: nothing more goes to them), "failed" (with why) or WAITING."""

    status: str
    ids: list[int] = field(default_factory=list)
    error: str | None = None


CarryOut = Callable[[dict, str], Awaitable[Delivered]]  # a row's body and its pace


@dataclass(frozen=True, slots=True)
class Carrier:
    """How one channel carries out the rows of its lanes (a lane's channel is its prefix,
    db/outbox.py): the call itself, whether a destination class is at its limit (waiting
    posts merge then), and what to do when a person blocked the bot."""

    carry_out: CarryOut
    busy: Callable[[str], bool] | None = None
    on_blocked: Callable[[str], Awaitable[None]] | None = None


def lane_channel(lane: str) -> str:
    return lane.partition(":")[0]


@dataclass(slots=True)
class _Call:
    started: bool = False


# The row being carried out in this task: whether its channel has called the platform yet.
# A row stopped while it only waited for its pace was never sent, and goes back to pending
# instead of counting among the next start's possible repeats.
_call: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("outbox_call", default=None)


def calling() -> None:
    """Channels say so just before a call that may reach the person or the staff group."""
    call = _call.get()
    if call is not None:
        call.started = True


class Sender:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        carry_out: CarryOut,
        clock: Callable[[], datetime] = utcnow,
        on_blocked: Callable[[str], Awaitable[None]] | None = None,
        after_erasure: Callable[[], Awaitable[None]] | None = None,
        busy: Callable[[str], bool] | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        # The carrier of the channel that made this sender, for lanes of no other carrier.
        self._default = Carrier(carry_out, busy, on_blocked)
        self._carriers: dict[str, Carrier] = {}
        self.after_erasure = after_erasure  # a forgotten person's last reply is out
        self._lanes: dict[str, list[Queued]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._carrying: set[asyncio.Task[None]] = set()  # lanes whose row is with the channel
        self._news: dict[str, asyncio.Event] = {}
        self._slots = {pace: asyncio.Semaphore(n) for pace, n in IN_FLIGHT.items()}
        self._known: set[int] = set()
        # Rows carried out here, so that a row queued twice (a refresh read it committed just
        # before its writer woke it) is never sent twice; forgotten once far below the top.
        self._finished: set[int] = set()
        self._dropped: dict[str, int] = {}  # forgotten people's lanes: rows below this id
        # "sending" and "sent" marks share one batch: under load every transaction carries
        # the marks of many lanes, both kinds, which is most of what marking costs.
        self._marks: Batcher[Mark] = Batcher(self._write_marks)
        self._marked: set[int] = set()  # rows marked "sending" ahead of their call
        self._stopping = False
        self._parked: set[str] = set()  # lanes WAITING for their person's next message
        self._reserved: set[str] = set()  # lanes a channel answers in the request (see reserve)
        self._sending: set[str] = set()  # lanes with a row between being picked and carried
        self._highest = 0  # the highest row id queued here
        self.started = False  # start() has taken over what the last run left
        self.repeated = 0  # rows a dead run left "sending", sent again at this start

    def add_carrier(self, channel: str, carrier: Carrier) -> None:
        """Rows in `channel`'s lanes go through `carrier`."""
        self._carriers[channel] = carrier

    def _carrier(self, lane: str) -> Carrier:
        return self._carriers.get(lane_channel(lane), self._default)

    # -- what to send --------------------------------------------------------------------

    async def start(self) -> None:
        """Takes over what a previous run left: "sending" rows again, then every pending row."""
        async with self.sessions() as session, session.begin():
            recovered = await outbox.recover(session)
        self.repeated = recovered.repeated
        if recovered.repeated:
            log.warning(
                "%d message(s) were being sent when the last run stopped: sent again, "
                "each may arrive twice",
                recovered.repeated,
            )
        if recovered.unknown:
            log.warning(
                "%d broadcast message(s) were being sent when the last run stopped: not sent "
                "again, reported as unknown",
                recovered.unknown,
            )
        await self._load(after=0)
        self.started = True

    async def refresh(self) -> int:
        """Queues rows another process wrote (`hotline jobs import`'s alerts, a broadcast
        from the command line); returns how many. Run every few seconds."""
        floor = self._highest - FINISHED_KEPT
        self._finished = {row_id for row_id in self._finished if row_id > floor}
        return await self._load(after=max(0, self._highest - REFRESH_OVERLAP))

    async def _load(self, *, after: int) -> int:
        loaded = 0
        while not self._stopping:
            async with self.sessions() as session:
                rows = await outbox.pending(session, after_id=after, limit=LOAD_PAGE)
            new = [Queued.of(row) for row in rows if row.id not in self._known]
            self.wake(new)
            loaded += len(new)
            if len(rows) < LOAD_PAGE:
                break
            after = rows[-1].id
        return loaded

    def wake(self, rows: Sequence[Queued]) -> None:
        """Queues rows just committed; their lanes start sending."""
        for row in rows:
            if row.id in self._known or row.id in self._finished:
                continue
            if row.id < self._dropped.get(row.lane, 0):
                continue
            self._known.add(row.id)
            self._highest = max(self._highest, row.id)
            queue = self._lanes.setdefault(row.lane, [])
            if queue and queue[-1].id > row.id:
                queue.append(row)
                queue.sort(key=lambda queued: queued.id)
            else:
                queue.append(row)
            self._poke(row.lane)

    def hold(self, lane: str, until: datetime) -> None:
        """A flood goes on: the lane's held replies wait longer (the database says the same)."""
        for row in self._lanes.get(lane, ()):
            if row.held:
                row.due = until

    def release(self, lane: str) -> None:
        """The flood is over: the lane's held replies go now."""
        now = self.clock()
        for row in self._lanes.get(lane, ()):
            if row.held:
                row.due = now
        self._poke(lane)

    def unpark(self, lane: str) -> None:
        """The person wrote: rows WAITING for that go now (first, in their order)."""
        if lane in self._parked:
            self._parked.discard(lane)
            self._poke(lane)

    def drop(self, lane: str, *, before: int) -> None:
        """A forgotten person's lane: no row decided before `before` (the turn that forgot
        them; their database rows were deleted with it) is sent, also one another turn wakes
        only now. A row already with the channel goes on."""
        self._dropped[lane] = max(before, self._dropped.get(lane, 0))
        queue = self._lanes.get(lane, [])
        gone = [row for row in queue if row.id < before]
        self._known.difference_update(row.id for row in gone)
        self._marked.difference_update(row.id for row in gone)
        queue[:] = [row for row in queue if row.id >= before]

    def queued(self, row_id: int) -> bool:
        """Whether the row is still to be sent here."""
        return row_id in self._known

    def waiting(self) -> dict[str, int]:
        """Rows queued in this process, per destination class."""
        counts: dict[str, int] = {}
        for queue in self._lanes.values():
            for row in queue:
                counts[row.pace] = counts.get(row.pace, 0) + 1
        return counts

    async def idle(self, timeout: float = 10.0) -> bool:
        """Waits until nothing is queued but what waits for its person to write (tests and
        the demo); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks or any(
            queue for lane, queue in self._lanes.items() if lane not in self._parked
        ):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        await self._marks.flush()
        return True

    async def stop(self) -> None:
        """Stops taking rows; what is under way gets a moment to finish, the rest stays in
        the database for the next start."""
        self._stopping = True
        for event in self._news.values():
            event.set()
        waiting = [task for task in self._tasks.values() if task not in self._carrying]
        for task in waiting:  # nothing of theirs is under way: they stay pending
            task.cancel()
        carrying = list(self._carrying)
        if carrying:
            _, running = await asyncio.wait(carrying, timeout=STOP_GRACE)
            for task in running:
                task.cancel()
        for task in [*waiting, *carrying]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._marks.flush()
        if self._marked:  # marked, never called: not possible repeats at the next start
            async with self.sessions() as session, session.begin():
                await outbox.unmark_sending(session, ids=sorted(self._marked))
            self._marked.clear()

    # -- answering in the request (WeChat's passive reply) -------------------------------

    def reserve(self, lane: str) -> bool:
        """Keeps the lane's rows from being carried out here until `unreserve`, so that a
        channel that can answer within the person's own request takes them (`take`) instead.
        False when a row of the lane is on its way now: an answer would overtake it."""
        if lane in self._sending:
            return False
        self._reserved.add(lane)
        return True

    def take(self, lane: str, pick: Callable[[list[Queued]], int]) -> list[Queued]:
        """Of a reserved lane's queued rows, the first `pick(rows)` are the caller's to send:
        they leave the queue (and are never sent here). Mark them with `marking_sending`
        before the answer and `taken_sent` after."""
        queue = self._lanes.get(lane, [])
        taken = queue[: pick(list(queue))]
        del queue[: len(taken)]
        ids = [row.id for row in taken]
        self._known.difference_update(ids)
        self._marked.difference_update(ids)
        self._finished.update(ids)
        return taken

    async def give_back(self, rows: Sequence[Queued]) -> None:
        """Taken rows whose answer never reached the person: pending again, sent here."""
        ids = [row.id for row in rows]
        self._finished.difference_update(ids)
        await self._marks.flush()
        async with self.sessions() as session, session.begin():
            await outbox.unmark_sending(session, ids=ids)
        self.wake(rows)

    def unreserve(self, lane: str) -> None:
        self._reserved.discard(lane)
        self._poke(lane)

    async def marking_sending(self, ids: Sequence[int]) -> None:
        """Taken rows, marked "sending" before they go: a crash now repeats them at most."""
        await self._marks.add(Mark(sending=list(ids)))

    def taken_sent(self, ids: Sequence[int]) -> None:
        self._marks.add_nowait(Mark(sent=[(row_id, []) for row_id in ids]))

    # -- one lane ------------------------------------------------------------------------

    def _poke(self, lane: str) -> None:
        if self._stopping:
            return
        event = self._news.setdefault(lane, asyncio.Event())
        event.set()
        task = self._tasks.get(lane)
        if task is None or task.done():
            self._tasks[lane] = asyncio.create_task(self._run_lane(lane), name=f"lane {lane}")

    async def _run_lane(self, lane: str) -> None:
        try:
            busy = self._carrier(lane).busy
            while not self._stopping and lane not in self._parked and lane not in self._reserved:
                queue = self._lanes.get(lane)
                if not queue:
                    break
                batch, wait = self._next(queue, self.clock())
                if len(batch) == 1 and busy is not None and busy(batch[0].pace):
                    batch = _posts_to_merge(queue, batch[0])
                if not batch:
                    event = self._news.setdefault(lane, asyncio.Event())
                    event.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), timeout=wait)
                    continue
                await self._send(lane, batch)
        except Exception:
            log.exception("the sender of a lane stopped; its rows stay queued for the next start")
        finally:
            if self._tasks.get(lane) is asyncio.current_task():
                del self._tasks[lane]
            if not self._lanes.get(lane):
                self._lanes.pop(lane, None)
                self._news.pop(lane, None)
                self._parked.discard(lane)

    @staticmethod
    def _next(queue: list[Queued], now: datetime) -> tuple[list[Queued], float | None]:
        """The row(s) to send next, or how long to wait: held replies not yet due are passed
        over (a crisis reply goes before them); due ones go together, as one message."""
        soonest: datetime | None = None
        for index, row in enumerate(queue):
            if row.held and row.due > now:
                soonest = row.due if soonest is None else min(soonest, row.due)
                continue
            if not row.held or not _mergeable(row):
                return [row], None
            together = [row]
            for later in queue[index + 1 :]:
                if not later.held or later.due > now or not _mergeable(later):
                    break
                together.append(later)
            return together, None
        return [], (soonest - now).total_seconds() if soonest else None

    async def _send(self, lane: str, batch: list[Queued]) -> None:
        self._sending.add(lane)
        try:
            await self._send_batch(lane, batch)
        finally:
            self._sending.discard(lane)

    async def _send_batch(self, lane: str, batch: list[Queued]) -> None:
        first = batch[0]
        carrier = self._carrier(lane)
        if len(batch) == 1:
            body = first.body
        elif first.held or first.body.get("to") == "chat":
            body = _gather(batch)
        else:
            body = _merge_posts(batch)
        async with self._slots.get(first.pace, self._slots[Pace.BULK]):
            unmarked = [row.id for row in batch if row.id not in self._marked]
            if unmarked:
                # In the marked set while the mark is written: a stop that cancels this task
                # now still finds them, and sets them back to pending.
                self._marked.update(unmarked)
                await self._marks.add(Mark(sending=[*unmarked, *self._ahead(lane, batch)]))
            self._marked.difference_update(row.id for row in batch)  # now they are called
            task = asyncio.current_task()
            self._carrying.add(task)
            call = _Call()
            token = _call.set(call)
            try:
                delivered = await carrier.carry_out(body, first.pace)
            except asyncio.CancelledError:
                if not call.started:  # a stop came while it waited for its pace: unsent
                    self._marked.update(row.id for row in batch)
                raise
            except Exception as error:  # a bug in carrying out: the row fails, the lane goes on
                log.exception("could not carry out outbox row %s", first.id)
                delivered = Delivered("failed", error=type(error).__name__)
            finally:
                _call.reset(token)
                self._carrying.discard(task)
        queue = self._lanes.get(lane, [])
        if delivered.status == WAITING:  # pending again; the lane waits for the person
            self._parked.add(lane)
            again = [row.id for row in batch] + [row.id for row in queue if row.id in self._marked]
            self._marked.difference_update(again)
            await self._marks.flush()  # the "sending" mark is written before it is undone
            async with self.sessions() as session, session.begin():
                await outbox.unmark_sending(session, ids=again)
            return
        for row in batch:
            if row in queue:
                queue.remove(row)
        self._known.difference_update(row.id for row in batch)
        self._finished.update(row.id for row in batch)
        if delivered.status == "sent":
            marked = self._marks.add_nowait(Mark(sent=[(row.id, delivered.ids) for row in batch]))
            if any(row.body.get("erase_after") for row in batch) and self.after_erasure:
                await asyncio.shield(marked)
                await self.after_erasure()
            return
        if delivered.status == OutboxStatus.BLOCKED:  # the lane's other rows are given up
            self._known.difference_update(row.id for row in queue)
            self._marked.difference_update(row.id for row in queue)
            queue.clear()
            async with self.sessions() as session, session.begin():
                await outbox.mark_ended(
                    session,
                    ids=[row.id for row in batch],
                    status=OutboxStatus.BLOCKED,
                    error=None,
                    now=self.clock(),
                )
                await outbox.block_lane(session, lane=lane)
            if carrier.on_blocked is not None:
                await carrier.on_blocked(lane)
            return
        async with self.sessions() as session, session.begin():
            await outbox.mark_ended(
                session,
                ids=[row.id for row in batch],
                status=OutboxStatus.FAILED,
                error=delivered.error,
                now=self.clock(),
            )

    # -- marks ---------------------------------------------------------------------------

    def _ahead(self, lane: str, batch: list[Queued]) -> list[int]:
        """The rows right behind `batch` in its lane that will go next as they are (a turn's
        other replies): marked "sending" with it, one transaction before a turn's replies
        instead of one each. A kill before their call counts them among the possible
        repeats, the price of the saved transactions; a stop sets them back to pending."""
        queue = self._lanes.get(lane, [])
        start = queue.index(batch[-1]) + 1 if batch[-1] in queue else len(queue)
        ahead = []
        for row in queue[start : start + MARK_AHEAD]:
            if row.held or row.pace != batch[0].pace or row.id in self._marked:
                break
            ahead.append(row.id)
        self._marked.update(ahead)
        return ahead

    async def _write_marks(self, marks: list[Mark]) -> None:
        sending = [i for mark in marks for i in mark.sending]
        sent = [r for mark in marks for r in mark.sent]
        async with self.sessions() as session, session.begin():
            if sending:
                await outbox.mark_sending(session, ids=sending)
            if sent:
                await outbox.mark_sent(session, results=sent, now=self.clock())


@dataclass(frozen=True, slots=True)
class Mark:
    """Rows to mark "sending" (just before their call), or "sent" with the ids they made."""

    sending: list[int] = field(default_factory=list)
    sent: list[tuple[int, list[int]]] = field(default_factory=list)


def _gather(batch: list[Queued]) -> dict:
    """The body of held replies sent together: the first's destination, every text."""
    replies = [Reply.from_dict(row.body["reply"]) for row in batch]
    return {**batch[0].body, "reply": gathered(replies).to_dict()}


def _post_text(row: Queued, *, first: bool) -> Reply | None:
    """A row's text if it can be merged into one post with its neighbours: a text posted or
    copied into a ticket's topic; buttons only on the first (they stay with the post)."""
    item = row.body.get("outgoing")
    if row.held or item is None or item["to"] != "topic":
        return None
    if item["action"] == "post" and item["reply"] is not None:
        reply = Reply.from_dict(item["reply"])
        return reply if first or not reply.choices else None
    if item["action"] == "copy" and item.get("as_text") and not item.get("reply_to"):
        return Reply.from_dict(item["as_text"])  # (an answer stays a reply of its own)
    return None


def _posts_to_merge(queue: list[Queued], first: Queued) -> list[Queued]:
    """While a destination is at its limit, what waits in one lane may go as one message:
    in a ticket's topic its texts (media stay copies of their own; a merged text says who
    wrote it), in a worker's chat the replies up to and with the next question (its buttons
    on the merged message), in their order."""
    if first.body.get("to") == "chat":
        return _replies_to_merge(queue, first)
    if _post_text(first, first=True) is None:
        return [first]
    batch = [first]
    for row in queue[queue.index(first) + 1 :]:
        if _post_text(row, first=False) is None:
            break
        batch.append(row)
    return batch


def _replies_to_merge(queue: list[Queued], first: Queued) -> list[Queued]:
    batch = [first]
    if not _mergeable(first):
        return batch
    for row in queue[queue.index(first) + 1 :]:
        if batch[-1].body["reply"]["choices"] or row.held or row.body.get("to") != "chat":
            break
        if not _mergeable(row):
            break
        batch.append(row)
    return batch


def _mergeable(row: Queued) -> bool:
    """A reply that is only text: one with a map pin is a message of its own kind."""
    reply = row.body.get("reply")
    return reply is None or not reply.get("place")


def _merge_posts(batch: list[Queued]) -> dict:
    """One post in the topic carrying every text of the batch; each row's transcript entry is
    recorded as that post."""
    texts = [_post_text(row, first=index == 0) for index, row in enumerate(batch)]
    first = dict(batch[0].body["outgoing"])
    first.update(
        action="post",
        reply=Reply(
            "\n\n".join(t.text for t in texts), texts[0].choices, texts[0].choice_tag
        ).to_dict(),
        copy_of=None,
        record=None,
        as_text=None,
    )
    records = [row.body["outgoing"].get("record") for row in batch]
    return {"outgoing": first, "records": [r for r in records if r is not None]}
