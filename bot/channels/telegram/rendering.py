"""The engine's Reply as Telegram sends it: HTML text in pieces Telegram accepts (measured as
Telegram measures them), choices as an inline keyboard whose callback data names the question
they answer."""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.constants import MessageLimit

from bot.channels.telegram.inbound import CHOICE_SEPARATOR
from handlers.messages import Choice, Reply

ROW_BUTTONS, ROW_CHARS = 3, 24  # what fits side by side on a phone, labels' characters


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """Numbered choices one to a row (short ones two), the others after them, side by side
    while they fit (Refer's long place names each get a row)."""
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
    others: list[list[InlineKeyboardButton]] = []
    for choice in (c for c in reply.choices if not c.numbered):  # back, cancel, skip: a row
        row = others[-1] if others else None
        width = sum(len(b.text) for b in row) + len(choice.label) if row else 0
        if row is None or len(row) == ROW_BUTTONS or width > ROW_CHARS:  # long ones: own row
            others.append([])
        others[-1].append(_button(reply, choice, choice.label))
    return InlineKeyboardMarkup(rows + others)


def _button(reply: Reply, choice: Choice, label: str) -> InlineKeyboardButton:
    data = f"{reply.choice_tag or ''}{CHOICE_SEPARATOR}{choice.key}"
    if len(data.encode()) > 64:
        raise ValueError(f"callback data over Telegram's 64 bytes: {data!r}")
    return InlineKeyboardButton(label, callback_data=data)


def telegram_length(html: str) -> int:
    """What Telegram counts against its limits: the text left after HTML parsing (tags gone,
    entities decoded), in UTF-16 code units, as message entities are measured."""
    return sum(units for _, units, _ in _atoms(html))


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """HTML in pieces Telegram takes (at most `limit` of what it counts: `telegram_length`),
    in order, each valid on its own: cut at a line, else at a space, never inside a tag or an
    entity; a tag open at a cut is closed at the end of the piece and reopened in the next."""
    if _utf16_len(text) <= limit:  # tags and entities only shrink when parsed
        return [text]
    atoms = _atoms(text)
    pieces: list[str] = []
    open_tags: list[tuple[str, str]] = []  # (the start tag as written, its name)
    start = 0
    while start < len(atoms):
        end = _piece_end(atoms, start, limit)
        reopened = "".join(tag for tag, _ in open_tags)
        for raw, _, tag in atoms[start:end]:
            if tag is None:
                continue
            if raw.startswith("</"):
                if open_tags:  # a stray end tag: Telegram will say so, as it would whole
                    open_tags.pop()
            else:
                open_tags.append((raw, tag))
        body = "".join(raw for raw, _, _ in atoms[start:end])
        closed = "".join(f"</{name}>" for _, name in reversed(open_tags))
        if any(units and not raw.isspace() for raw, units, _ in atoms[start:end]):
            pieces.append(reopened + body + closed)  # Telegram refuses an empty text
        start = end
    return pieces


def _piece_end(atoms: list[tuple[str, int, str | None]], start: int, limit: int) -> int:
    """Where the piece starting at `start` ends: the last line break that fits, if it is past
    half the piece, else the last space past half, else either, else as much as fits."""
    units, end, newline, space = 0, start, None, None
    while end < len(atoms):
        raw, size, _ = atoms[end]
        if units + size > limit:
            break
        units += size
        end += 1
        if raw == "\n":
            newline = end
        elif raw == " ":
            space = end
    if end == len(atoms):
        return end
    half = start + (end - start) // 2
    for cut in (newline, space):
        if cut is not None and cut > half:
            return cut
    for cut in (newline, space):
        if cut is not None and cut > start:
            return cut
    return max(end, start + 1)


# A tag, an entity, or one character (a lone "&" is plain text to Telegram).
_ATOM = re.compile(r"<(/?)([a-zA-Z][\w-]*)[^>]*>|&(?:#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);|.", re.S)


def _atoms(html: str) -> list[tuple[str, int, str | None]]:
    """(what is written, the UTF-16 units Telegram counts for it, the tag's name if a tag)."""
    atoms = []
    for match in _ATOM.finditer(html):
        raw = match.group(0)
        if match.group(2):
            atoms.append((raw, 0, match.group(2).lower()))
        elif raw.startswith("&") and len(raw) > 1:
            atoms.append((raw, _utf16_len(_unescape(raw)), None))
        else:
            atoms.append((raw, _utf16_len(raw), None))
    return atoms


def _utf16_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def _unescape(entity: str) -> str:
    """One HTML entity as Telegram decodes it (the four named ones, and numeric ones)."""
    named = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"'}
    if entity in named:
        return named[entity]
    if entity.startswith("&#"):
        digits = entity[2:-1]
        code = int(digits[1:], 16) if digits[:1] in "xX" else int(digits)
        if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            return chr(code)
    return entity


def strip_tags(text: str) -> str:
    """The text as plain text: tags dropped, entities decoded."""
    return "".join(
        _unescape(raw) if raw.startswith("&") else raw
        for raw, _, tag in _atoms(text)
        if tag is None
    )


def reply_parameters(message_id: int | None) -> ReplyParameters | None:
    if message_id is None:
        return None
    return ReplyParameters(message_id, allow_sending_without_reply=True)
