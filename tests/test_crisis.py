"""Crisis words: found in either language, however they are typed, and not inside other words."""

from __future__ import annotations

from pathlib import Path

import pytest

from content.catalog import PACKAGED
from content.crisis import CrisisWords


@pytest.fixture(scope="module")
def crisis() -> CrisisWords:
    return CrisisWords.from_file(PACKAGED / "crisis.yaml")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("老板欠了三个月工资，我真的不想活了", ["不想活"]),
        ("他说要把我打死", ["打死"]),
        ("我昨天被打死了一样疼", ["被打", "打死"]),  # overlapping words are both found
        ("I don't want to live, I want to die", ["want to die"]),
        ("My boss beat me yesterday", ["beat me"]),
        ("I was beaten by the foreman", ["beaten"]),
    ],
)
def test_words_of_either_language_are_found(
    crisis: CrisisWords, text: str, found: list[str]
) -> None:
    assert crisis.find(text) == found


def test_every_word_is_looked_for_whatever_the_language(crisis: CrisisWords) -> None:
    assert crisis.find("工资没发 I want to kill myself 我想死") == ["kill myself", "想死"]
    assert crisis.find("我想kill myself") == ["kill myself"]  # no space next to Chinese
    assert crisis.find("My roommate says 家暴 again") == ["家暴"]


def test_each_word_is_reported_once_as_listed(crisis: CrisisWords) -> None:
    assert crisis.find("Suicide. SUICIDE. suicide") == ["suicide"]
    assert CrisisWords(["Self-Harm"]).find("thinking of self harm") == ["Self-Harm"]


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("Kill myself!", "kill myself"),
        ("kill  myself", "kill myself"),
        ("KILL\tMYSELF", "kill myself"),
        ("I'll kill\nmyself", "kill myself"),
        ("ｋｉｌｌ　ｍｙｓｅｌｆ", "kill myself"),  # full-width letters and space
        ("sui\u200bcide", "suicide"),  # zero-width space
        ("self harm", "self-harm"),
        ("selfharm", "self-harm"),
        ("自-杀", "自杀"),
        ("想 死", "想死"),
        ("想、死", "想死"),
        ("自\u200b杀", "自杀"),
        ("自\u200d杀", "自杀"),  # zero-width joiner
        ("活 不 下 去", "活不下去"),
    ],
)
def test_matching_survives_how_people_type(crisis: CrisisWords, text: str, word: str) -> None:
    assert crisis.find(text) == [word]


@pytest.mark.parametrize(
    "text",
    [
        "I want to skill myself up as a welder",
        "that game is a killer app",
        "we picked grapes all summer",
        "the rapeseed harvest is late",
        "he hit meters of cable with the truck",
        "我想问一下工资的事情",
        "老板说下个月发",
    ],
)
def test_no_alarm_inside_other_words(crisis: CrisisWords, text: str) -> None:
    assert crisis.find(text) == []


def test_an_empty_text_has_no_words(crisis: CrisisWords) -> None:
    assert crisis.find("") == []
    assert crisis.find("   \u200b ") == []


def test_a_long_text_is_searched_to_the_end(crisis: CrisisWords) -> None:
    text = ("工资拖欠了很久 the boss never pays on time, ") * 200
    text = text[:4995] + " 我想自杀"
    assert len(text) == 5000
    assert crisis.find(text) == ["自杀"]
    assert crisis.find(text[:4995]) == []


def test_a_word_without_letters_is_refused() -> None:
    with pytest.raises(ValueError, match="is not a word or phrase"):
        CrisisWords(["自杀", "。。"])
    with pytest.raises(ValueError, match="no crisis words"):
        CrisisWords([])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("words: [suicide]\n", "expected `languages:`"),
        ("languages:\n  en: suicide\n", "languages.en: expected a list of words"),
        ("languages:\n  en: [suicide, 42]\n", "42 is not a word or phrase"),
        ("languages: [unclosed\n", "is not valid YAML"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "crisis.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message.replace("[", r"\[")) as error:
        CrisisWords.from_file(path)
    assert str(path) in str(error.value)
