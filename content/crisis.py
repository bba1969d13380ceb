"""Crisis words: a message that mentions self-harm, suicide or violence, at whatever step the
conversation is, must get the emergency numbers at once, and staff an urgent flag.

The words are data in content/crisis.yaml, which a coordinator adapts. This module makes finding
them robust to how people really type (any case, full-width letters, invisible characters, a
space or dash slipped between Chinese characters) without making "skill" an alarm for "kill".
It runs on every message, so all the words are compiled into one regular expression at load.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# Characters that show nothing but would split a word: soft hyphen, zero-width spaces and
# joiners, direction marks, invisible operators, the byte-order mark.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_APOSTROPHES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'"})
# A Latin-script word is whole when no Latin letter or digit touches it; a Chinese character
# next to it does not count, since "我想kill myself" is how people mix languages.
_LATIN = "0-9a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
# Between the words of an English phrase: any spaces or dashes, or none ("self harm", "selfharm").
_LATIN_GAP = r"[\s\-_\u2010-\u2015]*"
_LATIN_GAP_IN_LIST = re.compile(r"[\s\-_\u2010-\u2015]+")
# Between Chinese characters: a few spaces, punctuation or symbols ("自-杀", "想 死", "自，杀").
_CHINESE_GAP = r"[\W_]{0,3}"


class CrisisWords:
    def __init__(self, words: Iterable[str]) -> None:
        """`words` as a coordinator wrote them; find reports them in that spelling."""
        self.words: list[str] = []
        seen: set[str] = set()
        for word in words:
            if not isinstance(word, str) or not any(char.isalnum() for char in _normalise(word)):
                raise ValueError(f"{word!r} is not a word or phrase")
            if _normalise(word) not in seen:
                seen.add(_normalise(word))
                self.words.append(word)
        if not self.words:
            raise ValueError("no crisis words: list at least one")
        # Longest first, so where two listed words start at the same place the longer is found.
        order = sorted(range(len(self.words)), key=lambda i: -len(_normalise(self.words[i])))
        alternatives = "|".join(f"(?P<w{i}>{_pattern(self.words[i])})" for i in order)
        # Inside a lookahead every position is tried, so overlapping words are all found:
        # "被打死" holds both 被打 and 打死.
        self._regex = re.compile(f"(?=(?:{alternatives}))")

    @classmethod
    def from_file(cls, path: str | Path) -> CrisisWords:
        path = Path(path)
        try:
            with path.open(encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ValueError(f"{path} is not valid YAML: {error}") from None
        try:
            return cls(_listed_words(data))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    def find(self, text: str) -> list[str]:
        """The listed words in `text`, in the order they first appear, each once."""
        found: dict[str, None] = {}
        for match in self._regex.finditer(_normalise(text)):
            found.setdefault(self.words[int(str(match.lastgroup)[1:])], None)
        return list(found)


def _listed_words(data: Any) -> list[str]:
    languages = data.get("languages") if isinstance(data, Mapping) else None
    if not isinstance(languages, Mapping):
        raise ValueError("expected `languages:` with a list of words for each language")
    words: list[str] = []
    for language, listed in languages.items():
        if listed is None:
            continue
        if isinstance(listed, str) or not isinstance(listed, list):
            raise ValueError(f"languages.{language}: expected a list of words")
        words += listed
    return words


def _normalise(text: str) -> str:
    """The same form for the listed words and for every message: half-width, case-folded,
    without invisible characters, with one kind of apostrophe."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _INVISIBLE.sub("", text).translate(_APOSTROPHES)


def _pattern(word: str) -> str:
    word = _normalise(word).strip()
    if all(char < "\u0250" for char in word):  # Latin script: whole words only
        parts = [re.escape(part) for part in _LATIN_GAP_IN_LIST.split(word) if part]
        return f"(?<![{_LATIN}]){_LATIN_GAP.join(parts)}(?![{_LATIN}])"
    # Chinese (or another script without spaces between words): anywhere in the text.
    characters = [re.escape(char) for char in word if char.isalnum()]
    return _CHINESE_GAP.join(characters)
