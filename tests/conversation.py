"""Talking to the bot as a person would, in tests: send, then read the turn's replies."""

from __future__ import annotations

import asyncio

from local_servers.telegram import BotMessage, FakeUser

TURN_SETTLES = 0.15  # a turn's replies go out back to back; this much silence ends the turn
PRESS_WAITS = 100  # of 50 ms: how long a press waits for its button's message


async def say(person: FakeUser, text: str) -> list[BotMessage]:
    """Sends text (or a /command) and returns every reply of that turn."""
    person.send(text)
    return await replies(person)


async def press(person: FakeUser, button: str | int) -> list[BotMessage]:
    """Presses the button once a message has it: on a loaded machine the message may still
    be on its way when the test gets here (the turn before ended with a pause in it)."""
    for _ in range(PRESS_WAITS):
        try:
            person.press(button)
            break
        except LookupError:
            await asyncio.sleep(0.05)
    else:
        person.press(button)  # still not there: fails, naming the buttons there are
    return await replies(person)


async def replies(person: FakeUser, timeout: float = 10.0) -> list[BotMessage]:
    first = await person.next_message(timeout=timeout)
    return [first, *await person.quiet(TURN_SETTLES)]


def texts(messages: list[BotMessage]) -> str:
    return "\n".join(m.plain for m in messages)


def wage_complaint(employer: str = "Sunrise Electronics") -> tuple[str, ...]:
    """A new English-speaking worker's answers from /start up to the evidence question."""
    return (
        "/start",
        "English",
        "File a complaint",
        "I agree",
        "Unpaid wages",
        employer,
        "Yushan",
        "88 Road",
        "Not paid since August",
        "done",
        "8500",
        "Aug-Oct",
    )


async def file_complaint(
    person: FakeUser,
    *,
    employer: str = "Sunrise Electronics",
    photo: str | None = "pay slip",
    phone: str = "skip",
    anonymous: bool = True,
) -> str:
    """Files a wage complaint (with a photo captioned `photo`, unless None); returns the
    ticket reference."""
    for answer in wage_complaint(employer):
        await say(person, answer)
    if photo is not None:
        person.send_photo(caption=photo)
        await replies(person)
    for answer in ("done", phone, "Stay anonymous" if anonymous else "Mediators may see my name"):
        await say(person, answer)
    submitted = texts(await say(person, "Submit"))
    return submitted.split("complaint number is ")[1].split(".")[0]
