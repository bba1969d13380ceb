"""The city guide: one Markdown file per section and language in content/guide/<language>/,
each with YAML front matter (title, keywords, order, parent, sample), so that a centre
rewrites its city's guide in a text editor. Sections are shown as Telegram HTML, split into
messages a phone shows whole, and found by free-text questions (content/guide_search.py).

The renderer is a small one of our own rather than a full Markdown library: Telegram accepts
only a handful of tags (<b>, <i>, <a>, <code>), so a complete Markdown-to-HTML conversion would
have to be cut back to those anyway, and a guide needs no more than headings, bold, lists and
links.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from markupsafe import escape

TELEGRAM_LIMIT = 4096  # characters in one message
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n(.*)\Z", re.DOTALL)
SECTION_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_KEY = 30
FIELDS = {"title", "keywords", "order", "parent", "sample", "calculator"}
CALCULATORS = {"social_insurance"}

_LINK = re.compile(r"\[([^\]]+)\]\(((?:https?://|tel:)[^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_CODE = re.compile(r"`([^`]+)`")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")


@dataclass(frozen=True)
class Section:
    key: str  # the file's name: the same in every language
    language: str
    title: str
    keywords: tuple[str, ...]
    order: int
    parent: str | None
    sample: bool  # some facts are unverified: the bot says so under the text
    calculator: str | None  # a calculator offered at the end of the section
    body: str  # Markdown


@dataclass
class Guide:
    languages: list[str]
    message_chars: dict[str, int]  # by language: a screen holds fewer Chinese characters
    settings: dict[str, Any]  # content/guide/search.yaml: stop words, cues, thresholds
    sections: dict[str, dict[str, Section]] = field(default_factory=dict)  # language → key →
    problems: list[str] = field(default_factory=list)

    def section(self, language: str, key: str) -> Section | None:
        return self.sections.get(language, {}).get(key)

    def children(self, language: str, parent: str | None) -> list[Section]:
        """The sections under `parent` (None: the top of the tree), in their order."""
        found = [s for s in self.sections.get(language, {}).values() if s.parent == parent]
        return sorted(found, key=lambda s: (s.order, s.key))

    def titles(self, key: str) -> list[str]:
        """A section's title in every language, so a bilingual worker may type either."""
        return [s.title for lang in self.languages if (s := self.section(lang, key))]

    def messages(self, section: Section) -> list[str]:
        return _messages(section.body, self.message_chars[section.language])


@functools.lru_cache(maxsize=8)
def guide_of(folder: Path, languages: tuple[str, ...]) -> Guide:
    """The guide in `folder`/guide, read once per process: the handler and the check share it."""
    return load_guide(Path(folder) / "guide", list(languages))


def load_guide(folder: Path, languages: list[str]) -> Guide:
    """Reads every section; what is wrong is listed in `problems`, and the rest still loads,
    so one bad file does not take the guide down."""
    settings = _settings(folder)
    problems: list[str] = settings.pop("_problems")
    written = settings.get("message_chars") or {}
    chars = {}
    for language in languages:
        limit = written.get(language) if isinstance(written, dict) else None
        if not isinstance(limit, int) or not 200 <= limit < TELEGRAM_LIMIT:
            problems.append(
                f"guide/search.yaml: message_chars.{language} must be 200 to {TELEGRAM_LIMIT - 1}"
            )
            limit = 1000
        chars[language] = limit
    guide = Guide(languages=languages, message_chars=chars, settings=settings, problems=problems)
    for language in languages:
        sections: dict[str, Section] = {}
        for path in sorted((folder / language).glob("*.md")):
            section = _read_section(path, language, problems)
            if section is not None:
                sections[section.key] = section
        guide.sections[language] = sections
    return guide


def _settings(folder: Path) -> dict[str, Any]:
    path = folder / "search.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        return {"_problems": [f"guide/search.yaml cannot be read: {error}"]}
    data["_problems"] = []
    return data


