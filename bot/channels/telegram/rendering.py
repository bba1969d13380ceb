"""The engine's Reply as Telegram sends it: HTML text in pieces of at most 4096 characters,
choices as an inline keyboard whose callback data names the question they answer."""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.constants import MessageLimit

from bot.channels.telegram.inbound import CHOICE_SEPARATOR
from bot.messages import Choice, Reply


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


def split_text(text: str) -> list[str]:
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


def strip_tags(text: str) -> str:
    plain = re.sub(r"<[^>]+>", "", text)
    return (
        plain.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    )


def reply_parameters(message_id: int | None) -> ReplyParameters | None:
    if message_id is None:
        return None
    return ReplyParameters(message_id, allow_sending_without_reply=True)
