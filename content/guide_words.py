"""The guide's own word list for jieba, instead of jieba's whole dictionary.

jieba's dictionary holds about 350,000 words; loaded, it takes some 60 MB of every hotline
process (bench/broadcast.py measured the peak). The guide search needs far fewer: every word
of that dictionary that occurs in the guide's texts, so the texts are cut as before, and the
commonest others, so a question's other words are cut sensibly too. The list keeps jieba's
total count, so the same cut wins as with the whole dictionary.

`hotline content words` writes it to content/guide/words.txt from the guide's texts;
`hotline content check` says when the guide changed since. Without a current list the search
uses jieba's whole dictionary, and says so in the log.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import jieba

log = logging.getLogger(__name__)
WORDS_FILE = Path("guide") / "words.txt"  # under the content folder
COMMON_WORDS = 20_000  # the most frequent words of the whole dictionary, kept whatever the texts
LONGEST_WORD = 16  # characters; jieba's dictionary has hardly any longer
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

jieba.setLogLevel(logging.WARNING)


def digest(texts: Iterable[str]) -> str:
    """What the list was made from: the texts (as the search cuts them) and jieba's version."""
    body = "\n".join(sorted(set(texts))) + f"\njieba {jieba.__version__}"
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def tokenizer_for(folder: Path, texts: list[str]) -> jieba.Tokenizer:
    """jieba with the guide's list when it is current, else with the whole dictionary."""
    path = folder / WORDS_FILE
    tokenizer = jieba.Tokenizer()
    tokenizer.tmp_dir = tempfile.gettempdir()  # its cache never goes into the package
    current = _read(path, digest(texts))
    if current is None:
        log.warning(
            "%s is missing or older than the guide: the search loads jieba's whole dictionary"
            " (about 60 MB more); `hotline content words` writes a current one",
            path,
        )
        tokenizer.initialize()
        return tokenizer
    lines, total = current
    tokenizer.FREQ, _ = tokenizer.gen_pfdict(io.BytesIO(lines))
    tokenizer.total = total
    tokenizer.initialized = True
    return tokenizer


def is_current(folder: Path, texts: list[str]) -> bool:
    return _read(folder / WORDS_FILE, digest(texts)) is not None


def _read(path: Path, wanted: str) -> tuple[bytes, int] | None:
    """The list's words (jieba's format) and total, when it was made from these texts."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header, _, lines = data.partition(b"\n")
    parts = header.decode(errors="replace").split()
    if len(parts) != 4 or parts[0] != "digest" or parts[1] != wanted or parts[2] != "total":
        return None
    return lines, int(parts[3])


def write_words(folder: Path, texts: list[str]) -> int:
    """Writes the list for these texts; returns how many words it holds."""
    whole = jieba.Tokenizer()
    whole.tmp_dir = tempfile.gettempdir()
    whole.initialize()
    words = {word: freq for word, freq in whole.FREQ.items() if freq}
    present = set()
    for text in texts:
        for run in _HAN.findall(text):
            for start in range(len(run)):
                for end in range(start + 1, min(len(run), start + LONGEST_WORD) + 1):
                    present.add(run[start:end])
    kept = {word for word in present if word in words}
    kept.update(sorted(words, key=lambda w: -words[w])[:COMMON_WORDS])
    lines = [f"{word} {words[word]}" for word in sorted(kept)]
    header = f"digest {digest(texts)} total {whole.total}"
    (folder / WORDS_FILE).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return len(kept)
