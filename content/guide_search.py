"""Finds the guide sections that answer a free-text question, the way workers type them: short,
without punctuation, with typos, in traditional or simplified characters, mixing Chinese and
English.

Chinese is cut into words by jieba (its dictionary plus the guide's keywords, loaded once per
process), not matched as substrings, so "资料" does not find 工资 through a shared character.
A keyword is indexed whole and in its parts, so "扣我身份证" still meets the keyword 扣身份证.
English words are lower-cased and stemmed, and neighbouring pairs count too ("residence
permit"). A word no section has is read as the nearest word one has, by edit distance
(rapidfuzz), so "insurence" and "scool" still find their section.

Sections are ranked by BM25 over title, keywords and text, the keywords weighing most: they
are what a centre writes to steer questions. A section's Chinese and English words are
indexed apart and the two scores add up, so "办bank卡" works and an English page that names
居住证 is found by it. A section is offered only when the question shares a word with its
title or keywords, or its text alone scores high (content/guide/search.yaml: min_score).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jieba
import zhconv
from rapidfuzz import fuzz, process

from content.guide import Guide, guide_of
from content.guide_words import tokenizer_for

QUESTION_CHARS = 300  # a question is short; past this is a story, whose start says enough
TITLE_WEIGHT, KEYWORD_WEIGHT, BODY_WEIGHT = 3.0, 4.0, 1.0
PART_WEIGHT = 1.0  # a part or a character of a Chinese keyword
CHARACTER_WEIGHT = 0.5  # a question's character, when its word is in no section
SURE_SIMILARITY = 85  # a mistyped word this alike to a known one may offer a section alone
K1, B = 1.2, 0.5  # BM25: how fast repeats stop counting; how much a long text is discounted
CHINESE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
LATIN = re.compile(r"[a-z0-9]+")
PAIR = "_"  # joins two neighbouring English words into one term
_APOSTROPHES = re.compile(r"['\u2019\u2018\u02bc]")

jieba.setLogLevel(logging.WARNING)  # it announces its dictionary at INFO on every start


@dataclass(frozen=True)
class Hit:
    key: str
    score: float


class _Index:
    """BM25 over one script's words in all sections. `strong` holds each section's words from
    its title and keywords: a section is offered only for a question that shares one of them
    with it, or matches its text very well, so a stray word of the text does not answer."""

    def __init__(self, documents: dict[str, Counter[str]], strong: dict[str, set[str]]) -> None:
        self.documents = documents
        self.strong = strong
        self.lengths = {key: sum(terms.values()) for key, terms in documents.items()}
        self.average = sum(self.lengths.values()) / max(len(documents), 1) or 1.0
        frequency = Counter(term for terms in documents.values() for term in terms)
        count = len(documents)
        self.idf = {
            term: math.log(1 + (count - seen + 0.5) / (seen + 0.5))
            for term, seen in frequency.items()
        }
        self.vocabulary = [term for term in self.idf if PAIR not in term]  # typos: words only

    def score(
        self,
        terms: dict[str, float],
        unsure: set[str],
        scores: dict[str, float],
        anchored: set[str],
    ) -> None:
        for key, document in self.documents.items():
            norm = K1 * (1 - B + B * self.lengths[key] / self.average)
            total = 0.0
            for term, weight in terms.items():
                tf = document.get(term)
                if tf:
                    total += weight * self.idf[term] * tf * (K1 + 1) / (tf + norm)
                    if term in self.strong[key] and term not in unsure:
                        anchored.add(key)
            if total:
                scores[key] = scores.get(key, 0.0) + total


def corpus_texts(guide: Guide) -> list[str]:
    """Every text the search cuts into words, as it cuts them (guide/words.txt is made from
    these)."""
    sections = [s for by_key in guide.sections.values() for s in by_key.values()]
    return [
        _simplified(text)
        for section in sections
        for text in (section.title, *section.keywords, section.body)
    ]


class GuideSearch:
    def __init__(self, guide: Guide, folder: Path | None = None) -> None:
        settings = guide.settings
        self.stop_words = {
            lang: {_simplified(str(w)) for w in settings.get("stop_words", {}).get(lang, [])}
            for lang in ("zh", "en")
        }
        self.irregular = {
            str(k).lower(): str(v).lower() for k, v in (settings.get("irregular") or {}).items()
        }
        self.min_score = float(settings.get("min_score", 4.0))
        self.relative = float(settings.get("relative_score", 0.3))
        self.fuzzy_cutoff = float(settings.get("fuzzy_cutoff", 80))
        self.cues = {
            lang: [_cue(str(c), lang) for c in settings.get("grievance", {}).get(lang, [])]
            for lang in ("zh", "en")
        }
        if folder is None:  # a guide made in a test: jieba's whole dictionary
            self.tokenizer = jieba.Tokenizer()
            self.tokenizer.tmp_dir = tempfile.gettempdir()  # its cache, not in the package
            self.tokenizer.initialize()
        else:
            self.tokenizer = tokenizer_for(folder, corpus_texts(guide))
        sections = [s for by_key in guide.sections.values() for s in by_key.values()]
        # A keyword's parts, as jieba cuts it before it learns the keyword as one word, and its
        # characters: "扣身份证" is then found by "公司扣我身份证" too.
        parts: dict[str, list[str]] = {}
        for keyword in {_simplified(k) for section in sections for k in section.keywords}:
            for word in CHINESE.findall(keyword):
                parts[word] = [*self.tokenizer.cut(word, HMM=False), *word]
        for word in parts:
            if 2 <= len(word) <= 5:
                self.tokenizer.add_word(word, freq=2000)  # a centre's word stays whole
        documents: dict[str, dict[str, Counter[str]]] = {"zh": {}, "en": {}}
        strong: dict[str, dict[str, set[str]]] = {"zh": {}, "en": {}}
        for section in sections:
            for script in ("zh", "en"):
                counts = documents[script].setdefault(section.key, Counter())
                anchors = strong[script].setdefault(section.key, set())
                for term in self._terms(section.title, script):
                    counts[term] += TITLE_WEIGHT
                    anchors.add(term)
                for keyword in section.keywords:
                    terms = self._terms(keyword, script)
                    # A keyword of several English words answers only as a whole: "buy
                    # insurance" is no reason to offer the section for "buy a phone".
                    whole = [t for t in terms if PAIR in t] or terms
                    anchors.update(whole)
                    for term in terms:
                        counts[term] += KEYWORD_WEIGHT
                        for part in parts.get(term, ()):
                            if part not in self.stop_words["zh"]:
                                counts[part] += PART_WEIGHT
                for term in self._terms(section.body, script):
                    counts[term] += BODY_WEIGHT
        self.indexes = {script: _Index(documents[script], strong[script]) for script in documents}

    def search(self, question: str, *, limit: int = 3) -> list[Hit]:
        """The best sections, best first; none when nothing fits well enough."""
        text = _simplified(question[:QUESTION_CHARS])
        scores: dict[str, float] = {}
        anchored: set[str] = set()
        for script, index in self.indexes.items():
            terms, unsure = self._query_terms(text, script, index)
            if terms:
                index.score(terms, unsure, scores, anchored)
        fitting = [
            (key, score)
            for key, score in scores.items()
            if key in anchored or score >= self.min_score
        ]
        ranked = sorted(fitting, key=lambda item: -item[1])
        if not ranked:
            return []
        floor = ranked[0][1] * self.relative
        return [Hit(key, score) for key, score in ranked[:limit] if score >= floor]

    def is_grievance(self, question: str) -> bool:
        """Whether the question tells of something done to the worker (wages withheld, a
        dismissal, an injury): then a complaint is offered beside the guide."""
        text = _simplified(question[:QUESTION_CHARS])
        chinese = re.sub(r"\s+", "", text)
        english = f" {' '.join(LATIN.findall(_APOSTROPHES.sub('', text)))} "
        return any(cue in chinese for cue in self.cues["zh"]) or any(
            cue in english for cue in self.cues["en"]
        )

    def _query_terms(
        self, text: str, script: str, index: _Index
    ) -> tuple[dict[str, float], set[str]]:
        """The question's words, each weighing 1; a word no section has counts as its nearest
        known word, weighing as much as they are alike, or else, in Chinese, as its
        characters. Also the near words too unlike the typed ones to offer a section alone
        ("whats" is 80 % "wechat")."""
        terms: dict[str, float] = {}
        unsure: set[str] = set()
        for term in dict.fromkeys(self._terms(text, script)):
            if term in index.idf:
                terms[term] = max(terms.get(term, 0.0), 1.0)
                continue
            found = None
            if PAIR not in term and len(term) >= (4 if script == "en" else 3):
                found = process.extractOne(  # a short word cannot tell a typo from another
                    term, index.vocabulary, scorer=fuzz.ratio, score_cutoff=self._cutoff(script)
                )
            if found is not None:
                near, similarity, _ = found
                terms[near] = max(terms.get(near, 0.0), similarity / 100)
                if similarity < SURE_SIMILARITY:
                    unsure.add(near)
            elif script == "zh":  # a Chinese word no section has: its characters ("牙疼")
                for char in term:
                    if char in index.idf and char not in self.stop_words["zh"]:
                        terms[char] = max(terms.get(char, 0.0), CHARACTER_WEIGHT)
        return terms, unsure - {t for t, w in terms.items() if w == 1.0}

    def _cutoff(self, script: str) -> float:
        # One wrong character in a three-character Chinese word is a 67 % match.
        return self.fuzzy_cutoff if script == "en" else 66.0

    def _terms(self, text: str, script: str) -> list[str]:
        text = _simplified(text)
        if script == "zh":
            words = []
            for run in CHINESE.findall(text):
                words += self.tokenizer.cut_for_search(run)
            return [w for w in words if w.strip() and w not in self.stop_words["zh"]]
        words = LATIN.findall(_APOSTROPHES.sub("", text))
        stems = [stem(self.irregular.get(w, w)) for w in words if w not in self.stop_words["en"]]
        # Pairs of neighbouring words too: "residence permit" says more than either word.
        return stems + [f"{a}{PAIR}{b}" for a, b in zip(stems, stems[1:], strict=False)]


def _simplified(text: str) -> str:
    """Full-width to half-width, lower case, traditional characters to simplified."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return zhconv.convert(text, "zh-cn") if CHINESE.search(text) else text


