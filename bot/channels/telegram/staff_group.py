"""The staff group's side of the channel: ticket topics opened when first needed, posts and
copies into them, and counsellors' messages carried to workers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram.error import BadRequest, TelegramError

from bot.messages import Outgoing
from db import tickets

if TYPE_CHECKING:
    from bot.channels.telegram.channel import TelegramChannel

log = logging.getLogger(__name__)


class StaffGroup:
    """Carries out what turns send to ticket topics in the staff group and, on counsellors'
    behalf, to workers; records each relayed message's delivery and its id on the other side."""

    def __init__(self, channel: TelegramChannel) -> None:
        self.channel = channel

    async def carry_out(self, item: Outgoing) -> None:
        chat = self.channel.staff_chat_id
        if chat is None and item.to == "topic":
            return  # no staff group configured (said once at start)
        if item.to == "topic":
            topic = await self._topic(item)
            if topic is None:
                return
            if item.action == "topic":
                await self._set_topic_state(topic, item.topic_state)
                return
            if item.action == "copy":
                status, sent_id = await self.channel.copy(
                    chat, int(item.worker), item.copy_of, thread_id=topic, reply_to=item.reply_to
                )
            else:
                status, sent_id = await self.channel.send(
                    chat, item.reply, thread_id=topic, reply_to=item.reply_to
                )
            await self._record(item, status, staff_message_id=sent_id)
            return
        if item.action == "copy":
            status, sent_id = await self.channel.copy(
                int(item.worker), chat, item.copy_of, caption=item.caption, reply_to=item.reply_to
            )
        else:
            status, sent_id = await self.channel.send(
                int(item.worker), item.reply, reply_to=item.reply_to
            )
        await self._record(item, status, worker_message_id=sent_id)
        if status != "sent" and item.on_failure is not None and chat is not None:
            topic = await self._topic(item)
            if topic is not None:
                await self.channel.send(chat, item.on_failure, thread_id=topic)

    async def _topic(self, item: Outgoing) -> int | None:
        """The ticket's topic, opened the first time the ticket needs one."""
        if item.topic_id is not None:
            return item.topic_id
        async with self.channel.sessions() as session:
            ticket = await tickets.ticket_by_id(session, ticket_id=item.ticket_id)
        if ticket is None:
            return None
        if ticket.topic_id is not None:
            return ticket.topic_id
        try:
            topic = await self.channel.bot.create_forum_topic(
                self.channel.staff_chat_id, name=item.topic_title
            )
        except TelegramError as error:
            log.error("could not open a topic for ticket %s: %s", item.ticket_id, error)
            return None
        async with self.channel.sessions() as session, session.begin():
            return await tickets.set_topic(
                session, ticket_id=item.ticket_id, topic_id=topic.message_thread_id
            )

    async def _set_topic_state(self, topic: int, state: str | None) -> None:
        bot = self.channel.bot
        call = {
            "close": bot.close_forum_topic,
            "reopen": bot.reopen_forum_topic,
            "delete": bot.delete_forum_topic,
        }[state]
        try:
            await call(self.channel.staff_chat_id, topic)
        except BadRequest as error:  # already in that state
            log.info("topic %s: %s", topic, error)

    async def _record(self, item: Outgoing, status: str, **message_ids: int | None) -> None:
        if item.record is None:
            return
        async with self.channel.sessions() as session, session.begin():
            await tickets.record_delivery(
                session, message_id=item.record, status=status, **message_ids
            )