def _read_section(path: Path, language: str, problems: list[str]) -> Section | None:
    where = f"guide/{language}/{path.name}"
    match = FRONT_MATTER.match(path.read_text(encoding="utf-8-sig"))
    if match is None:
        problems.append(f"{where}: no front matter (a --- block with title and keywords)")
        return None
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as error:
        problems.append(f"{where}: front matter is not valid YAML: {error}")
        return None
    if not isinstance(meta, dict):
        problems.append(f"{where}: front matter must be fields (title: …, keywords: […])")
        return None
    found = _front_matter_problems(path.stem, meta)
    problems += [f"{where}: {problem}" for problem in found]
    if found:
        return None
    return Section(
        key=path.stem,
        language=language,
        title=str(meta["title"]).strip(),
        keywords=tuple(str(k) for k in meta.get("keywords") or ()),
        order=int(meta.get("order", 100)),
        parent=meta.get("parent"),
        sample=bool(meta.get("sample", False)),
        calculator=meta.get("calculator"),
        body=match.group(2).strip(),
    )


def _front_matter_problems(key: str, meta: dict[str, Any]) -> list[str]:
    problems = []
    if not SECTION_KEY.match(key):
        problems.append("the file name must be lower case letters, digits and _")
    if len(key) > MAX_KEY:  # it goes into a button's data, which Telegram keeps to 64 bytes
        problems.append(f"the file name must be at most {MAX_KEY} characters")
    if not isinstance(meta.get("title"), str) or not meta["title"].strip():
        problems.append("title is missing")
    keywords = meta.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str | int) for k in keywords):
        problems.append("keywords must be a list of words")
    if not isinstance(meta.get("order", 0), int) or isinstance(meta.get("order"), bool):
        problems.append("order must be a whole number")
    if meta.get("parent") is not None and not isinstance(meta["parent"], str):
        problems.append("parent must be the file name of another section")
    if not isinstance(meta.get("sample", False), bool):
        problems.append("sample must be true or false")
    if meta.get("calculator") is not None and meta["calculator"] not in CALCULATORS:
        problems.append(f"calculator must be one of {sorted(CALCULATORS)}")
    problems += [f"unknown field {name!r}" for name in sorted(set(meta) - FIELDS)]
    return problems


# -- Markdown to Telegram HTML ---------------------------------------------------------------


