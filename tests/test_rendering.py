"""Long texts and captions as Telegram counts them: pieces that fit, parse and keep their order,
buttons on the last piece; a counsellor's long caption sent after the media; and a failed
delivery told in the topic with its real reason."""

from __future__ import annotations

import asyncio

import pytest
from markupsafe import escape
from sqlmodel import select
from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.channels.telegram.rendering import keyboard, split_text, telegram_length
from db.models import Delivery, Direction, TicketMessage
from handlers.messages import Choice, Reply
from local_servers.telegram import LocalBotApi
from local_servers.telegram.formatting import parse_html, strip_text, utf16_len
from tests.conversation import replies, say
from tests.desk import COUNSELLOR_LI, start_desk

# A worker's words full of what HTML escapes (& < > " '), with Chinese and an emoji: as HTML
# about three and a half times as long as what Telegram counts.
STORY_WORDS = "工资&&<<>>\"\"''😀 "


def story_of(length: int) -> str:
    return (STORY_WORDS * (length // len(STORY_WORDS) + 1))[:length]


def normalized(text: str) -> str:
    """Telegram trims each message, so a cut loses the line break or space it was made at."""
    return " ".join(text.split())


def check_pieces(pieces: list[str], whole_html: str) -> list[str]:
    """Every piece valid HTML (parse_html raises as Telegram would) and within 4096 of what
    Telegram counts; together, in order, the whole text. Returns the pieces as seen."""
    seen = []
    for piece in pieces:
        plain, entities = strip_text(*parse_html(piece))
        assert 0 < utf16_len(plain) <= 4096
        seen.append(plain)
    whole, _ = parse_html(whole_html)
    assert normalized(" ".join(seen)) == normalized(whole)
    return seen


@pytest.mark.parametrize("length", [2400, 10_000])
def test_a_long_summary_splits_on_what_telegram_counts(length: int) -> None:
    story = story_of(length)
    html = (
        "<b>Please check your complaint</b>\n\nEmployer: Sunrise &amp; Sons\n"
        f"Story: <b>{escape(story)}</b>\nEvidence: 1 item\n\nIs this right?"
    )
    pieces = split_text(html)
    seen = check_pieces(pieces, html)
    assert seen[0].startswith("Please check your complaint\n\nEmployer: Sunrise & Sons")
    assert seen[-1].endswith("Is this right?")
    assert len(html) > 4096  # as written; what Telegram counts decides the pieces
    assert len(pieces) == (1 if length < 4000 else 3)
    if length > 4096:  # the bold story goes on across the cut: closed, then reopened
        assert pieces[0].endswith("</b>") and pieces[1].startswith("<b>")


def test_parsed_length_is_counted_in_utf16_units() -> None:
    assert telegram_length("<b>a &amp; b</b>") == 5
    assert telegram_length("😀&lt;") == 3
    assert split_text("😀" * 2048) == ["😀" * 2048]
    assert [utf16_len(p) for p in split_text("😀" * 2049)] == [4096, 2]


async def test_the_local_server_counts_like_telegram(api: LocalBotApi) -> None:
    api.user(42)
    async with Bot(api.token, base_url=api.base_url) as bot:
        await bot.send_message(42, "😀" * 2048)
        await bot.send_message(42, "<b>" + "&amp;" * 4096 + "</b>", parse_mode=ParseMode.HTML)
        with pytest.raises(BadRequest, match="(?i)message is too long"):
            await bot.send_message(42, "😀" * 2049)


@pytest.fixture
async def desk(api: LocalBotApi, start_hotline):
    return await start_desk(api, start_hotline, COUNSELLOR_LI)


async def walk_to_review(worker, story_parts: list[str]) -> list:
    for answer in ("/start", "English", "File a complaint", "I agree", "Unpaid wages"):
        await say(worker, answer)
    for answer in ("Sunrise & Sons <Ltd>", "Yushan", "88 Road", *story_parts, "done"):
        await say(worker, answer)
    for answer in ("8500", "Aug-Oct", "done", "skip"):
        await say(worker, answer)
    return await say(worker, "Stay anonymous")


async def test_a_long_story_reaches_the_review_and_the_card_in_order(api, desk) -> None:
    hotline, forum = desk
    worker = api.user(3101, language_code="en")
    story = [story_of(1200), story_of(1200)[::-1]]
    review = await walk_to_review(worker, story)
    for message in review:
        assert utf16_len(message.plain) <= 4096
    assert review[0].plain.startswith("Please check")  # the header comes first
    assert [bool(m.buttons) for m in review] == [False] * (len(review) - 1) + [True]
    seen = normalized(" ".join(m.plain for m in review))
    assert normalized(story[0][:1000]) in seen
    assert seen.index("Sunrise & Sons <Ltd>") < seen.index(normalized(story[0][:500]))
    await say(worker, "Submit")
    await asyncio.sleep(0.5)
    card = [m for m in forum.topic_messages(max(forum.topics)) if m.kind == "text"]
    assert [bool(m.buttons) for m in card] == [False] * (len(card) - 1) + [True]
    card_text = normalized(" ".join(m.plain for m in card))
    assert card_text.startswith("HL-")
    assert normalized(f"{story[0]} {story[1]}"[:2000]) in card_text


async def test_a_ten_thousand_character_reply_goes_in_order_buttons_last(api, hotline) -> None:
    worker = api.user(3102, language_code="en")
    await say(worker, "/start")
    html = f"<b>Summary</b>\n\n<b>{escape(story_of(10_000))}</b>\n\nSubmit it?"
    reply = Reply(html, [Choice("yes", "Submit"), Choice("no", "Change")], "review")
    sent = await hotline.telegram.send(worker.id, reply)
    pieces = await replies(worker)
    check_pieces([m.text for m in pieces], html)
    assert [bool(m.buttons) for m in pieces] == [False] * (len(pieces) - 1) + [True]
    assert len(pieces) >= 3 and sent.status == "sent" and sent.message_id == pieces[-1].message_id


async def test_a_long_counsellor_answer_arrives_whole_in_pieces(api, desk) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    worker, thread = await opened_case(api, forum, 3103)
    answer = story_of(4000)
    forum.send(li, answer, thread_id=thread)
    pieces = await worker.next_messages(2)
    assert all(utf16_len(m.plain) <= 4096 for m in pieces)
    assert pieces[0].plain.startswith("Counsellor Li: ")
    assert normalized(" ".join(m.plain for m in pieces)) == normalized(f"Counsellor Li: {answer}")
    await asyncio.sleep(0.3)  # the delivery is recorded right after the last piece
    record = (await to_worker(hotline))[-1]
    assert record.delivery_status == Delivery.SENT
    assert record.worker_message_id == pieces[-1].message_id


async def opened_case(api, forum, worker_id: int):
    """A worker who asked to talk to a person, and their ticket's topic."""
    worker = api.user(worker_id, language_code="en")
    for answer in ("/start", "English", "Talk to a person", "I agree", "Please call me"):
        await say(worker, answer)
    await asyncio.sleep(0.4)
    return worker, max(forum.topics)


async def to_worker(hotline) -> list[TicketMessage]:
    async with hotline.sessions() as session:
        found = await session.exec(
            select(TicketMessage)
            .where(TicketMessage.direction == Direction.TO_WORKER)
            .order_by(TicketMessage.id)
        )
        return list(found.all())


@pytest.mark.parametrize(
    "caption",
    [
        "x" * 1008 + " & <ok>",  # 1,015 characters: the signature pushes it over 1,024
        "😀" * 600,  # 600 characters but 1,200 UTF-16 units, which is what Telegram counts
    ],
    ids=["alias-pushes-it-over", "emoji-count-double"],
)
async def test_a_photo_with_a_long_caption_arrives_with_its_text_after(
    api, desk, caption: str
) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    worker, thread = await opened_case(api, forum, 3104)
    forum.send_photo(li, thread_id=thread, caption=caption)
    photo, text = await worker.next_messages(2)
    assert photo.kind == "photo" and not photo.plain
    assert text.kind == "text" and text.plain == f"Counsellor Li: {caption}"
    assert text.reply_to_message_id == photo.message_id
    await asyncio.sleep(0.3)  # the delivery is recorded right after the text
    record = (await to_worker(hotline))[-1]
    assert record.delivery_status == Delivery.SENT
    assert record.worker_message_id == photo.message_id
    assert all("没有送达" not in (m.plain or "") for m in forum.topic_messages(thread))


async def test_a_photo_with_a_short_caption_keeps_it(api, desk) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    worker, thread = await opened_case(api, forum, 3105)
    forum.send_photo(li, thread_id=thread, caption="x" * 1000)
    photo = await worker.next_message()
    assert photo.kind == "photo" and photo.plain == "Counsellor Li: " + "x" * 1000
    assert await worker.quiet(0.3) == []


@pytest.mark.parametrize(
    ("fault", "notice"),
    [
        ({"status": 403}, "对方屏蔽了机器人"),
        ({"status": 502, "times": 10}, "多次重试后仍然连不上 Telegram"),
        (
            {"status": 400, "description": "Bad Request: message is too long"},
            "Telegram 说它太长了",
        ),
        (
            {"status": 400, "description": "Bad Request: chat not found"},
            "Telegram 拒绝了它（Chat not found）",
        ),
    ],
    ids=["blocked", "unreachable", "too-long", "refused"],
)
async def test_an_undelivered_answer_says_why_in_the_topic(
    api, desk, fault: dict, notice: str
) -> None:
    hotline, forum = desk
    li = api.user(771, "Li")
    worker, thread = await opened_case(api, forum, 3106)
    api.fail("sendMessage", chat_id=worker.id, **fault)
    await forum.quiet(0.1)
    forum.send(li, "Are you there?", thread_id=thread)
    # Four tries with back-off, then the notice at the group's pace: waited for, not timed.
    said = (await forum.next_message(timeout=15)).plain
    assert notice in said and said.startswith("⚠ 这条消息没有送达工友")
    record = (await to_worker(hotline))[-1]
    blocked = fault["status"] == 403
    assert record.delivery_status == (Delivery.BLOCKED if blocked else Delivery.FAILED)


def test_buttons_without_numbers_sit_side_by_side_only_while_they_fit() -> None:
    def rows(*labels: str) -> list[list[str]]:
        choices = [Choice(f"k{n}", label, numbered=False) for n, label in enumerate(labels)]
        return [[b.text for b in row] for row in keyboard(Reply("?", choices, "t")).inline_keyboard]

    assert rows("« Back", "✖ Cancel") == [["« Back", "✖ Cancel"]]
    places = ("Kunshan Legal Aid Centre", "Labour Dispute Arbitration Committee", "12351")
    assert rows(*places) == [[places[0]], [places[1]], [places[2]]]
    assert rows("a", "b", "c", "d") == [["a", "b", "c"], ["d"]]
