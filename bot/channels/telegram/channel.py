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
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import Bot, CallbackQuery, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ContextTypes

from bot.channels.telegram.inbound import CHANNEL, to_inbound
from bot.channels.telegram.rendering import keyboard, reply_parameters, split_text, strip_tags
from bot.channels.telegram.staff_group import StaffGroup
from bot.done_marks import DoneMarks
from bot.engine import Engine
from bot.lanes import Lanes
from bot.messages import Inbound, Outgoing, Reply
from bot.settings import Settings
from db import inbox
from db.models import InboxStatus, InboxUpdate, utcnow

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
SEND_ATTEMPTS = 4  # for 5xx and timeouts; the rate limiter retries 429 by itself
# Turns under way at once, and HTTP connections for them. httpx scans its whole pool for
# every queued request; python-telegram-bot's default of 256 connections made that scan a
# large share of the benchmark's time, while more turns at once only lengthen the loop's round.
CONCURRENT_TURNS = 16


def build_application(settings: Settings) -> Application:
    """The python-telegram-bot Application: its bot, rate limiter and job queue; no Updater."""
    return (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.max_sends_per_second, overall_time_period=1, max_retries=3
            )
        )
        .connection_pool_size(CONCURRENT_TURNS)
        .updater(None)
        .build()
    )


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

    @property
    def bot(self) -> Bot:
        return self.application.bot

    # -- receiving -------------------------------------------------------------------------

    async def run(self) -> None:
        """Polls until cancelled. Cancelling never confirms an update that was not stored."""
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.resume()
        offset: int | None = None
        failures = 0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=self.poll_timeout, allowed_updates=ALLOWED_UPDATES
                )
                if updates:
                    await self.accept(updates)
                    offset = updates[-1].update_id + 1
                failures = 0
            except RetryAfter as error:
                await asyncio.sleep(_seconds(error.retry_after))
            except TelegramError as error:
                failures += 1
                log.warning("getUpdates failed (%s); trying again", error)
                await asyncio.sleep(min(30.0, self.retry_delay * 2 ** min(failures, 6)))
            except Exception:  # the database: nothing was confirmed, so poll the same again
                failures += 1
                log.exception("could not store updates; trying again")
                await asyncio.sleep(min(30.0, self.retry_delay * 2 ** min(failures, 6)))

    async def accept(self, updates: Sequence[Update]) -> None:
        """Stores the updates, then queues the new ones in their people's lanes."""
        rows = [(u.update_id, self._lane(u), u.to_dict()) for u in updates]
        async with self.sessions() as session, session.begin():
            stored = await inbox.store_updates(session, channel=CHANNEL, updates=rows, now=utcnow())
        for update in updates:
            row_id = stored.get(update.update_id)
            if row_id is not None:
                self._queue(row_id, update)

    async def resume(self) -> None:
        """Finishes what a previous run stored but did not handle or answer."""
        async with self.sessions() as session:
            rows = await inbox.unfinished(session, channel=CHANNEL)
        if rows:
            log.info("resuming %d stored update(s) from the previous run", len(rows))
        for row in rows:
            update = Update.de_json(row.payload, self.bot)
            if row.status == InboxStatus.RECEIVED:
                self._queue(row.id, update)
            else:
                self.lanes.submit(
                    self._lane(update),
                    lambda row=row, update=update: self._answer_stored(row, update),
                )

    async def stop(self) -> None:
        await self.lanes.drain()
        await self.done.flush()

    def _lane(self, update: Update) -> str:
        """Workers by chat; the staff group by topic, so one ticket's messages keep order."""
        chat = update.effective_chat
        if chat is not None and chat.id == self.staff_chat_id:
            message = update.effective_message
            return f"{CHANNEL}:staff:{message.message_thread_id if message else 0}"
        return f"{CHANNEL}:{chat.id if chat else 0}"

    def _queue(self, row_id: int, update: Update) -> None:
        self.lanes.submit(self._lane(update), lambda: self._process(row_id, update))

    async def _process(self, row_id: int, update: Update) -> None:
        inbound = to_inbound(update, staff_chat_id=self.staff_chat_id)
        if inbound is None:  # not for us: another group, a channel post, a service message
            if update.callback_query is not None:
                await _acknowledge(update.callback_query)
            self.done.add(row_id)
            return
        result = await self.engine.handle(inbound, receipt=row_id)
        if update.callback_query is not None:
            await _acknowledge(update.callback_query, result.alert)
        await self._carry_out(inbound, result.replies, result.outgoing)
        self.done.add(row_id)
        if result.catch_up_after is not None:
            self._schedule_catch_up(inbound.person_id, result.catch_up_after)

    async def _answer_stored(self, row: InboxUpdate, update: Update) -> None:
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
        """Sends the replies where the person wrote, then what goes to topics and workers."""
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

    def _schedule_catch_up(self, person_id: str, delay: float) -> None:
        """python-telegram-bot's job queue asks the held-back question once the flood is over."""
        name = f"catch-up:{person_id}"
        for job in self.application.job_queue.get_jobs_by_name(name):
            job.schedule_removal()
        self.application.job_queue.run_once(self._catch_up, when=delay, data=person_id, name=name)

    async def _catch_up(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        person_id: str = context.job.data

        async def ask_again() -> None:
            await self.deliver(int(person_id), await self.engine.catch_up(CHANNEL, person_id))

        self.lanes.submit(f"{CHANNEL}:{person_id}", ask_again)

    # -- sending ---------------------------------------------------------------------------

    async def deliver(self, chat_id: int, replies: Sequence[Reply]) -> list[str]:
        """Sends the replies in order; returns each one's delivery status."""
        return [(await self.send(chat_id, reply))[0] for reply in replies]

    async def send(
        self,
        chat_id: int,
        reply: Reply,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> tuple[str, int | None]:
        """Sends one reply: ("sent", its message id), ("blocked", None) when the person
        blocked the bot, or ("failed", None)."""
        chunks = split_text(reply.text)
        message_id = None
        for index, chunk in enumerate(chunks):
            markup = keyboard(reply) if index == len(chunks) - 1 else None
            status, message_id = await self._send_text(
                chat_id,
                chunk,
                markup,
                thread_id=thread_id,
                reply_to=reply_to if index == 0 else None,
            )
            if status != "sent":
                return status, None
        return "sent", message_id

    async def copy(
        self,
        chat_id: int,
        from_chat_id: int,
        message_id: int,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
        caption: str | None = None,
    ) -> tuple[str, int | None]:
        """Copies a message (any kind: text, photo, voice…) from one chat into another."""
        extra = {"caption": caption, "parse_mode": ParseMode.HTML} if caption is not None else {}
        return await self._attempt(
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

    async def _send_text(
        self,
        chat_id: int,
        text: str,
        markup: InlineKeyboardMarkup | None,
        *,
        thread_id: int | None,
        reply_to: int | None,
    ) -> tuple[str, int | None]:
        try:
            return await self._attempt(
                chat_id,
                lambda: self.bot.send_message(
                    chat_id,
                    text,
                    parse_mode=ParseMode.HTML,
                    reply_markup=markup,
                    message_thread_id=thread_id,
                    reply_parameters=reply_parameters(reply_to),
                ),
                quiet_parse_errors=True,
            )
        except _HtmlRejected as error:
            # A bug of ours let unbalanced markup through: better plain text than nothing.
            log.error("HTML rejected for chat %s (%s); sending it as plain text", chat_id, error)
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

    async def _attempt(
        self, chat_id: int, call, *, quiet_parse_errors: bool = False
    ) -> tuple[str, int | None]:
        """Runs one API call with the retries the rate limiter does not do (5xx, timeouts)."""
        for attempt in range(SEND_ATTEMPTS):
            try:
                result = await call()
                return "sent", getattr(result, "message_id", None)
            except Forbidden:
                log.info("chat %s blocked the bot", chat_id)
                return "blocked", None
            except BadRequest as error:
                if quiet_parse_errors and "parse entities" in str(error):
                    raise _HtmlRejected(str(error)) from error
                log.error("could not send to chat %s: %s", chat_id, error)
                return "failed", None
            except RetryAfter as error:  # the rate limiter already retried a few times
                await asyncio.sleep(_seconds(error.retry_after))
            except NetworkError as error:  # 5xx and timeouts: python-telegram-bot does not retry
                log.warning("call for chat %s failed (%s), attempt %d", chat_id, error, attempt + 1)
                await asyncio.sleep(self.retry_delay * 2**attempt)
        return "failed", None


class _HtmlRejected(Exception):
    """Telegram could not parse the HTML of a message."""


async def _acknowledge(query: CallbackQuery, alert: str | None = None) -> None:
    """Stops the button's spinner (with a pop-up when there is something to say); a failure
    here must not stop the turn."""
    try:
        await query.answer(alert, show_alert=alert is not None)
    except TelegramError as error:
        log.info("could not answer callback query: %s", error)


def _seconds(retry_after) -> float:
    return (
        retry_after.total_seconds() if hasattr(retry_after, "total_seconds") else float(retry_after)
    )