def render_block(block: str) -> str:
    """One paragraph, list or heading. A line break stays a line break: in a chat short lines
    read better than reflowed ones."""
    lines = []
    for line in block.splitlines():
        heading = _HEADING.match(line)
        bullet = _BULLET.match(line)
        if heading:
            lines.append(f"<b>{_inline(heading.group(1))}</b>")
        elif bullet:
            lines.append(f"• {_inline(bullet.group(1))}")
        else:
            lines.append(_inline(line.strip()))
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escapes the text, then turns **bold**, *italic*, `code` and [links](url) into tags."""
    links: list[str] = []

    def keep_link(match: re.Match[str]) -> str:
        url = quote(match.group(2), safe=":/?&=#%+@,;~.-_")
        links.append(f'<a href="{escape(url)}">{escape(match.group(1))}</a>')
        return f"\x00{len(links) - 1}\x00"

    text = _LINK.sub(keep_link, text)
    html = str(escape(text))
    html = _CODE.sub(r"<code>\1</code>", html)
    html = _BOLD.sub(r"<b>\1</b>", html)
    html = _ITALIC.sub(r"<i>\1</i>", html)
    return re.sub("\x00(\\d+)\x00", lambda m: links[int(m.group(1))], html)


def blocks_of(markdown: str) -> list[str]:
    return [b.strip("\n") for b in re.split(r"\n\s*\n", markdown) if b.strip()]


@functools.lru_cache(maxsize=512)
def _messages(markdown: str, limit: int) -> list[str]:
    return split_messages(
        _keep_headings_with_text(render_block(b) for b in blocks_of(markdown)), limit
    )


def _keep_headings_with_text(blocks: Iterable[str]) -> list[str]:
    """A heading alone at the end of one message would read as a broken-off text."""
    joined: list[str] = []
    pending = ""
    for block in blocks:
        if block.startswith("<b>") and block.endswith("</b>") and "\n" not in block:
            pending = f"{pending}\n\n{block}" if pending else block
            continue
        joined.append(f"{pending}\n{block}" if pending else block)
        pending = ""
    if pending:
        joined.append(pending)
    return joined


def split_messages(blocks: list[str], limit: int) -> list[str]:
    """Packs paragraphs into messages of at most `limit` characters, breaking only between
    paragraphs (or, for a paragraph longer than a message, between its lines)."""
    pieces: list[str] = []
    for block in blocks:
        if len(block) <= limit:
            pieces.append(block)
            continue
        pieces += _pack(block.split("\n"), limit, "\n")
    return _pack(pieces, limit, "\n\n")


def _pack(parts: list[str], limit: int, glue: str) -> list[str]:
    """A line longer than `limit` stays whole, in a message of its own: cutting it could
    cut a tag (the check asks for shorter lines; the channel splits past Telegram's limit)."""
    messages: list[str] = []
    current = ""
    for part in parts:
        if current and len(current) + len(glue) + len(part) > limit:
            messages.append(current)
            current = part
        else:
            current = f"{current}{glue}{part}" if current else part
    if current:
        messages.append(current)
    return messages


# -- content check ----------------------------------------------------------------------------


def check(catalog: Any) -> list[str]:
    """The guide's problems for `hotline content check`: front matter, every section in every
    language, parents that resolve, lines a message can hold, and the calculator's rates."""
    from content import social_insurance
    from content.guide_search import settings_problems

    guide = load_guide(catalog.folder / "guide", list(catalog.languages))
    problems = list(guide.problems) + settings_problems(guide.settings)
    reference = catalog.languages[0]
    keys = {lang: set(guide.sections.get(lang, {})) for lang in catalog.languages}
    if not keys[reference]:
        problems.append(f"guide/{reference}: no sections")
    for language in catalog.languages[1:]:
        problems += [
            f"guide/{language}: section {key!r} is missing (it is in {reference})"
            for key in sorted(keys[reference] - keys[language])
        ]
        problems += [
            f"guide/{language}: section {key!r} is not in {reference}"
            for key in sorted(keys[language] - keys[reference])
        ]
    for language in catalog.languages:
        for section in guide.sections.get(language, {}).values():
            where = f"guide/{language}/{section.key}.md"
            problems += _tree_problems(guide, section, where)
            if not section.keywords:
                problems.append(f"{where}: no keywords (questions find a section by them)")
            if not section.body:
                problems.append(f"{where}: the text is empty")
            limit = guide.message_chars[language]
            if any(len(render_block(line)) > limit for line in section.body.splitlines()):
                problems.append(f"{where}: a line is longer than {limit} characters; break it")
    problems += _findable(catalog)
    problems += social_insurance.check(catalog)
    return problems


def _findable(catalog: Any) -> list[str]:
    """Each section is found by its own title. Building the search here also loads jieba's
    dictionary while `hotline run` starts, rather than on the first worker's question."""
    from content.guide_search import search_of

    languages = tuple(catalog.languages)
    search = search_of(catalog.folder, languages)
    problems = []
    for language in languages:
        for section in guide_of(catalog.folder, languages).sections.get(language, {}).values():
            if section.key not in [hit.key for hit in search.search(section.title)]:
                problems.append(
                    f"guide/{language}/{section.key}.md: a question made of its title does not"
                    " find it; give it keywords of its own"
                )
    return problems


def _tree_problems(guide: Guide, section: Section, where: str) -> list[str]:
    """The tree has two levels: a parent is a top-level section of the same language."""
    if section.parent is None:
        return []
    parent = guide.section(section.language, section.parent)
    if parent is None:
        return [f"{where}: parent {section.parent!r} is not a section"]
    if parent.parent is not None:
        return [f"{where}: parent {section.parent!r} is itself under another section"]
    return []
