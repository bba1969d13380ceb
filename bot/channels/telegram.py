"""The Telegram channel: the only module that knows python-telegram-bot's types.

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
import re
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ContextTypes

from bot.done_marks import DoneMarks
from bot.engine import Engine
from bot.lanes import Lanes
from bot.messages import Choice, Inbound, InboundKind, Media, Reply
from bot.settings import Settings
from db import inbox
from db.models import InboxStatus, InboxUpdate, utcnow

log = logging.getLogger(__name__)

CHANNEL = "telegram"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
MEDIA_KINDS = ("photo", "document", "voice", "video", "audio", "video_note", "animation", "sticker")
SEND_ATTEMPTS = 4  # for 5xx and timeouts; the rate limiter retries 429 by itself
# Turns under way at once, and HTTP connections for them. httpx scans its whole pool for
# every queued request; python-telegram-bot's default of 256 connections made that scan a
# large share of the benchmark's time, while more turns at once only lengthen the loop's round.
CONCURRENT_TURNS = 16
CHOICE_SEPARATOR = "|"


def build_application(settings: Settings) -> Application:
    """The python-telegram-bot Application: its bot, rate limiter and job queue; no Updater."""
    return (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .rate_limiter(AIORateLimiter(overall_max_rate=settings.max_sends_per_second,
                                     overall_time_period=1, max_retries=3))
        .connection_pool_size(CONCURRENT_TURNS)
        .updater(None)
        .build()
    )


class TelegramChannel:
    def __init__(
        self, *, application: Application, engine: Engine,
        sessions: async_sessionmaker[AsyncSession], poll_timeout: int = 30,
        retry_delay: float = 0.5,
    ) -> None:
        self.application = application
        self.engine = engine
        self.sessions = sessions
        self.poll_timeout = poll_timeout
        self.retry_delay = retry_delay
        self.lanes = Lanes(max_running=CONCURRENT_TURNS)
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
        rows = [(u.update_id, _person_key(u), u.to_dict()) for u in updates]
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
                self.lanes.submit(_person_key(update), lambda row=row: self._answer_stored(row))

    async def stop(self) -> None:
        await self.lanes.drain()
        await self.done.flush()

    def _queue(self, row_id: int, update: Update) -> None:
        self.lanes.submit(_person_key(update), lambda: self._process(row_id, update))

    async def _process(self, row_id: int, update: Update) -> None:
        if update.callback_query is not None:
            await _acknowledge(update.callback_query)
        inbound = to_inbound(update)
        if inbound is None:  # not for us: a group, a channel post, a service message
            self.done.add(row_id)
            return
        result = await self.engine.handle(inbound, receipt=row_id)
        await self.deliver(int(inbound.person_id), result.replies)
        self.done.add(row_id)
        if result.catch_up_after is not None:
            self._schedule_catch_up(inbound.person_id, result.catch_up_after)

    async def _answer_stored(self, row: InboxUpdate) -> None:
        chat_id = int(row.person_key.split(":", 1)[1])
        await self.deliver(chat_id, [Reply.from_dict(r) for r in row.replies or []])
        self.done.add(row.id)

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
        return [await self.send(chat_id, reply) for reply in replies]

    async def send(self, chat_id: int, reply: Reply) -> str:
        """Sends one reply: "sent", "blocked" (the person blocked the bot) or "failed"."""
        chunks = _split(reply.text)
        for index, chunk in enumerate(chunks):
            markup = keyboard(reply) if index == len(chunks) - 1 else None
            status = await self._send_text(chat_id, chunk, markup)
            if status != "sent":
                return status
        return "sent"

    async def _send_text(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None) -> str:
        parse_mode: str | None = ParseMode.HTML
        for attempt in range(SEND_ATTEMPTS):
            try:
                await self.bot.send_message(chat_id, text, parse_mode=parse_mode, reply_markup=markup)
                return "sent"
            except Forbidden:
                log.info("chat %s blocked the bot", chat_id)
                return "blocked"
            except BadRequest as error:
                if parse_mode and "parse entities" in str(error):
                    # A bug of ours let unbalanced markup through: better plain text than nothing.
                    log.error("HTML rejected for chat %s (%s); sending it as plain text", chat_id, error)
                    text, parse_mode = _strip_tags(text), None
                    continue
                log.error("could not send to chat %s: %s", chat_id, error)
                return "failed"
            except RetryAfter as error:  # the rate limiter already retried a few times
                await asyncio.sleep(_seconds(error.retry_after))
            except NetworkError as error:  # 5xx and timeouts: python-telegram-bot does not retry
                log.warning("send to chat %s failed (%s), attempt %d", chat_id, error, attempt + 1)
                await asyncio.sleep(self.retry_delay * 2**attempt)
        return "failed"


# -- Telegram → Inbound ------------------------------------------------------------------------


def to_inbound(update: Update) -> Inbound | None:
    """What the person did, without Telegram's types; None for what the bot does not answer."""
    if update.callback_query is not None:
        query = update.callback_query
        if query.message is None or query.message.chat.type != "private":
            return None
        tag, _, key = (query.data or "").rpartition(CHOICE_SEPARATOR)
        return _inbound(query.message.chat.id, query.from_user, InboundKind.CHOICE,
                        choice=key or None, choice_tag=tag or None)
    if update.edited_message is not None:
        message = update.edited_message
        if message.chat.type != "private":
            return None
        return _inbound(message.chat.id, message.from_user, InboundKind.EDIT, text=message.text)
    message = update.message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return None
    return _message_inbound(message)


