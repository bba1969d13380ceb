"""Telegram's handling of formatted text, reproduced closely enough to fail where Telegram fails.

The bot builds HTML messages out of workers' own words. If a worker's "<3" or "a<b" slips
through unescaped, Telegram refuses the whole message and the worker hears nothing back. The
parser below follows the rules of Telegram's own HTML parser (tdlib's ``parse_html``), error
wording included, so tests catch those mistakes instead of production.
"""

import re
from dataclasses import dataclass

ALLOWED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "blockquote",
    }
)
_SIMPLE_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "code": "code",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(?:#(?:[xX]([0-9a-fA-F]+)|([0-9]+))|([a-zA-Z]+))(;?)")
_SPECIAL = re.compile(r"[<&]")
_SPACE = " \t\r\n\f\v"
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.\-]*")


class HtmlParseError(ValueError):
    """Telegram's reason for refusing an HTML text (goes after "can't parse entities: ")."""


def utf16_len(text: str) -> int:
    """Telegram measures entity offsets and lengths in UTF-16 code units."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


@dataclass(slots=True)
class _OpenTag:
    name: str
    argument: str
    start: int  # UTF-16 offset in the plain text
    chunk: int  # where the tag's content starts in the parser's output chunks
    expandable: bool = False


class _HtmlParser:
    """One pass over the text, like tdlib: plain text out, entities emitted as tags close."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.out: list[str] = []
        self.offset = 0
        self.entities: list[dict] = []
        self.open: list[_OpenTag] = []

    def error(self, message: str, position: int | None = None) -> HtmlParseError:
        if position is not None:
            message += f" at byte offset {len(self.text[:position].encode())}"
        return HtmlParseError(message)

    def emit(self, chunk: str) -> None:
        self.out.append(chunk)
        self.offset += utf16_len(chunk)

    def parse(self) -> tuple[str, list[dict]]:
        text, i = self.text, 0
        while i < len(text):
            special = _SPECIAL.search(text, i)
            if special is None:
                self.emit(text[i:])
                break
            if special.start() > i:
                self.emit(text[i : special.start()])
                i = special.start()
            if text[i] == "&":
                i = self.entity(i)
            elif text.startswith("</", i):
                i = self.end_tag(i)
            else:
                i = self.start_tag(i)
        if self.open:
            raise self.error(
                f'Can\'t find end tag corresponding to start tag "{self.open[-1].name}"'
            )
        self.entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
        return "".join(self.out), self.entities

    def entity(self, begin: int) -> int:
        match = _ENTITY.match(self.text, begin)
        character = _decode_entity(match) if match else None
        if character is not None:
            self.emit(character)
            return match.end()
        if match and match.group(3) and match.group(4):
            # Telegram would show "&nbsp;" literally; a stricter check catches unescaped input.
            raise self.error(f'Unsupported HTML entity "{match.group(0)}"', begin)
        self.emit("&")  # a lone ampersand ("AT&T") is plain text for Telegram too
        return begin + 1

    def start_tag(self, begin: int) -> int:
        text, i = self.text, begin + 1
        while i < len(text) and text[i] not in _SPACE and text[i] != ">":
            i += 1
        if i >= len(text):
            raise self.error("Unclosed start tag", begin)
        name = text[begin + 1 : i].lower()
        if name not in ALLOWED_TAGS:
            raise self.error(f'Unsupported start tag "{name}"', begin)
        tag = _OpenTag(name, "", self.offset, len(self.out))
        while True:
            while i < len(text) and text[i] in _SPACE:
                i += 1
            if i >= len(text):
                raise self.error("Unclosed start tag", begin)
            if text[i] == ">":
                break
            i = self.attribute(tag, begin, i)
        if name == "span" and tag.argument != "spoiler":
            raise self.error('Tag "span" must have class "tg-spoiler"', begin)
        self.open.append(tag)
        return i + 1

    def attribute(self, tag: _OpenTag, begin: int, i: int) -> int:
        text, name_start = self.text, i
        while i < len(text) and text[i] not in _SPACE and text[i] not in "=>":
            i += 1
        attribute = text[name_start:i]
        if not attribute:
            raise self.error(f'Empty attribute name in the tag "{tag.name}"', begin)
        while i < len(text) and text[i] in _SPACE:
            i += 1
        if i >= len(text) or text[i] != "=":
            if tag.name == "blockquote" and attribute == "expandable":
                tag.expandable = True
                return i
            raise self.error(
                f'Expected equal sign in declaration of an attribute of the tag "{tag.name}"', begin
            )
        i += 1
        while i < len(text) and text[i] in _SPACE:
            i += 1
        if i >= len(text):
            raise self.error(f'Unclosed start tag "{tag.name}"', begin)
        if text[i] in "'\"":
            close = text.find(text[i], i + 1)
            if close < 0:
                raise self.error("Unclosed start tag", begin)
            value = _ENTITY.sub(lambda m: _decode_entity(m) or m.group(0), text[i + 1 : close])
            i = close + 1
        else:
            token = _NAME_TOKEN.match(text, i)
            value = token.group(0).lower()
            i = token.end()
            if i < len(text) and text[i] not in _SPACE and text[i] != ">":
                raise self.error("Unexpected end of name token", token.start())
        if tag.name == "a" and attribute == "href":
            tag.argument = value
        elif tag.name == "code" and attribute == "class" and value.startswith("language-"):
            tag.argument = value.removeprefix("language-")
        elif tag.name == "span" and attribute == "class" and value.startswith("tg-"):
            tag.argument = value.removeprefix("tg-")
        elif tag.name == "tg-emoji" and attribute == "emoji-id":
            tag.argument = value
        return i

    def end_tag(self, begin: int) -> int:
        text = self.text
        if not self.open:
            raise self.error("Unexpected end tag", begin)
        i = begin + 2
        while i < len(text) and text[i] not in _SPACE and text[i] != ">":
            i += 1
        found = text[begin + 2 : i].lower()
        while i < len(text) and text[i] in _SPACE:
            i += 1
        if i >= len(text) or text[i] != ">":
            raise self.error("Unclosed end tag", begin)
        tag = self.open.pop()
        if found and found != tag.name:
            raise self.error(
                f"Unmatched end tag at byte offset {len(text[:begin].encode())}, "
                f'expected "</{tag.name}>", found "</{found}>"'
            )
        self.close(tag)
        return i + 1

    def close(self, tag: _OpenTag) -> None:
        length = self.offset - tag.start
        if length <= 0:
            return
        entity: dict = {"offset": tag.start, "length": length}
        if (
            tag.name == "code"
            and tag.argument
            and self.open
            and self.open[-1].name == "pre"
            and self.open[-1].start == tag.start
        ):
            self.open[-1].argument = tag.argument  # <pre><code class="language-x"> is one entity
            return
        if tag.name in _SIMPLE_ENTITY_TYPES:
            entity["type"] = _SIMPLE_ENTITY_TYPES[tag.name]
        elif tag.name == "a":
            entity["type"] = "text_link"
            entity["url"] = tag.argument or "".join(self.out[tag.chunk :])
        elif tag.name == "pre":
            entity["type"] = "pre"
            if tag.argument:
                entity["language"] = tag.argument
        elif tag.name == "blockquote":
            entity["type"] = "expandable_blockquote" if tag.expandable else "blockquote"
        else:  # tg-emoji
            entity["type"] = "custom_emoji"
            entity["custom_emoji_id"] = tag.argument
        self.entities.append(entity)


def _decode_entity(match: re.Match) -> str | None:
    hex_digits, digits, name, _ = match.groups()
    if name is not None:
        return _NAMED_ENTITIES.get(name)
    code = int(hex_digits, 16) if hex_digits else int(digits)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def parse_html(text: str) -> tuple[str, list[dict]]:
    """The plain text and MessageEntity dicts Telegram makes of an HTML text, or HtmlParseError."""
    return _HtmlParser(text).parse()


def strip_text(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """Telegram trims surrounding whitespace off every text and caption, entities follow."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = utf16_len(text[: len(text) - len(text.lstrip())])
    end = utf16_len(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        stop = min(entity["offset"] + entity["length"] - shift, end)
        if stop > start:
            kept.append({**entity, "offset": start, "length": stop - start})
    return stripped, kept
