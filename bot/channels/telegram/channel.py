"""Receiving and sending on Telegram.

Updates are fetched with getUpdates and stored in the inbox *before* the next getUpdates
confirms them to Telegram. python-telegram-bot's Updater confirms an update on its next poll,
before a handler has run, so a crash right after would lose the worker's message for good;
that is why this adapter polls by itself instead. Each stored update then runs in its
person's lane: the engine handles it in one transaction (marking the inbox row handled),
the replies are sent, and the row is marked done. At start, whatever a previous run left
stored-but-unhandled is handled, and whatever was handled-but-unanswered is answered.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, InlineKeyboardMarkup, InputFile
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from bot.channels.telegram.bot_api import BotApi
from bot.channels.telegram.http import AiohttpRequest
from bot.channels.telegram.inbound import CHANNEL, to_inbound, update_chat, update_message
from bot.channels.telegram.rendering import (
    keyboard,
    reply_parameters,
    split_text,
    strip_tags,
    telegram_length,
)
from bot.channels.telegram.sent import RATE_LIMITED_WAITS, Sent, retry_seconds
from bot.channels.telegram.staff_group import StaffGroup
from bot.cluster import Cluster, Solo
from bot.delivery import courier
from bot.delivery.courier import Courier
from bot.delivery.pacing import Pacer, Paces
from bot.delivery.sender import IN_FLIGHT, Delivered, Sender, calling
from bot.done_marks import DoneMarks
from bot.engine import Engine
from bot.lane_keeping import LaneKeeper
from bot.lanes import Lanes
from bot.log_redaction import person_tag
from bot.settings import Settings
from db import inbox, outbox, people, tickets
from db.models import InboxStatus, InboxUpdate, Pace, utcnow
from db.outbox import chat_lane
from handlers.messages import Inbound, Outgoing, Reply

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
SEND_ATTEMPTS = 4  # for 5xx and timeouts
# Turns under way at once, and HTTP connections for them. httpx scans its whole pool for
# every queued request; python-telegram-bot's default of 256 connections made that scan a
# large share of the benchmark's time, while more turns at once only lengthen the loop's round.
CONCURRENT_TURNS = 16
# Backpressure: while this many updates are queued or running, getUpdates is not called.
# Telegram keeps what is not fetched (and not confirmed) for 24 hours, so not fetching is
# the whole of it; memory then holds at most this many updates, and a start pages through a
# larger backlog in the inbox instead of loading it whole.
MAX_QUEUED_UPDATES = 1000
POLL_LIMIT = 100  # Telegram's largest getUpdates batch
RESUME_BATCH = 200  # stored rows read at a time when a start resumes a previous run's work


def bot_api(application: Application) -> BotApi:
    """The hot path's calls, on the Application's own request objects (build_application)."""
    bot = application.bot
    # Bot has no public accessor for its get_updates request; PTB is pinned below 23.
    updates = bot._request[0]  # noqa: SLF001
    return BotApi(base_url=bot.base_url, calls=bot.request, updates=updates)


def build_application(settings: Settings) -> Application:
    """The python-telegram-bot Application: its bot and job queue; no Updater, and no rate
    limiter: the pace is kept per destination by bot/delivery/pacing.py. Its HTTP goes through
    aiohttp (bot/channels/telegram/http.py), much cheaper per call than httpx."""
    return (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        # sends of every class in flight at once (bot/delivery/sender.py), and turns' calls
        .request(AiohttpRequest(connection_pool_size=CONCURRENT_TURNS + sum(IN_FLIGHT.values())))
        .get_updates_request(AiohttpRequest())
        .updater(None)
        .build()
    )


def build_pacer(settings: Settings) -> Pacer:
    return Pacer(
        Paces(
            overall_per_second=settings.max_sends_per_second,
            bulk_per_second=settings.broadcast_per_second,
            chat_burst=settings.chat_burst,
            chat_per_second=settings.chat_sends_per_second,
        )
    )


class PollWatch:
    """When the poller last had everything Telegram held: a getUpdates that came back with
    less than it asked for left nothing behind it at the moment it was sent. Something that
    Telegram did but whose answer was lost (a topic opened) is known once a poll sent after
    that moment has come back so."""

    def __init__(self) -> None:
        self.started = time.monotonic()  # when the channel began to poll (see run)
        self._through = float("-inf")  # when the latest poll that came back short was sent
        self._news: asyncio.Future[None] | None = None

    def caught_up(self, sent_at: float) -> None:
        self._through = max(self._through, sent_at)
        if self._news is not None and not self._news.done():
            self._news.set_result(None)
        self._news = None

    async def caught_up_since(self, moment: float, *, timeout: float) -> bool:
        """Waits until a poll sent at `moment` or later came back short; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._through < moment:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._news is None:
                self._news = loop.create_future()
            done, _ = await asyncio.wait({self._news}, timeout=remaining)
            if not done:
                return False
        return True