def _message_inbound(message: Message) -> Inbound:
    chat_id, user = message.chat.id, message.from_user
    text = message.text
    if text is not None:
        command = _command(message)
        if command is not None:
            name, _, args = text[1:].partition(" ")
            return _inbound(chat_id, user, InboundKind.COMMAND, command=command, text=args or None)
        return _inbound(chat_id, user, InboundKind.TEXT, text=text)
    media = _media(message)
    if media is not None:
        return _inbound(chat_id, user, InboundKind.MEDIA, media=media, text=message.caption)
    if message.location is not None:
        return _inbound(chat_id, user, InboundKind.LOCATION)
    return _inbound(chat_id, user, InboundKind.OTHER)


def _command(message: Message) -> str | None:
    entities = message.entities or ()
    if not any(e.type == "bot_command" and e.offset == 0 for e in entities):
        return None
    return message.text[1:].split(maxsplit=1)[0].split("@")[0].lower()


def _media(message: Message) -> Media | None:
    for kind in MEDIA_KINDS:
        item = getattr(message, kind)
        if not item:
            continue
        if kind == "photo":
            item = item[-1]  # the largest size
        return Media(kind=kind, file_id=item.file_id, file_size=item.file_size,
                     mime_type=getattr(item, "mime_type", None),
                     file_name=getattr(item, "file_name", None))
    return None


def _inbound(chat_id: int, user, kind: InboundKind, **fields) -> Inbound:
    return Inbound(
        channel=CHANNEL, person_id=str(chat_id), kind=kind,
        display_name=user.full_name if user else None,
        username=user.username if user else None,
        language_hint=user.language_code if user else None,
        **fields,
    )


def _person_key(update: Update) -> str:
    chat = update.effective_chat
    return f"{CHANNEL}:{chat.id if chat else 0}"


async def _acknowledge(query: CallbackQuery) -> None:
    """Stops the button's spinner; a failure here must not stop the turn."""
    try:
        await query.answer()
    except TelegramError as error:
        log.info("could not answer callback query: %s", error)


# -- Reply → Telegram ----------------------------------------------------------------------


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """Numbered choices one to a row (short ones two), the others together on the last row."""
    if not reply.choices:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    numbered = [c for c in reply.choices if c.numbered]
    pair = all(len(c.label) <= 10 for c in numbered)
    for number, choice in enumerate(numbered, start=1):
        button = _button(reply, choice, f"{number}. {choice.label}")
        if pair and rows and len(rows[-1]) == 1 and number % 2 == 0:
            rows[-1].append(button)
        else:
            rows.append([button])
    others = [_button(reply, c, c.label) for c in reply.choices if not c.numbered]
    if others:
        rows.append(others)
    return InlineKeyboardMarkup(rows)


def _button(reply: Reply, choice: Choice, label: str) -> InlineKeyboardButton:
    data = f"{reply.choice_tag or ''}{CHOICE_SEPARATOR}{choice.key}"
    if len(data.encode()) > 64:
        raise ValueError(f"callback data over Telegram's 64 bytes: {data!r}")
    return InlineKeyboardButton(label, callback_data=data)


def _split(text: str) -> list[str]:
    """Telegram takes 4096 characters a message; longer texts go out in pieces, cut at lines."""
    limit = MessageLimit.MAX_TEXT_LENGTH
    if len(text) <= limit:
        return [text]
    chunks, current = [], ""
    for line in text.split("\n"):
        while len(line) > limit:
            chunks.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) + 1 > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    chunks.append(current)
    return [c for c in chunks if c]


def _strip_tags(text: str) -> str:
    plain = re.sub(r"<[^>]+>", "", text)
    return plain.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")


def _seconds(retry_after) -> float:
    return retry_after.total_seconds() if hasattr(retry_after, "total_seconds") else float(retry_after)
