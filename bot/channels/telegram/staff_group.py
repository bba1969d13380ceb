"""The staff group's side of the channel: ticket topics opened when first needed, posts and
copies into them, and counsellors' messages carried to workers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.channels.telegram.inbound import CHANNEL
from bot.channels.telegram.sent import RATE_LIMITED_WAITS, Sent, retry_seconds
from bot.delivery.sender import calling
from db import media_files, tickets
from db.models import Ticket, TicketMessage, utcnow
from handlers.messages import Outgoing, Reply

if TYPE_CHECKING:
    from bot.channels.telegram.channel import TelegramChannel

log = logging.getLogger(__name__)
TOPIC_REQUESTS = 3  # createForumTopic calls for one ticket whose answers are lost, at most


class StaffGroup:
    """Carries out what turns send to ticket topics in the staff group and, on counsellors'
    behalf, to workers; records each relayed message's delivery and its id on the other side."""

    def __init__(self, channel: TelegramChannel) -> None:
        self.channel = channel

    async def carry_out(self, item: Outgoing, *, records: Sequence[int] = ()) -> Sent:
        """Carries out one item; what became of it (a topic that cannot be opened fails)."""
        chat = self.channel.staff_chat_id
        if chat is None and item.to == "topic":
            return Sent("sent")  # no staff group configured (said once at start)
        if item.to == "topic":
            topic = await self._topic(item)
            if topic is None:
                return Sent("failed", reason="refused", detail="no topic for the ticket")
            if item.action == "topic":
                await self._set_topic_state(topic, item.topic_state)
                return Sent("sent")
            if item.action == "copy" and item.worker_channel not in (None, CHANNEL):
                sent = await self._post_from_elsewhere(chat, topic, item)
            elif item.action == "copy":
                sent = await self.channel.copy(
                    chat, int(item.worker), item.copy_of, thread_id=topic, reply_to=item.reply_to
                )
            else:
                sent = await self.channel.send(
                    chat, item.reply, thread_id=topic, reply_to=item.reply_to
                )
            await self._record(item, sent.status, staff_message_id=sent.message_id)
            for record in records:  # the texts merged into this post
                await self._record_as(record, sent.status, staff_message_id=sent.message_id)
            return sent
        if item.action == "copy":
            sent = await self.channel.copy(
                int(item.worker), chat, item.copy_of, caption=item.caption, reply_to=item.reply_to
            )
        else:
            sent = await self.channel.send(int(item.worker), item.reply, reply_to=item.reply_to)
        await self._record(item, sent.status, worker_message_id=sent.message_id)
        if sent.status != "sent" and item.on_failure is not None and chat is not None:
            topic = await self._topic(item)
            if topic is not None:
                await self.channel.send(chat, self._not_delivered(sent), thread_id=topic)
        return sent

    async def _post_from_elsewhere(self, chat: int, topic: int, item: Outgoing) -> Sent:
        """A worker on another channel (WeChat): there is nothing to copy from. A text is
        posted; a photo, voice note or video is fetched from their channel and uploaded, with
        its words (a voice note's transcript) as caption; if it cannot be, the topic says so."""
        if item.as_text is not None:
            return await self.channel.send(chat, item.as_text, thread_id=topic)
        fetch = self.channel.media_sources.get(item.worker_channel or "")
        message = await self._ticket_message(item.record) if item.record else None
        if fetch is None or message is None or not message.media_kind:
            return await self.channel.send(chat, self._media_elsewhere(item), thread_id=topic)
        try:
            async with self.channel.sessions() as session:
                data = await media_files.content_of(
                    session, channel=item.worker_channel or "", file_id=message.media_file_id
                )
            data = data or await fetch(message.media_file_id or "")
        except Exception as error:  # expired (WeChat keeps media 3 days), or unreachable
            log.warning(
                "could not fetch a worker's %s from %s: %s",
                message.media_kind,
                item.worker_channel,
                error,
            )
            return await self.channel.send(chat, self._media_elsewhere(item), thread_id=topic)
        catalog = self.channel.engine.catalog
        t = catalog.translator(catalog.staff_language)
        caption = str(t("mediation.worker_wrote", text=message.text)) if message.text else None
        return await self.channel.upload(
            chat, message.media_kind, data, caption=caption, thread_id=topic
        )

    async def _ticket_message(self, message_id: int) -> TicketMessage | None:
        async with self.channel.sessions() as session:
            return await session.get(TicketMessage, message_id)

    def _media_elsewhere(self, item: Outgoing) -> Reply:
        """What the topic says of a photo or voice note a worker sent on another channel."""
        catalog = self.channel.engine.catalog
        t = catalog.translator(catalog.staff_language)
        return Reply(str(t(f"mediation.media_elsewhere.{item.worker_channel}")))

    def _not_delivered(self, sent: Sent) -> Reply:
        """The topic's notice of a failed delivery, with the real reason."""
        catalog = self.channel.engine.catalog
        t = catalog.translator(catalog.staff_language)
        return Reply(str(t(f"mediation.undelivered.{sent.reason}", error=sent.detail or "")))

    async def _topic(self, item: Outgoing) -> int | None:
        """The ticket's topic, opened the first time the ticket needs one, and only once.

        The request is recorded on the ticket first (`topic_requested_at`), then Telegram is
        asked, then the topic's id stored. Telegram tells the bot of each topic it opens with
        a `forum_topic_created` service message in the group, and the channel, storing that
        update, claims the topic by the reference its name starts with for a ticket that asked
        for one and has none (db.tickets.claim_topic). So when the answer is lost (a timeout,
        a 5xx, the process killed), the topic is found rather than opened twice: this run waits
        until a poll sent after the loss came back with everything Telegram held; a restarted
        run has stored all Telegram held before it resumes the dead run's work. Only when no
        topic turned up is it asked for again. In this process one opening per ticket runs
        at a time; other items for the ticket wait for it. Two topics remain possible only if
        polling cannot catch up for minutes after a lost answer (see _until_polled)."""
        if item.topic_id is not None:
            return item.topic_id
        openings = self.channel.opening_topics
        opening = openings.get(item.ticket_id)
        if opening is None:
            opening = openings[item.ticket_id] = asyncio.ensure_future(self._open_topic(item))

            def finished(done: asyncio.Future[int | None], ticket_id: int = item.ticket_id) -> None:
                if openings.get(ticket_id) is done:
                    del openings[ticket_id]

            opening.add_done_callback(finished)
        return await asyncio.shield(opening)

    async def _open_topic(self, item: Outgoing) -> int | None:
        ticket = await self._ticket(item.ticket_id)
        if ticket is None or ticket.topic_id is not None:
            return ticket.topic_id if ticket else None
        if ticket.topic_requested_at is not None:  # asked before, and no answer was kept
            since_request = (
                self.channel.polls.started  # a dead run's: start stored what Telegram held
                if ticket.topic_requested_at < self.channel.started_at
                else time.monotonic()
            )
            await self._until_polled(since_request)
            ticket = await self._ticket(item.ticket_id)
            if ticket is None or ticket.topic_id is not None:
                return ticket.topic_id if ticket else None
        requests = waits = 0
        while requests < TOPIC_REQUESTS and waits < RATE_LIMITED_WAITS:
            # Noted once its turn in the group's minute has come, just before the call: a
            # restart counts the request in that minute by this time (the pace's wait can be
            # most of a minute in a surge, and a time noted before it undercounts the group).
            await self.channel.pace(self.channel.staff_chat_id)  # its first message
            await self._note_request(item.ticket_id, utcnow())
            calling()
            try:
                topic = await self.channel.bot.create_forum_topic(
                    self.channel.staff_chat_id, name=item.topic_title
                )
            except RetryAfter as error:  # nothing opened; the group waits, then again
                waits += 1
                self.channel.pacer.pause(
                    str(self.channel.staff_chat_id), retry_seconds(error.retry_after)
                )
                continue
            except (BadRequest, Forbidden) as error:  # refused: nothing opened
                log.error("could not open a topic for ticket %s: %s", item.ticket_id, error)
                await self._note_request(item.ticket_id, None)
                return None
            except TelegramError as error:  # no answer: it may be open all the same
                requests += 1
                log.warning("no answer opening a topic for ticket %s: %s", item.ticket_id, error)
                await self._until_polled(time.monotonic())
                ticket = await self._ticket(item.ticket_id)
                if ticket is None or ticket.topic_id is not None:
                    return ticket.topic_id if ticket else None
                continue
            async with self.channel.sessions() as session, session.begin():
                return await tickets.set_topic(
                    session, ticket_id=item.ticket_id, topic_id=topic.message_thread_id
                )
        log.error("gave up opening a topic for ticket %s", item.ticket_id)
        return None

    async def _until_polled(self, moment: float) -> None:
        """Waits for a poll sent after `moment` to bring all Telegram held (a topic opened
        then is claimed by now). If polling cannot get there (Telegram unreachable, the
        queue full all along), the topic is asked for again: two topics rather than none."""
        waited = 2 * self.channel.poll_timeout + 10
        if not await self.channel.polls.caught_up_since(moment, timeout=waited):
            log.error("polling did not catch up in %ss; a lost topic may be opened twice", waited)

    async def _ticket(self, ticket_id: int) -> Ticket | None:
        async with self.channel.sessions() as session:
            return await tickets.ticket_by_id(session, ticket_id=ticket_id)

    async def _note_request(self, ticket_id: int, at: datetime | None) -> None:
        async with self.channel.sessions() as session, session.begin():
            await tickets.note_topic_request(session, ticket_id=ticket_id, at=at)

    async def _set_topic_state(self, topic: int, state: str | None) -> None:
        bot = self.channel.bot
        call = {
            "close": bot.close_forum_topic,
            "reopen": bot.reopen_forum_topic,
            "delete": bot.delete_forum_topic,
        }[state]
        calling()
        try:
            await call(self.channel.staff_chat_id, topic)
        except BadRequest as error:  # already in that state
            log.info("topic %s: %s", topic, error)

    async def _record(self, item: Outgoing, status: str, **message_ids: int | None) -> None:
        if item.record is not None:
            await self._record_as(item.record, status, **message_ids)

    async def _record_as(self, record: int, status: str, **message_ids: int | None) -> None:
        async with self.channel.sessions() as session, session.begin():
            await tickets.record_delivery(session, message_id=record, status=status, **message_ids)
