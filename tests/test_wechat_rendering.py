"""Replies as WeChat shows them: plain text from the catalogue's HTML, choices as tappable
bizmsgmenu links and typed words, and pieces within WeChat's 2048 UTF-8 bytes.

No server and no database: the catalogue is loaded once, the rest is string work.
"""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.channels.wechat.rendering import (
    TEXT_LIMIT_BYTES,
    join_turn,
    plain_text,
    render,
    split,
    utf8_size,
)
from bot.matching import match_choice
from content.catalog import Catalog, Translator
from handlers.messages import Choice, Photo, Place, Reply

LINK = re.compile(r'<a href="([^"]*)">([^<]*)</a>')


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture(scope="module")
def zh(catalog: Catalog) -> Translator:
    return catalog.translator("zh")


@pytest.fixture(scope="module")
def en(catalog: Catalog) -> Translator:
    return catalog.translator("en")


def option(t: Translator, key: str, label_key: str, *, numbered: bool = True) -> Choice:
    return Choice(key, str(t(label_key)), numbered)


def links(text: str) -> list[tuple[str, str, str]]:
    """(msgmenucontent as WeChat sends it back, msgmenuid, the shown text) of each link."""
    found = []
    for href, shown in LINK.findall(text):
        url = urlsplit(href)
        assert (url.scheme, url.netloc) == ("weixin", "bizmsgmenu")
        query = parse_qs(url.query, strict_parsing=True)
        found.append((query["msgmenucontent"][0], query["msgmenuid"][0], unescape(shown)))
    return found


def assert_rejoins(pieces: list[str], text: str) -> None:
    """The pieces are the text in order, with only whitespace at the cuts left out."""
    position = 0
    for piece in pieces:
        while not text.startswith(piece, position) and text[position].isspace():
            position += 1
        assert text.startswith(piece, position), (piece, text[position : position + 40])
        position += len(piece)
    assert not text[position:].strip()


# --- plain_text -------------------------------------------------------------------------------


def test_catalogue_headings_become_brackets(zh: Translator, en: Translator) -> None:
    help_zh = plain_text(str(zh("help.text")))
    assert help_zh.startswith("【怎么用】\n每个问题都有编号的选项")
    assert "\n\n【隐私】\n" in help_zh
    assert "<" not in help_zh
    submitted = plain_text(str(en("complaint.submitted", reference="KS-0042")))
    assert submitted.startswith("【Submitted!】 Your complaint number is 【KS-0042】.")
    assert submitted.count("\n") == 2  # the catalogue's lines stay lines


def test_escaped_input_is_unescaped_exactly_once(zh: Translator) -> None:
    typed = '<b>老板</b> & "张三" &lt;i&gt;'  # what a worker typed, HTML and an entity
    html = str(zh("mediation.signed", alias="Li & Wang", text=typed))
    assert "&lt;b&gt;" in html  # the catalogue escaped it for Telegram
    assert plain_text(html) == '【Li & Wang】：<b>老板</b> & "张三" &lt;i&gt;'


def test_tags_other_than_bold_and_links_keep_only_their_text() -> None:
    html = (
        "<i>注意</i>：输入 <code>/forget</code><br>删除<u>信息</u>"
        "<blockquote>引用</blockquote><tg-spoiler>秘密</tg-spoiler>\n下一行"
    )
    assert plain_text(html) == "注意：输入 /forget\n删除信息引用秘密\n下一行"


def test_links_show_their_address_unless_it_is_their_text() -> None:
    html = (
        '法律援助：<a href="https://12348.example.cn/?city=ks&amp;lang=zh">12348 热线</a>，'
        '网站 <a href="https://12333.example.cn">https://12333.example.cn</a>'
    )
    assert plain_text(html) == (
        "法律援助：12348 热线（https://12348.example.cn/?city=ks&lang=zh），"
        "网站 https://12333.example.cn"
    )


def test_bold_inside_a_link_and_nested_bold_give_one_pair() -> None:
    assert plain_text("<b>重要 <b>真的</b></b>") == "【重要 真的】"
    assert plain_text('<a href="https://x.cn"><b>看这里</b></a>') == "【看这里】（https://x.cn）"
    assert plain_text("<b>没关上") == "【没关上】"  # a broken tag loses no text


# --- render -----------------------------------------------------------------------------------


