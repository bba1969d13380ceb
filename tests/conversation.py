"""Talking to the bot as a person would, in tests: send, then read the turn's replies."""

from __future__ import annotations

from bot.local_bot_api import BotMessage, FakeUser

TURN_SETTLES = 0.15  # a turn's replies go out back to back; this much silence ends the turn


async def say(person: FakeUser, text: str) -> list[BotMessage]:
    """Sends text (or a /command) and returns every reply of that turn."""
    person.send(text)
    return await replies(person)


async def press(person: FakeUser, button: str | int) -> list[BotMessage]:
    person.press(button)
    return await replies(person)


async def replies(person: FakeUser, timeout: float = 10.0) -> list[BotMessage]:
    first = await person.next_message(timeout=timeout)
    return [first, *await person.quiet(TURN_SETTLES)]


def texts(messages: list[BotMessage]) -> str:
    return "\n".join(m.plain for m in messages)
