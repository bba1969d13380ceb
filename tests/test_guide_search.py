"""City guide search on the question set in tests/guide_questions.yaml (quality only: the time
a question takes is bench/guide_search.py's business), and the questions it must survive."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from content.catalog import PACKAGED
from content.guide_search import GuideSearch, search_of, stem

QUESTIONS = yaml.safe_load(
    (Path(__file__).parent / "guide_questions.yaml").read_text(encoding="utf-8")
)


@pytest.fixture(scope="module")
def search() -> GuideSearch:
    return search_of(PACKAGED, ("zh", "en"))


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_right_section_is_in_the_first_three(search: GuideSearch, language: str) -> None:
    questions = QUESTIONS[language]
    assert len(questions) >= 40
    missed = [
        (question, expected)
        for question, expected in questions
        if expected not in [hit.key for hit in search.search(str(question))]
    ]
    assert len(missed) <= 0.03 * len(questions), missed


@pytest.mark.parametrize(
    ("question", "section"),
    [
        ("銀行卡丟了怎麼辦", "bank_payment"),  # traditional characters
        ("孩子上學報名", "school"),
        ("办bank卡", "bank_payment"),  # mixed script
        ("ＢＵＳ", "getting_around"),  # full-width letters
        ("residense permitt", "residence_permit"),  # typos
        ("scool for my son", "school"),
        ("办居住正", "residence_permit"),  # a wrong character
    ],
)
def test_how_workers_really_type(search: GuideSearch, question: str, section: str) -> None:
    assert section in [hit.key for hit in search.search(question)]


@pytest.mark.parametrize(
    "question",
    ["😀😀😀🙏", "？？？！！！……", "...!!!", "   ", "🇨🇳"],
)
def test_no_words_find_nothing(search: GuideSearch, question: str) -> None:
    assert search.search(question) == []
    assert not search.is_grievance(question)


def test_off_topic_questions_mostly_find_nothing(search: GuideSearch) -> None:
    for language in ("zh", "en"):
        unanswered = [q for q in QUESTIONS["nothing"][language] if not search.search(q)]
        assert len(unanswered) >= len(QUESTIONS["nothing"][language]) / 2, language


def test_a_question_of_four_thousand_characters(search: GuideSearch) -> None:
    """Read as far as a question goes; the rest of a pasted story does not slow it down."""
    story = "老板三个月不给工资，" + "我每天都去工厂上班，" * 400
    assert len(story) >= 4000
    keys = [hit.key for hit in search.search(story)]
    assert "rights_wages" in keys
    assert search.is_grievance(story)
    assert search.search("x" * 4000) == []


@pytest.mark.parametrize(
    ("question", "grievance"),
    [
        ("老板不给工资", True),
        ("公司拖欠我两个月工资", True),
        ("我被开除了", True),
        ("my boss didn't pay me", True),
        ("my boss didnt pay me", True),
        ("I was fired yesterday", True),
        ("got hurt at work", True),
        ("怎么办银行卡", False),
        ("孩子怎么上学", False),
        ("how do I pay for the bus", False),
        ("overtime pay how much", False),
    ],
)
def test_grievances_are_told_apart(search: GuideSearch, question: str, grievance: bool) -> None:
    assert search.is_grievance(question) is grievance


def test_stemming_meets_the_forms_of_a_word() -> None:
    assert stem("buses") == stem("bus")
    assert stem("paying") == stem("pays") == stem("pay")
    assert stem("housing") == stem("house") == stem("houses")
    assert stem("injuries") == stem("injury")
    assert stem("getting") == stem("get")
    assert stem("12333") == "12333"
