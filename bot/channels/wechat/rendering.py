"""The engine's Reply as WeChat shows it: plain text (WeChat has no HTML and no buttons), the
choices as tappable lines, and pieces measured as WeChat measures them, in UTF-8 bytes.

The one markup kept is WeChat's own: `<a href="weixin://bizmsgmenu?...">` in the text of a
passive reply or a customer-service text message, which WeChat shows as a link and which,
tapped, sends its `msgmenucontent` back as the worker's message.
"""

from __future__ import annotations

import re
import unicodedata
from html import escape
from html.parser import HTMLParser
from urllib.parse import quote

from handlers.messages import Reply

# WeChat's rule for a passive reply's and a customer-service message's text: at most 2048
# bytes of content (errcode 45002 "content size out of limit" past it), counted in UTF-8.
TEXT_LIMIT_BYTES = 2048
BLANK_LINE = "\n\n"  # between a turn's messages joined into one WeChat message
CHOICE_SEPARATOR = " · "  # between the unnumbered choices on their one line
BOLD_TAGS = frozenset({"b", "strong"})  # Telegram takes either for bold
BOLD_OPEN, BOLD_CLOSE = "【", "】"
# Full-width, so that WeChat's auto-linking of a URL does not take the bracket into it.
URL_OPEN, URL_CLOSE = "（", "）"


def plain_text(html: str) -> str:
    """Telegram's HTML as WeChat text: bold as 【…】, a link as its text and its address,
    every other tag dropped with its text kept, entities decoded exactly once (an escaped
    "&lt;b&gt;" a worker typed is shown as "<b>", never read as a tag)."""
    parser = _PlainText()
    parser.feed(html)
    return parser.result()