class TelegramChannel:
    def __init__(
        self,
        *,
        application: Application,
        engine: Engine,
        sessions: async_sessionmaker[AsyncSession],
        staff_chat_id: int | None = None,
        poll_timeout: int = 30,
        retry_delay: float = 0.5,
        max_queued: int = MAX_QUEUED_UPDATES,
        resume_batch: int = RESUME_BATCH,
        pacer: Pacer | None = None,
        cluster: Cluster | Solo | None = None,
    ) -> None:
        self.application = application
        self.staff_chat_id = staff_chat_id
        self.engine = engine
        self.sessions = sessions
        self.poll_timeout = poll_timeout
        self.retry_delay = retry_delay
        self.lanes = Lanes(max_running=CONCURRENT_TURNS)
        self.staff_group = StaffGroup(self)
        self.done = DoneMarks(sessions)
        self.resume_batch = resume_batch
        self.polls = PollWatch()
        self.started_at = utcnow()  # reset when polling starts: older topic requests are past
        self.opening_topics: dict[int, asyncio.Future[int | None]] = {}  # by ticket id
        # Other channels' workers' files, by channel: fetched and uploaded into ticket topics.
        self.media_sources: dict[str, Callable[[str], Awaitable[bytes]]] = {}
        self._failures = 0
        self.pacer = pacer or Pacer(Paces())
        self.api = bot_api(application)
        self.sender = Sender(
            sessions=sessions,
            carry_out=self.carry_out,
            on_blocked=self._blocked,
            after_erasure=engine.erase_traces,
            busy=self._busy,
        )
        # One process, or one of several on PostgreSQL (bot/cluster.py): which lanes this
        # one holds, and where its turns' outbox rows go to be sent.
        self.cluster = cluster or Solo()
        self.courier = Courier(self.sender, self.cluster)
        self.keeper = LaneKeeper(
            channel=CHANNEL,
            sessions=sessions,
            lanes=self.lanes,
            cluster=self.cluster,
            max_queued=max_queued,
            lane_of=self._lane,
            run_row=self._process,
        )

    @property
    def max_queued(self) -> int:
        """Updates queued or running at most (the lane keeper's bound, one value)."""
        return self.keeper.max_queued

    @max_queued.setter
    def max_queued(self, value: int) -> None:
        self.keeper.max_queued = value

    @property
    def bot(self) -> Bot:
        return self.application.bot

    # -- receiving -------------------------------------------------------------------------

    async def run(self) -> None:
        """Polls until cancelled. Cancelling never confirms an update that was not stored.

        At start, everything Telegram still holds is stored first (nothing is queued yet),
        so that a topic a dead run opened is claimed from its service message before that
        run's work is resumed from the inbox, a page at a time; then polling goes on, paused
        while `max_queued` updates are queued."""
        await self.bot.delete_webhook(drop_pending_updates=False)
        offset = await self.prepare(drain=True)
        while True:
            room = await self.keeper.room()
            offset, _ = await self._poll(
                offset, timeout=self.poll_timeout, limit=min(POLL_LIMIT, room)
            )

    async def prepare(self, *, drain: bool) -> int | None:
        """What comes before the first new update is queued, polling or by webhook
        (bot/channels/telegram/webhook.py): with `drain`, what Telegram holds is stored first
        (a webhook is told it only by Telegram's POSTs, after this); then the staff group's
        pace is seeded, the outbox started and the inbox's unfinished rows resumed. Returns
        the offset to poll from."""
        self.started_at, self.polls.started = utcnow(), time.monotonic()
        offset, drained = None, not drain
        while not drained:
            offset, drained = await self._poll(offset, timeout=0, limit=POLL_LIMIT, queue=False)
        await self._seed_group_pace()
        await self.sender.start()  # what a previous run decided goes before anything new
        self.courier.start_applying()
        if self.cluster.shared:  # what nobody holds, this run's drain included, is taken
            await self.keeper.keep_lanes_once(stray_seconds=0)
        else:
            await self.resume()
        return offset

    async def _seed_group_pace(self) -> None:
        """The staff group's last minute, as the database knows it (the last run's posts and
        topics), goes into its pace before anything is sent."""
        if self.staff_chat_id is None:
            return
        now = utcnow()
        since = now - timedelta(seconds=self.pacer.paces.group_window)
        async with self.sessions() as session:
            moments = await outbox.group_sends_since(session, channel=CHANNEL, since=since, now=now)
            moments += await tickets.topic_requests_since(session, since=since)
        if moments:
            self.pacer.seed_group(
                str(self.staff_chat_id), [(now - at).total_seconds() for at in moments]
            )
            log.info("the staff group got %d message(s) in the last minute", len(moments))

    async def _poll(
        self, offset: int | None, *, timeout: int, limit: int, queue: bool = True
    ) -> tuple[int | None, bool]:
        """One getUpdates: stores what it brings (and queues it, unless `queue` is False);
        returns the next offset and whether Telegram had nothing more. Errors are waited out."""
        sent_at = time.monotonic()
        try:
            updates = await self.api.get_updates(
                offset=offset, timeout=timeout, limit=limit, allowed_updates=ALLOWED_UPDATES
            )
            if updates:
                stored = await self._store(updates)
                if queue:
                    await self._queue_new(updates, stored)
                offset = updates[-1]["update_id"] + 1
            self._failures = 0
        except RetryAfter as error:
            await asyncio.sleep(retry_seconds(error.retry_after))
            return offset, False
        except TelegramError as error:
            self._failures += 1
            log.warning("getUpdates failed (%s); trying again", error)
            await asyncio.sleep(min(30.0, self.retry_delay * 2 ** min(self._failures, 6)))
            return offset, False
        except Exception:  # the database: nothing was confirmed, so poll the same again
            self._failures += 1
            log.exception("could not store updates; trying again")
            await asyncio.sleep(min(30.0, self.retry_delay * 2 ** min(self._failures, 6)))
            return offset, False
        if len(updates) < limit:
            self.polls.caught_up(sent_at)
            return offset, True
        return offset, False

    async def accept(self, updates: Sequence[dict]) -> None:
        """Stores the updates (the Bot API's JSON), then queues the new ones in their people's
        lanes."""
        await self._queue_new(updates, await self._store(updates))

    async def _store(self, updates: Sequence[dict]) -> dict[int, int]:
        """Stores the updates in the inbox as they came; returns {update_id: row id} of the
        new ones. A new service message about a topic the bot opened claims it for its ticket,
        in the same transaction (see StaffGroup._topic)."""
        rows = [(u["update_id"], self._lane(u), u) for u in updates]
        async with self.sessions() as session, session.begin():
            stored = await inbox.store_updates(session, channel=CHANNEL, updates=rows, now=utcnow())
            for update in updates:
                if update["update_id"] in stored:
                    await self._claim_topic(session, update)
        return stored

    async def _claim_topic(self, session: AsyncSession, update: dict) -> None:
        message = update.get("message")
        if (
            message is None
            or "forum_topic_created" not in message
            or message["chat"]["id"] != self.staff_chat_id
            or (message.get("from") or {}).get("id") != self.bot.id
        ):
            return
        reference = message["forum_topic_created"]["name"].split(" ", 1)[0]  # see topic_title
        topic_id = message.get("message_thread_id") or message["message_id"]
        if await tickets.claim_topic(session, reference=reference, topic_id=topic_id):
            # Often simply first: the service message can come before createForumTopic's
            # answer. A lost answer is reported where the opening waits for it.
            log.info("ticket %s: topic %s known from its service message", reference, topic_id)

    async def _queue_new(self, updates: Sequence[dict], stored: dict[int, int]) -> None:
        """Queues what was just stored, in Telegram's order (bot/lane_keeping.py decides
        where each lane runs)."""
        new = [(stored[u["update_id"]], u) for u in updates if u["update_id"] in stored]
        await self.keeper.queue_new(new)

    async def resume(self) -> None:
        """Finishes what a previous run stored but did not handle or answer, oldest first,
        a page at a time as the lanes make room (so a large backlog is never loaded whole)."""
        after, resumed = None, 0
        while True:
            room = await self.lanes.room(self.max_queued)
            async with self.sessions() as session:
                rows = await inbox.unfinished_batch(
                    session, channel=CHANNEL, after=after, limit=min(self.resume_batch, room)
                )
            if not rows:
                break
            resumed += len(rows)
            after = rows[-1].update_id
            for row in rows:
                update = row.payload
                if row.status == InboxStatus.RECEIVED:
                    self.keeper.queue(row.id, update)
                else:
                    self.lanes.submit(
                        self._lane(update),
                        lambda row=row, update=update: self._answer_stored(row, update),
                    )
        if resumed:
            log.info("resumed %d stored update(s)", resumed)

    async def stop(self) -> None:
        """Finishes the turns under way; what they queued and is not yet sent stays in the
        outbox for the next start."""
        await self.keeper.stop()
        await self.lanes.drain()
        await self.courier.stop()
        await self.sender.stop()
        await self.done.flush()

    def _lane(self, update: dict) -> str:
        """Workers by chat; the staff group by topic, so one ticket's messages keep order."""
        chat = update_chat(update)
        if chat is not None and chat["id"] == self.staff_chat_id:
            message = update_message(update) or {}
            return inbox.topic_lane(CHANNEL, message.get("message_thread_id"))
        return inbox.person_lane(CHANNEL, str(chat["id"] if chat else 0))

    async def _process(self, row_id: int, update: dict) -> None:
        inbound = to_inbound(update, staff_chat_id=self.staff_chat_id)
        query = update.get("callback_query")
        if inbound is None:  # not for us: another group, a channel post, a service message
            if query is not None:
                await self._acknowledge(query)
            self.done.add(row_id)
            return
        result = await self.engine.handle(inbound, receipt=row_id)
        if query is not None:
            await self._acknowledge(query, result.alert)
        calls = []
        if result.hold is not None:
            if result.hold.until is None:
                calls.append(courier.release(result.hold.lane))
            else:
                calls.append(courier.hold(result.hold.lane, result.hold.until))
        if result.erased and result.queued:  # nothing decided before /forget goes to them
            first = min(row.id for row in result.queued)
            calls.append(courier.drop(chat_lane(CHANNEL, inbound.person_id), before=first))
        if result.queued:
            calls.append(courier.wake(result.queued))
        await self.courier.hand(calls)
        if result.replies:  # the turn could not commit: said directly, there is no row
            await self._carry_out(inbound, result.replies, [])
        if result.erased and not any(row.body.get("erase_after") for row in result.queued):
            await self.engine.erase_traces()

    async def _answer_stored(self, row: InboxUpdate, update: dict) -> None:
        """A row a run before the outbox handled and did not answer: its stored replies."""
        inbound = to_inbound(update, staff_chat_id=self.staff_chat_id)
        if inbound is not None:
            await self._carry_out(
                inbound,
                [Reply.from_dict(r) for r in row.replies or []],
                [Outgoing.from_dict(o) for o in row.outgoing or []],
            )
        self.done.add(row.id)

    async def _carry_out(
        self, inbound: Inbound, replies: Sequence[Reply], outgoing: Sequence[Outgoing]
    ) -> None:
        """Sends replies where the person wrote, then what goes to topics and workers, without
        the outbox: for what has no row there."""
        if inbound.origin == "staff":
            for reply in replies:
                await self.send(self.staff_chat_id, reply, thread_id=inbound.thread_id)
        else:
            await self.deliver(int(inbound.person_id), replies)
        for item in outgoing:
            try:
                await self.staff_group.carry_out(item)
            except Exception:  # one failed item must not hold back the others
                log.exception("could not carry out %s for ticket %s", item.action, item.ticket_id)

    async def carry_out(self, body: dict, pace: str = Pace.PRIVATE) -> Delivered:
        """One outbox row: a reply in a worker's chat or in the staff group, or an Outgoing.
        A bulk row (a job alert, a broadcast) gives way to conversation in the pacer."""
        token = _carrying_bulk.set(pace == Pace.BULK)
        try:
            return await self._carry_out_row(body)
        finally:
            _carrying_bulk.reset(token)

    async def _carry_out_row(self, body: dict) -> Delivered:
        if "outgoing" in body:
            item = Outgoing.from_dict(body["outgoing"])
            sent = await self.staff_group.carry_out(item, records=body.get("records", ()))
        elif body["to"] == "chat":
            sent = await self.send(int(body["chat"]), Reply.from_dict(body["reply"]))
        elif self.staff_chat_id is None:
            sent = Sent("sent")  # no staff group: nothing to post (said once at start)
        elif body["to"] == "edit":
            sent = await self.edit(
                self.staff_chat_id, body["message"], Reply.from_dict(body["reply"])
            )
        else:
            reply = Reply.from_dict(body["reply"])
            sent = await self.send(self.staff_chat_id, reply, thread_id=body.get("thread"))
        ids = [sent.message_id] if sent.message_id is not None else []
        return Delivered(sent.status, ids, sent.detail or sent.reason)

    def _busy(self, pace: str) -> bool:
        """A destination at its limit: what waits for it may be merged. The staff group at
        its 20 a minute; private chats when the bot's overall budget is spent (a surge)."""
        staff = self.staff_chat_id
        if pace == Pace.GROUP:
            return staff is not None and self.pacer.group_wait(str(staff)) > 0
        return pace == Pace.PRIVATE and self.pacer.overall_wait() > 0

    async def _blocked(self, lane: str) -> None:
        """A worker blocked the bot: marked, so that nothing more is queued for them."""
        external_id = lane.rsplit(":", 1)[-1]
        async with self.sessions() as session, session.begin():
            await people.mark_blocked(
                session, channel=CHANNEL, external_id=external_id, now=utcnow()
            )

    async def _acknowledge(self, query: dict, alert: str | None = None) -> None:
        """Stops the button's spinner (with a pop-up when there is something to say); a
        failure here must not stop the turn."""
        try:
            await self.api.answer_callback_query(query["id"], alert)
        except TelegramError as error:
            log.info("could not answer callback query: %s", error)

    # -- sending ---------------------------------------------------------------------------

    async def deliver(self, chat_id: int, replies: Sequence[Reply]) -> list[str]:
        """Sends the replies in order; returns each one's delivery status."""
        return [(await self.send(chat_id, reply)).status for reply in replies]

    async def send(
        self,
        chat_id: int,
        reply: Reply,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> Sent:
        """Sends one reply, a long one in pieces one after the other (the buttons on the
        last), then its map pin as a venue, if it has one; its id is the last message's. A
        photo goes first, with the text as its caption when that fits in Telegram's 1,024."""
        if reply.photo is not None:
            return await self._send_photo(chat_id, reply, thread_id=thread_id, reply_to=reply_to)
        chunks = split_text(reply.text) if reply.text or reply.place is None else []
        last = len(chunks) - 1 if reply.place is None else None  # else the venue has them
        sent = Sent("sent")
        for index, chunk in enumerate(chunks):
            markup = keyboard(reply) if index == last else None
            sent = await self._send_text(
                chat_id,
                chunk,
                markup,
                thread_id=thread_id,
                reply_to=reply_to if index == 0 else None,
            )
            if sent.status != "sent":
                return sent
        if reply.place is not None:
            place = reply.place
            sent = await self._attempt(
                chat_id,
                lambda: self.bot.send_venue(
                    chat_id,
                    place.latitude,
                    place.longitude,
                    place.title,
                    place.address,
                    reply_markup=keyboard(reply),
                    message_thread_id=thread_id,
                    reply_parameters=reply_parameters(reply_to) if not chunks else None,
                ),
            )
        return sent

    async def edit(self, chat_id: int, message_id: int, reply: Reply) -> Sent:
        """Rewrites a message the bot sent (a broadcast's progress). An edit is no new message:
        the group's 20 a minute does not count it, only the bot's overall rate does."""
        calling()
        for _ in range(RATE_LIMITED_WAITS):
            await self.pacer.overall()
            try:
                await self.bot.edit_message_text(
                    reply.text,
                    chat_id,
                    message_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=keyboard(reply),
                )
                return Sent("sent", message_id)
            except RetryAfter as error:
                await asyncio.sleep(retry_seconds(error.retry_after))
            except BadRequest as error:
                if "not modified" in str(error).lower():
                    return Sent("sent", message_id)
                return Sent("failed", None, "refused", str(error))
            except TelegramError as error:  # an edit is redone by the next one: not retried
                return Sent("failed", None, "unreachable", str(error))
        return Sent("failed", None, "unreachable", "rate limited")

    async def download(self, file_id: str) -> bytes:
        """A file people sent the bot (a counsellor's photo, for a WeChat worker)."""
        file = await self.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())

    async def upload(
        self,
        chat_id: int,
        kind: str,
        data: bytes,
        *,
        caption: str | None = None,
        thread_id: int | None = None,
    ) -> Sent:
        """A file from elsewhere (a WeChat worker's evidence): a photo or video as such, any
        other kind (WeChat's AMR voice notes, which Telegram cannot play as voice) as a
        document; a caption over Telegram's 1,024 follows as a message answering it."""
        fits = caption is None or telegram_length(caption) <= MessageLimit.CAPTION_LENGTH
        method, field, name = _UPLOADS.get(kind, ("send_document", "document", f"{kind}.bin"))
        send = getattr(self.bot, method)
        upload = InputFile(data, filename=name)
        sent = await self._attempt(
            chat_id,
            lambda: send(
                chat_id,
                **{field: upload},
                caption=caption if fits else None,
                parse_mode=ParseMode.HTML,
                message_thread_id=thread_id,
            ),
        )
        if fits or sent.status != "sent":
            return sent
        after = await self.send(
            chat_id, Reply(caption), thread_id=thread_id, reply_to=sent.message_id
        )
        return Sent(after.status, sent.message_id, after.reason, after.detail)

    async def _send_photo(
        self, chat_id: int, reply: Reply, *, thread_id: int | None, reply_to: int | None
    ) -> Sent:
        photo = reply.photo
        fits = telegram_length(reply.text) <= MessageLimit.CAPTION_LENGTH
        sent = await self._attempt(
            chat_id,
            lambda: self.bot.send_photo(
                chat_id,
                photo.file_id or photo.png,
                caption=reply.text if fits and reply.text else None,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(reply) if fits else None,
                message_thread_id=thread_id,
                reply_parameters=reply_parameters(reply_to),
            ),
        )
        if fits or sent.status != "sent":
            return sent
        text = replace(reply, photo=None)
        after = await self.send(chat_id, text, thread_id=thread_id, reply_to=sent.message_id)
        return Sent(after.status, sent.message_id, after.reason, after.detail)

    async def copy(
        self,
        chat_id: int,
        from_chat_id: int,
        message_id: int,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
        caption: str | None = None,
    ) -> Sent:
        """Copies a message (any kind: text, photo, voice…) from one chat into another. A
        caption over Telegram's 1024 goes as a message of its own right after the copy,
        answering it; the copy's id is the one returned."""
        if caption is not None and telegram_length(caption) > MessageLimit.CAPTION_LENGTH:
            return await self._copy_then_text(
                chat_id, from_chat_id, message_id, caption, thread_id, reply_to
            )
        extra = {"caption": caption, "parse_mode": ParseMode.HTML} if caption is not None else {}
        sent = await self._attempt(
            chat_id,
            lambda: self.bot.copy_message(
                chat_id,
                from_chat_id,
                message_id,
                message_thread_id=thread_id,
                reply_parameters=reply_parameters(reply_to),
                **extra,
            ),
        )
        if caption and sent.reason == "too_long":  # Telegram counted more than we did
            return await self._copy_then_text(
                chat_id, from_chat_id, message_id, caption, thread_id, reply_to
            )
        return sent

    async def _copy_then_text(
        self,
        chat_id: int,
        from_chat_id: int,
        message_id: int,
        caption: str,
        thread_id: int | None,
        reply_to: int | None,
    ) -> Sent:
        """The media copied without a caption, then the caption's text answering the copy."""
        copied = await self.copy(
            chat_id, from_chat_id, message_id, thread_id=thread_id, reply_to=reply_to, caption=""
        )
        if copied.status != "sent":
            return copied
        text = await self.send(
            chat_id, Reply(caption), thread_id=thread_id, reply_to=copied.message_id
        )
        return Sent(text.status, copied.message_id, text.reason, text.detail)

    async def _send_text(
        self,
        chat_id: int,
        text: str,
        markup: InlineKeyboardMarkup | None,
        *,
        thread_id: int | None,
        reply_to: int | None,
    ) -> Sent:
        try:
            return await self._attempt(
                chat_id,
                lambda: self.api.send_message(
                    chat_id,
                    text,
                    parse_mode=ParseMode.HTML,
                    reply_markup=markup,
                    message_thread_id=thread_id,
                    reply_to=reply_to,
                ),
                quiet_parse_errors=True,
            )
        except _HtmlRejected as error:
            # A bug of ours let unbalanced markup through: better plain text than nothing.
            log.error(
                "HTML rejected for %s (%s); sending it as plain text", self._who(chat_id), error
            )
            return await self._attempt(
                chat_id,
                lambda: self.bot.send_message(
                    chat_id,
                    strip_tags(text),
                    reply_markup=markup,
                    message_thread_id=thread_id,
                    reply_parameters=reply_parameters(reply_to),
                ),
            )

    async def _attempt(self, chat_id: int, call, *, quiet_parse_errors: bool = False) -> Sent:
        """Runs one API call that posts a message, at its destination's pace, with retries
        for 5xx and timeouts; a 429 pauses that destination alone and is waited out."""
        who = self._who(chat_id)
        last: TelegramError | None = None
        attempt = waits = 0
        while attempt < SEND_ATTEMPTS and waits < RATE_LIMITED_WAITS:
            await self.pace(chat_id)
            calling()
            try:
                result = await call()  # a Message, or a message id (bot_api.py)
                sent_id = result if type(result) is int else getattr(result, "message_id", None)
                return Sent("sent", sent_id)
            except Forbidden as error:
                log.info("%s blocked the bot (%s)", who, error)
                return Sent("failed" if who == "the staff group" else "blocked", reason="blocked")
            except BadRequest as error:
                if quiet_parse_errors and "parse entities" in str(error):
                    raise _HtmlRejected(str(error)) from error
                log.error("Telegram refused a message for %s: %s", who, error)
                too_long = "too long" in str(error).lower()
                return Sent("failed", None, "too_long" if too_long else "refused", str(error))
            except RetryAfter as error:  # our pace was not Telegram's: that destination waits
                last, waits = error, waits + 1
                seconds = retry_seconds(error.retry_after)
                log.warning("Telegram asked to wait %ss before sending to %s", seconds, who)
                self.pacer.pause(str(chat_id), seconds)
            except NetworkError as error:  # 5xx and timeouts: python-telegram-bot does not retry
                last, attempt = error, attempt + 1
                log.warning("call for %s failed (%s), attempt %d", who, error, attempt)
                await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
        return Sent("failed", None, "unreachable", str(last) if last else None)

    async def pace(self, chat_id: int) -> None:
        """Waits until a message may go to this chat (the staff group, or a private chat)."""
        if chat_id == self.staff_chat_id:
            await self.pacer.group(str(chat_id))
        else:
            await self.pacer.private(str(chat_id), bulk=_carrying_bulk.get())

    def _who(self, chat_id: int) -> str:
        """How logs name a chat: never by a person's Telegram id."""
        return "the staff group" if chat_id == self.staff_chat_id else person_tag(chat_id)


# Whether the outbox row being carried out is bulk: every send path (texts in pieces, venues,
# copies) paces through pace(), and a context variable reaches it without a flag on each.
_carrying_bulk: contextvars.ContextVar[bool] = contextvars.ContextVar("bulk", default=False)


# Bot API method, its file field and a file name, per kind of file uploaded from elsewhere.
_UPLOADS = {
    "photo": ("send_photo", "photo", "photo.jpg"),
    "video": ("send_video", "video", "video.mp4"),
    "voice": ("send_document", "document", "voice.amr"),
}


class _HtmlRejected(Exception):
    """Telegram could not parse the HTML of a message."""
