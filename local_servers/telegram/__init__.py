"""A local stand-in for Telegram's Bot API, for the real bot to run against.

The hotline's behaviour lives in conversations: a worker writes, the bot answers, a counsellor
replies in a forum topic, a button is pressed, Telegram refuses a message or rate-limits the
bot. Mocking python-telegram-bot would test our guesses about that library instead of the bot,
so this package runs an HTTP server that speaks the Bot API (long polling or webhook delivery,
messages, files, forum topics, Telegram's own error envelopes) and lets the unmodified
Application connect to it through ``base_url``. Tests, the terminal demo and the benchmarks
all play people through it.

It is the server side on purpose: plain dicts and JSON, no python-telegram-bot import.
"""

from local_servers.telegram.chats import BotMessage, Button, FakeForum, FakeUser
from local_servers.telegram.limits import RateLimited, TelegramLimits, busiest_window
from local_servers.telegram.server import LocalBotApi, RecordedRequest, WebhookAttempt

__all__ = [
    "BotMessage",
    "Button",
    "FakeForum",
    "FakeUser",
    "LocalBotApi",
    "RateLimited",
    "RecordedRequest",
    "TelegramLimits",
    "WebhookAttempt",
    "busiest_window",
]