def test_numbered_choices_are_links_that_send_number_and_label(zh: Translator) -> None:
    choices = [
        option(zh, "complaint", "menu.complaint"),  # 投诉 / 反映问题: a slash and a space
        option(zh, "my_tickets", "menu.my_tickets"),
        Choice("rnd", "R&D 部门 <夜班>"),  # what must be encoded: & and <>
    ]
    text = render(Reply(str(zh("menu.main.ask")), choices), type_words="回复：")
    lines = text.split("\n")
    assert lines[0] == "这里是外来务工人员服务热线。需要什么帮助？"
    assert all(line.startswith('<a href="weixin://bizmsgmenu?') for line in lines[1:])
    assert links(text) == [
        ("1. 投诉 / 反映问题", "1", "1. 投诉 / 反映问题"),
        ("2. 我的投诉", "2", "2. 我的投诉"),
        ("3. R&D 部门 <夜班>", "3", "3. R&D 部门 <夜班>"),
    ]
    href = LINK.findall(text)[2][0]
    assert "R%26D%20" in href and "%3C" in href and " " not in href
    assert href.count("&") == 1  # the one between the parameters
    assert "R&amp;D 部门 &lt;夜班&gt;" in text  # the shown text escaped
    for number, (content, _, _) in enumerate(links(text)):  # a tap is read as its choice
        assert match_choice(content, choices) is choices[number]


def test_unnumbered_choices_are_one_line_of_words(zh: Translator, en: Translator) -> None:
    nav_zh = [option(zh, k, f"choices.{k}", numbered=False) for k in ("back", "cancel")]
    agree = option(zh, "agree", "choices.agree")
    text = render(Reply(str(zh("complaint.consent.ask")), [agree, *nav_zh]), type_words="回复：")
    assert text.startswith("【提交前请先了解】\n• 我们保存")
    link = LINK.search(text).group(0)
    assert text.endswith(f"您同意吗？\n{link}\n回复：⬅ 返回上一步 · ✖ 取消")
    assert [content for content, _, _ in links(text)] == ["1. 同意"]
    nav_en = [option(en, k, f"choices.{k}", numbered=False) for k in ("skip", "cancel")]
    text = render(Reply(str(en("complaint.phone.ask")), nav_en), type_words="Reply: ")
    assert "<a " not in text
    assert text.split("\n")[-1] == f"Reply: {nav_en[0].label} · {nav_en[1].label}"
    assert match_choice(nav_en[0].label, nav_en) is nav_en[0]  # the shown words are answers


def test_place_is_a_line_and_photo_adds_nothing() -> None:
    place = Place(31.38, 120.95, "昆山市法律援助中心", "前进西路 88 号")
    assert render(Reply("<b>最近的</b>", place=place), type_words="回复：") == (
        "【最近的】\n昆山市法律援助中心, 前进西路 88 号"
    )
    only_place = render(Reply("", place=place), type_words="回复：")
    assert only_place == "昆山市法律援助中心, 前进西路 88 号"
    assert render(Reply("", photo=Photo(png=b"\x89PNG")), type_words="回复：") == ""
    captioned = Reply("工资条 <i>8月</i>", photo=Photo(file_id="media-1"))
    assert render(captioned, type_words="回复：") == "工资条 8月"


# --- split ------------------------------------------------------------------------------------


