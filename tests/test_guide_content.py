"""The city guide's content: Markdown shown as Telegram HTML and split between paragraphs, the
social-insurance calculator's arithmetic and wage reading, and what `hotline content check`
says about the guide and the rates."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from content.catalog import PACKAGED, Catalog
from content.guide import TELEGRAM_LIMIT, blocks_of, guide_of, render_block, split_messages
from content.social_insurance import calculate, load_rates, rates_of, read_wage

MAX = Decimal(1000000)


def test_markdown_becomes_telegram_html() -> None:
    assert render_block("# Bus") == "<b>Bus</b>"
    assert render_block("- one\n* two") == "• one\n• two"
    assert render_block("call **12333** now") == "call <b>12333</b> now"
    assert render_block("a *small* note") == "a <i>small</i> note"
    link = render_block("[the bureau](https://example.org/a?b=1&c=2)")
    assert link == '<a href="https://example.org/a?b=1&amp;c=2">the bureau</a>'
    # What the writer typed as text stays text: Telegram would refuse a stray tag.
    assert render_block("5 < 6 & <script>") == "5 &lt; 6 &amp; &lt;script&gt;"
    assert render_block("[x](javascript:alert(1))") == "[x](javascript:alert(1))"


def test_long_text_is_split_between_paragraphs() -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 60 for n in range(10)]
    messages = split_messages(paragraphs, 700)
    assert len(messages) > 1
    assert all(len(m) <= 700 for m in messages)
    assert "\n\n".join(messages) == "\n\n".join(paragraphs)  # nothing lost, nothing cut
    # A paragraph longer than a message is split between its lines.
    long_block = "\n".join("line " * 30 for _ in range(20))
    assert all(len(m) <= 400 for m in split_messages([long_block], 400))


def test_every_section_fits_in_messages_and_headings_stay_with_their_text() -> None:
    catalog = Catalog()
    guide = guide_of(catalog.folder, tuple(catalog.languages))
    assert not guide.problems
    for language in catalog.languages:
        limit = guide.message_chars[language]
        for section in guide.sections[language].values():
            messages = guide.messages(section)
            assert messages and all(len(m) <= limit < TELEGRAM_LIMIT for m in messages)
            assert not any(m.rstrip().endswith("</b>") and "\n" not in m for m in messages)
    assert len(guide.messages(guide.section("en", "rights_wages"))) >= 2
    assert len(guide.messages(guide.section("zh", "rights_wages"))) >= 2
    assert blocks_of("a\n\n\nb\n \nc") == ["a", "b", "c"]


def test_the_tree_has_rights_at_work_with_its_topics() -> None:
    catalog = Catalog()
    guide = guide_of(catalog.folder, tuple(catalog.languages))
    for language in catalog.languages:
        children = [s.key for s in guide.children(language, "rights")]
        assert children == [
            "rights_contract",
            "rights_wages",
            "rights_injury",
            "rights_arbitration",
        ]
        top = [s.key for s in guide.children(language, None)]
        assert top[0] == "getting_around" and "rights" in top and "emergency" in top


@pytest.mark.parametrize(
    ("typed", "wage", "reinterpreted"),
    [
        ("5000", "5000", False),
        ("5,000", "5000", False),
        ("5000元", "5000", False),
        ("¥4800.50", "4800.50", False),
        ("５０００", "5000", True),  # full-width digits
        ("5千", "5000", True),
        ("5.5k", "5500", True),
        ("1万", "10000", True),
    ],
)
def test_wages_as_people_write_them(typed: str, wage: str, reinterpreted: bool) -> None:
    reading = read_wage(typed, maximum=MAX)
    assert reading.wage == Decimal(wage)
    assert reading.reinterpreted is reinterpreted


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("abc", "not_a_number"),
        ("-1", "negative"),
        ("1e9", "not_a_number"),
        ("0", "zero"),
        ("2000000", "too_large"),
        ("5000.123", "not_a_number"),
        ("", "not_a_number"),
    ],
)
def test_wages_that_are_refused(typed: str, problem: str) -> None:
    reading = read_wage(typed, maximum=MAX)
    assert reading.wage is None and reading.problem == problem


def test_contributions_are_rounded_to_the_fen_and_add_up() -> None:
    rates = rates_of(PACKAGED)
    result = calculate(rates, Decimal("8000"))
    by_scheme = {line.scheme.key: (line.worker, line.employer) for line in result.lines}
    assert by_scheme["pension"] == (Decimal("640.00"), Decimal("1440.00"))
    assert by_scheme["medical"] == (Decimal("160.00"), Decimal("640.00"))
    assert by_scheme["unemployment"] == (Decimal("80.00"), Decimal("160.00"))
    assert result.worker_total == Decimal("880.00")
    assert result.employer_total == sum(e for _, e in by_scheme.values())
    assert result.clamped is None
    odd = calculate(rates, Decimal("5555.55"))  # 8 % is 444.444 → 444.44; 2 % 111.111 → 111.11
    assert odd.lines[0].worker == Decimal("444.44") and odd.lines[1].worker == Decimal("111.11")


def test_the_base_is_clamped_to_the_floor_and_the_ceiling() -> None:
    rates = rates_of(PACKAGED)
    low = calculate(rates, Decimal("2000"))
    assert low.clamped == "floor" and low.base == rates.floor
    high = calculate(rates, Decimal("90000"))
    assert high.clamped == "ceiling" and high.base == rates.ceiling
    assert high.lines[0].worker == (rates.ceiling * 8 / 100).quantize(Decimal("0.01"))


@pytest.fixture
def content(tmp_path: Path) -> Path:
    """A copy of content/ to break."""
    folder = tmp_path / "content"
    shutil.copytree(PACKAGED, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return folder


def guide_problems(folder: Path) -> list[str]:
    return [p for p in Catalog(folder).check() if "guide" in p or "social_insurance" in p]


def test_the_shipped_guide_passes_the_check() -> None:
    assert guide_problems(PACKAGED) == []


def test_the_check_finds_what_is_wrong_with_sections(content: Path) -> None:
    (content / "guide" / "en" / "school.md").unlink()
    (content / "guide" / "zh" / "housing.md").write_text("no front matter", encoding="utf-8")
    injury = content / "guide" / "en" / "rights_injury.md"
    injury.write_text(
        injury.read_text(encoding="utf-8").replace("parent: rights", "parent: rites"),
        encoding="utf-8",
    )
    health = content / "guide" / "en" / "health.md"
    health.write_text(health.read_text(encoding="utf-8") + "\nA line " + "x" * 2000, "utf-8")
    (content / "guide" / "zh" / "extra.md").write_text(
        "---\ntitle: 多余\nkeywords: [a]\ncolour: red\n---\n正文", encoding="utf-8"
    )
    problems = "\n".join(guide_problems(content))
    assert "guide/en: section 'school' is missing" in problems
    assert "guide/zh/housing.md: no front matter" in problems
    assert "guide/en/rights_injury.md: parent 'rites' is not a section" in problems
    assert "guide/zh/extra.md: unknown field 'colour'" in problems
    assert "guide/en/health.md: a line is longer than 1200 characters; break it" in problems


def test_the_check_finds_rates_that_do_not_add_up(content: Path) -> None:
    path = content / "social_insurance.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("floor: 4494", "floor: 30000").replace("employer: 18", "employer: 118")
    text = text.replace("valid_to: 2027-06-30", "valid_to: 2026-01-01")
    path.write_text(text, encoding="utf-8")
    rates, problems = load_rates(path)
    assert rates is None
    joined = "\n".join(problems)
    assert "valid_from must be before valid_to" in joined
    assert "base.floor must be lower than base.ceiling" in joined
    assert "scheme 'pension': employer must be a percentage from 0 to 100" in joined
    assert any("social_insurance.yaml" in p for p in guide_problems(content))


def test_the_check_wants_a_label_for_every_scheme(content: Path) -> None:
    path = content / "social_insurance.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text + "  - key: maternity\n    worker: 0\n    employer: 0.8\n", encoding="utf-8"
    )
    problems = guide_problems(content)
    assert "zh: no label guide.calc.schemes.maternity" in problems
    assert "en: no label guide.calc.schemes.maternity" in problems


def test_the_guides_word_list_is_made_from_its_texts() -> None:
    """content/guide/words.txt is current: the search does not load jieba's whole
    dictionary (`hotline content words` rewrites it after the guide changes)."""
    from content.guide_search import corpus_texts
    from content.guide_words import is_current

    catalog = Catalog()
    texts = corpus_texts(guide_of(catalog.folder, tuple(catalog.languages)))
    assert is_current(catalog.folder, texts), "run: hotline content words"