class _PlainText(HTMLParser):
    """The standard library's parser, not a pattern: it knows where a tag ends and decodes
    every entity HTML has, in text and attributes, once (`convert_charrefs`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._buffers: list[list[str]] = [[]]  # an open link collects its text in its own
        self._hrefs: list[str] = []
        self._bold_depth = 0  # nested bold is one pair of brackets

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BOLD_TAGS:
            if self._bold_depth == 0:
                self._write(BOLD_OPEN)
            self._bold_depth += 1
        elif tag == "a":
            self._hrefs.append((dict(attrs).get("href") or "").strip())
            self._buffers.append([])
        elif tag == "br":
            self._write("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in BOLD_TAGS and self._bold_depth:
            self._bold_depth -= 1
            if self._bold_depth == 0:
                self._write(BOLD_CLOSE)
        elif tag == "a" and self._hrefs:
            href = self._hrefs.pop()
            text = "".join(self._buffers.pop())
            if href and text.strip() != href:
                text = f"{text}{URL_OPEN}{href}{URL_CLOSE}"
            self._write(text)

    def handle_data(self, data: str) -> None:
        self._write(data)

    def result(self) -> str:
        self.close()
        while self._hrefs:  # a tag left open is closed where the text ends
            self.handle_endtag("a")
        if self._bold_depth:
            self._bold_depth = 1
            self.handle_endtag("b")
        return "".join(self._buffers[0])

    def _write(self, text: str) -> None:
        self._buffers[-1].append(text)


def render(reply: Reply, *, type_words: str) -> str:
    """One Reply as one WeChat text: its text, a Place as "title, address", each numbered
    choice on its own line as a bizmsgmenu link, then the unnumbered ones (back, cancel, skip)
    on one line after `type_words` (the catalogue's "回复：" or "Reply: ", with its own
    punctuation), as words to type. A Photo is not text: it is sent apart, so it adds nothing.

    The links are WeChat's own and work only in the text of a customer-service or passive
    text message; tapping one sends "N. LABEL", which the engine reads by number or words.
    """
    lines = []
    text = plain_text(reply.text).strip()
    numbered = [choice for choice in reply.choices if choice.numbered]
    # The engine lists numbered choices in the text for typing (Telegram shows buttons
    # besides); here the tappable lines below are that list, so it is not shown twice.
    listing = "\n".join(f"{n}. {c.label}" for n, c in enumerate(numbered, start=1))
    if numbered and text.endswith(listing):
        text = text.removesuffix(listing).rstrip()
    if text:
        lines.append(text)
    if reply.place is not None:
        place = ", ".join(part for part in (reply.place.title, reply.place.address) if part)
        if place:
            lines.append(place)
    lines += [_menu_link(number, c.label) for number, c in enumerate(numbered, start=1)]
    others = [choice.label for choice in reply.choices if not choice.numbered]
    if others:
        lines.append(type_words + CHOICE_SEPARATOR.join(others))
    return "\n".join(lines)


def _menu_link(number: int, label: str) -> str:
    """WeChat's tappable text link. The content is percent-encoded whole (safe=""), so an "&"
    or "=" in a label cannot end the parameter; the shown text is HTML-escaped."""
    content = f"{number}. {label}"
    href = f"weixin://bizmsgmenu?msgmenucontent={quote(content, safe='')}&msgmenuid={number}"
    return f'<a href="{href}">{escape(content, quote=False)}</a>'


def utf8_size(text: str) -> int:
    """What WeChat counts against its limit."""
    return len(text.encode("utf-8"))


def split(text: str, limit: int = TEXT_LIMIT_BYTES) -> list[str]:
    """A text in pieces of at most `limit` UTF-8 bytes, in order: cut at a line break, else at
    a space, else anywhere, but never inside a character (nor an emoji made of several) or a
    bizmsgmenu link. The whitespace at a cut is dropped; nothing else is. A blank text gives
    no piece: WeChat refuses an empty message."""
    if not text.strip():
        return []
    if utf8_size(text) <= limit:
        return [text]
    atoms = _atoms(text)
    sizes = [utf8_size(atom) for atom in atoms]
    pieces: list[str] = []
    start = 0
    while start < len(atoms):
        cut, end = _cut(atoms, sizes, start, limit)
        piece = "".join(atoms[start:cut])
        if end < len(atoms):
            piece = piece.rstrip()
        if piece.strip():
            pieces.append(piece)
        start = cut
        while start < len(atoms) and atoms[start].isspace():
            start += 1  # the whitespace at a cut goes with the cut
    return pieces


def _cut(atoms: list[str], sizes: list[int], start: int, limit: int) -> tuple[int, int]:
    """Where the piece from `start` ends (`cut`) and how far it could have gone (`end`): the
    last line break that fits, if past half the piece, else the last space past half, else
    either, else as much as fits. A whitespace just past what fits is a cut too (it is
    dropped, so it need not fit)."""
    used, end, newline, space = 0, start, None, None
    while end < len(atoms) and used + sizes[end] <= limit:
        used += sizes[end]
        newline, space = _note_whitespace(atoms[end], end, newline, space)
        end += 1
    if end == len(atoms):
        return end, end
    if end == start:
        raise ValueError(f"a link longer than WeChat's {limit} bytes: {atoms[start][:80]!r}")
    newline, space = _note_whitespace(atoms[end], end, newline, space)
    half = start + (end - start) // 2
    for cut in (newline, space):
        if cut is not None and cut > half:
            return cut, end
    for cut in (newline, space):
        if cut is not None and cut > start:
            return cut, end
    return end, end


def _note_whitespace(
    atom: str, index: int, newline: int | None, space: int | None
) -> tuple[int | None, int | None]:
    if atom == "\n":
        return index, space
    if atom.isspace():
        return newline, index
    return newline, space


# A bizmsgmenu link as `_menu_link` writes it: its href is percent-encoded and its text
# escaped, so neither holds a quote or a "<".
_MENU_LINK = re.compile(r'<a href="weixin://bizmsgmenu\?[^"]*">[^<]*</a>')
ZERO_WIDTH_JOINER = "\u200d"


def _atoms(text: str) -> list[str]:
    """What a cut may not go inside: a bizmsgmenu link, or a character with whatever joins it
    (combining marks, variation selectors, skin tones, the halves of a flag, ZWJ sequences)."""
    atoms: list[str] = []
    position = 0
    for match in _MENU_LINK.finditer(text):
        _add_characters(atoms, text[position : match.start()])
        atoms.append(match.group(0))
        position = match.end()
    _add_characters(atoms, text[position:])
    return atoms


def _add_characters(atoms: list[str], text: str) -> None:
    for char in text:
        if atoms and _joins(atoms[-1], char):
            atoms[-1] += char
        else:
            atoms.append(char)


def _joins(previous: str, char: str) -> bool:
    """Whether `char` belongs to the character before it, as a reader sees it. Not Unicode's
    full grapheme rules (no library here has them): the cases a worker's text has."""
    if previous.startswith("<a "):
        return False
    if previous.endswith(ZERO_WIDTH_JOINER) or char == ZERO_WIDTH_JOINER:
        return True
    if unicodedata.category(char) in ("Mn", "Mc", "Me"):  # accents, variation selectors
        return True
    if "\U0001f3fb" <= char <= "\U0001f3ff" or "\U000e0020" <= char <= "\U000e007f":
        return True  # a skin tone, or a subdivision flag's tag characters
    return _is_regional(char) and len(previous) == 1 and _is_regional(previous)


def _is_regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def join_turn(texts: list[str], limit: int = TEXT_LIMIT_BYTES) -> list[str]:
    """A turn's rendered messages as few WeChat messages as fit, in order, a blank line
    between them: every send counts against the worker's customer-service quota (5 per
    message they send). Each text is split first, so the tail of a long one still takes the
    next ones with it; packing in order is then as few as any order-keeping way can be."""
    messages: list[str] = []
    for piece in (piece for text in texts for piece in split(text, limit)):
        if messages and utf8_size(messages[-1] + BLANK_LINE + piece) <= limit:
            messages[-1] += BLANK_LINE + piece
        else:
            messages.append(piece)
    return messages