def test_short_text_is_one_piece_and_blank_is_none() -> None:
    text = "汉" * (TEXT_LIMIT_BYTES // 3) + "ab"  # 2046 bytes
    assert split(text) == [text]
    assert split(" \n ") == []


@pytest.mark.parametrize("prefix", ["", "a", "ab"])  # every offset inside a 3-byte character
def test_cuts_fall_between_chinese_characters(prefix: str) -> None:
    text = prefix + "拖欠工资" * 200  # no line break, no space: cut anywhere
    pieces = split(text, 100)
    assert all(utf8_size(piece) <= 100 for piece in pieces)
    assert "".join(pieces) == text
    assert all(utf8_size(piece) > 97 for piece in pieces[:-1])  # as much as fits


def test_emoji_at_the_boundary_are_kept_whole() -> None:
    assert split("ab😀cd", 5) == ["ab", "😀c", "d"]  # 2 + 4 bytes: the emoji does not fit
    family = "👩\u200d👩\u200d👧"  # three people joined: 18 bytes, one character to a reader
    flag, check = "🇨🇳", "✔\ufe0f"  # two regional letters; a mark and its emoji selector
    for joined in (family, flag, check):
        text = "工资" + joined + "资" * 10
        limit = utf8_size("工资" + joined) - 1  # the boundary falls inside it
        pieces = split(text, limit)
        assert pieces[0] == "工资" and pieces[1].startswith(joined), pieces
        assert "".join(pieces) == text


def test_cuts_at_a_line_else_a_space_and_drops_only_that() -> None:
    text = "第一行有空格 是的\n第二行 也有空格 还有更多的字\n第三行"
    pieces = split(text, 40)  # the line break is past half the piece; then a space is
    assert pieces == ["第一行有空格 是的", "第二行 也有空格", "还有更多的字\n第三行"]
    assert_rejoins(pieces, text)
    words = ("Your complaint number is KS-0042 please note it down " * 10).strip()
    pieces = split(words, 60)
    assert all(utf8_size(p) <= 60 and not p[0].isspace() and not p[-1].isspace() for p in pieces)
    assert_rejoins(pieces, words)


def test_a_line_exactly_at_the_limit_is_cut_at_its_line_break() -> None:
    line = "工" * 10  # 30 bytes
    assert split(f"{line}\n{line}\n{line}", 30) == [line, line, line]


def test_links_are_never_cut(catalog: Catalog, zh: Translator) -> None:
    districts = [option(zh, key, f"districts.{key}") for key in catalog.districts]
    text = render(Reply(str(zh("complaint.district.ask")), districts), type_words="回复：")
    whole = LINK.findall(text)
    assert len(whole) == len(districts) > 10
    longest = max(utf8_size(link.group(0)) for link in LINK.finditer(text))
    for limit in (longest, longest + 50, 2 * longest + 1):
        pieces = split(text, limit)
        assert all(utf8_size(piece) <= limit for piece in pieces)
        assert [link for piece in pieces for link in LINK.findall(piece)] == whole
        assert all(piece.count("<a ") == piece.count("</a>") for piece in pieces)
        assert_rejoins(pieces, text)
    with pytest.raises(ValueError, match="link longer"):
        split(text, longest - 1)  # one link alone is more than a message


def test_a_worker_text_full_of_escapes_splits_within_bytes(zh: Translator) -> None:
    typed = "工资&&<<>>\"\"''😀 " * 300  # escaped for Telegram, then unescaped once here
    text = plain_text(str(zh("mediation.worker_wrote", text=typed)))
    assert text.startswith("【工友】：工资&&<<>>")
    pieces = split(text)
    assert len(pieces) > 1
    assert all(utf8_size(piece) <= TEXT_LIMIT_BYTES for piece in pieces)
    assert_rejoins(pieces, text)


# --- join_turn --------------------------------------------------------------------------------


def test_a_turns_messages_join_into_one_when_they_fit(zh: Translator) -> None:
    categories = [Choice("w", "拖欠工资"), Choice("o", "其他")]
    texts = [
        render(Reply(str(zh("common.welcome_back"))), type_words="回复："),
        render(Reply("", photo=Photo(file_id="chart")), type_words="回复："),  # nothing
        render(
            Reply(str(zh("complaint.category.ask")), categories),
            type_words="回复：",
        ),
    ]
    joined = join_turn(texts)
    assert joined == [texts[0] + "\n\n" + texts[2]]
    assert [content for content, _, _ in links(joined[0])] == ["1. 拖欠工资", "2. 其他"]


def test_join_keeps_order_and_the_limit_with_as_few_messages_as_fit() -> None:
    texts = ["甲" * 10, "乙" * 10, "丙" * 10, "丁" * 30, "戊"]  # 30, 30, 30, 90, 3 bytes
    joined = join_turn(texts, 64)  # two of 30 and a blank line fit (62); three do not
    assert joined == ["甲" * 10 + "\n\n" + "乙" * 10, "丙" * 10, "丁" * 21, "丁" * 9 + "\n\n戊"]
    assert all(utf8_size(message) <= 64 for message in joined)
    assert_rejoins(joined, "\n\n".join(texts))  # the long one's tail took the next with it


def test_join_of_nothing_sends_nothing() -> None:
    assert join_turn([]) == []
    assert join_turn(["", "  "]) == []
