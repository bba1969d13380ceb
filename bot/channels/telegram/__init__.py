"""The Telegram channel: this package is the only place that knows python-telegram-bot's types.

`channel` polls, stores and dispatches updates and sends replies; `inbound` turns updates into
the engine's Inbound; `rendering` turns Replies into Telegram messages; `staff_group` carries
out what goes to ticket topics and, for counsellors, to workers.
"""

from bot.channels.telegram.channel import TelegramChannel, build_application, build_pacer
from bot.channels.telegram.inbound import CHANNEL, to_inbound

__all__ = ["CHANNEL", "TelegramChannel", "build_application", "build_pacer", "to_inbound"]