def _cue(cue: str, language: str) -> str:
    text = _simplified(cue)
    if language == "zh":
        return re.sub(r"\s+", "", text)
    return f" {' '.join(LATIN.findall(_APOSTROPHES.sub('', text)))} "


def stem(word: str) -> str:
    """A plain English stemmer: "buses", "bus"; "paying", "pays", "pay"; "housing", "house"
    all meet. It need not be pretty, only the same for the question and the guide."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes", "zes")) or (
        word.endswith("ses") and len(word) > 4
    ):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # "getting" → "get"
            break
    if word.endswith("y") and len(word) > 3:
        word = word[:-1] + "i"
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


@functools.lru_cache(maxsize=2)  # each holds a jieba dictionary of its own (tens of MB)
def search_of(folder: Path, languages: tuple[str, ...]) -> GuideSearch:
    """One index per content folder: jieba's dictionary is read once, not per question."""
    return GuideSearch(guide_of(folder, languages), folder)


def settings_problems(settings: dict[str, Any]) -> list[str]:
    """What `hotline content check` says about guide/search.yaml."""
    problems = []
    for name in ("stop_words", "grievance"):
        for language in ("zh", "en"):
            words = (settings.get(name) or {}).get(language)
            if not isinstance(words, list) or not words:
                problems.append(f"guide/search.yaml: {name}.{language} must be a list of words")
    for name in ("min_score", "relative_score", "fuzzy_cutoff"):
        if name in settings and not isinstance(settings[name], int | float):
            problems.append(f"guide/search.yaml: {name} must be a number")
    return problems
