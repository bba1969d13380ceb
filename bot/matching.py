"""Reads a typed answer as one of the offered choices: by number, by its words, or by a part
of them. People answer "2", "２", "二", "Unpaid wages", "工资" or press the button: all work."""

from __future__ import annotations

import unicodedata

from handlers.messages import Choice

CHINESE_NUMERALS = {
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}


def normalise(text: str) -> str:
    """Lower case, half-width, without the symbols and punctuation around the words
    ("✔ Done" and "done!" are the same answer)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    start, end = 0, len(text)
    while start < end and _is_decoration(text[start]):
        start += 1
    while end > start and _is_decoration(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_decoration(char: str) -> bool:
    return char.isspace() or unicodedata.category(char)[0] in "PSZ"


def match_choice(text: str, choices: list[Choice], *, exact: bool = False) -> Choice | None:
    """`exact` for typed questions: "Back Office Ltd" is an employer's name, not "back"."""
    typed = normalise(text)
    if not typed:
        return None
    if exact:
        return next((c for c in choices if typed in _words(c)), None)
    numbered = [c for c in choices if c.numbered]
    number = _as_number(typed)
    if number is not None:
        return numbered[number - 1] if 1 <= number <= len(numbered) else None
    exact = [c for c in choices if typed in _words(c)]
    if exact:
        return exact[0]
    if len(typed) < 2:
        return None
    partial = [c for c in choices if any(typed in word or word in typed for word in _words(c))]
    return partial[0] if len(partial) == 1 else None


def _as_number(typed: str) -> int | None:
    head = typed.split(".")[0].split(" ")[0] if typed[0].isdigit() else typed
    if head.isdigit():
        return int(head) if len(head) <= 3 else None
    return CHINESE_NUMERALS.get(typed)


def _words(choice: Choice) -> set[str]:
    """The label and its translations, and each part of one that offers alternatives
    ("投诉 / 反映问题" is answered by "投诉")."""
    words = set()
    for word in (choice.label, *choice.words):
        words.add(normalise(word))
        if "/" in word:
            words.update(normalise(part) for part in word.split("/"))
    words.discard("")
    return words
