"""The local Bot API, driven by the real python-telegram-bot client.

Everything else in the test suite trusts this server to behave like Telegram, so these tests
check it through the same client the bot uses, not through its own Python API alone.
"""

import asyncio
import datetime as dtm
import html
import time

import aiohttp
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MessageEntity,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import Application, CommandHandler, ContextTypes

from local_servers.telegram import LocalBotApi, RateLimited, TelegramLimits, busiest_window

FORUM_ID = -1001234


@pytest.fixture
async def api():
    async with LocalBotApi() as server:
        yield server


@pytest.fixture
async def bot(api):
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.base_file_url) as client:
        yield client


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in buttons]]
    )


async def test_get_me_describes_the_bot(bot, api):
    me = await bot.get_me()
    assert me.is_bot and me.username == "hotline_bot" == api.bot_user["username"]
    assert me.id == int(api.token.split(":")[0])


async def test_wrong_token_is_refused(api):
    stranger = Bot("987654321:not-the-token", base_url=api.base_url)
    with pytest.raises(InvalidToken):
        await stranger.get_me()


async def test_worker_text_arrives_with_a_command_entity(bot, api):
    worker = api.user(42, "Ana", username="ana")
    assert api.user(42) is worker

    worker.send("/start ref-7")
    [update] = await bot.get_updates()

    message = update.message
    assert message.text == "/start ref-7"
    assert message.entities == (MessageEntity(MessageEntity.BOT_COMMAND, 0, 6),)
    assert message.chat.id == message.from_user.id == 42
    assert message.from_user.language_code == "zh-hans"
    assert message.chat.type == "private"


async def test_offset_confirms_and_drops_updates(bot, api):
    worker = api.user(42)
    for text in ("one", "two", "three"):
        worker.send(text)

    first = await bot.get_updates()
    assert [u.message.text for u in first] == ["one", "two", "three"]
    assert api.pending_updates == 3  # nothing is confirmed until an offset says so

    rest = await bot.get_updates(offset=first[1].update_id + 1)
    assert [u.message.text for u in rest] == ["three"]
    assert await bot.get_updates(offset=rest[0].update_id + 1) == ()
    assert api.pending_updates == 0


async def test_long_poll_returns_as_soon_as_a_message_arrives(bot, api):
    worker = api.user(42)
    asyncio.get_running_loop().call_later(0.1, worker.send, "hello?")

    started = time.monotonic()
    updates = await bot.get_updates(timeout=5)

    assert [u.message.text for u in updates] == ["hello?"]
    assert 0.05 < time.monotonic() - started < 2


async def test_long_poll_times_out_empty(bot):
    started = time.monotonic()
    assert await bot.get_updates(timeout=dtm.timedelta(milliseconds=200)) == ()
    assert time.monotonic() - started >= 0.2


async def test_a_second_bot_instance_ends_the_first_ones_long_poll(bot, api):
    # One Bot never overlaps its own polls (its getUpdates pool has one connection), so the
    # conflict needs a second instance, as with two bot processes on one token.
    older = asyncio.create_task(bot.get_updates(timeout=5))
    while not api.polling:
        await asyncio.sleep(0.01)
    async with Bot(api.token, base_url=api.base_url) as second_instance:
        assert await second_instance.get_updates(timeout=dtm.timedelta(milliseconds=50)) == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates"):
        await older


async def test_html_message_with_keyboard_reaches_the_worker(bot, api):
    worker = api.user(42)

    sent = await bot.send_message(
        42,
        "<b>Welcome</b> &amp; <i>hello</i>\n",
        parse_mode=ParseMode.HTML,
        reply_markup=keyboard(("Yes", "yes"), ("No", "no")),
    )

    assert sent.text == "Welcome & hello"  # Telegram parses the HTML and trims the text
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 0, 7),
        ("italic", 10, 5),
    ]
    seen = await worker.next_message()
    assert seen.message_id == sent.message_id
    assert seen.text == "<b>Welcome</b> &amp; <i>hello</i>\n"
    assert seen.plain == "Welcome & hello"
    assert seen.button_texts == ["Yes", "No"]
    assert seen.buttons[0][1].callback_data == "no"
    assert worker.last is seen


async def test_pressing_a_button_makes_a_callback_query(bot, api):
    worker = api.user(42)
    languages = keyboard(("中文", "lang:zh"), ("English", "lang:en"))
    sent = await bot.send_message(42, "Which language?", reply_markup=languages)

    worker.press("Eng")
    [update] = await bot.get_updates()

    query = update.callback_query
    assert query.data == "lang:en"
    assert query.from_user.id == 42
    assert query.message.message_id == sent.message_id
    await bot.answer_callback_query(query.id, text="Saved")
    assert worker.callback_answers == [{"callback_query_id": query.id, "text": "Saved"}]
    with pytest.raises(BadRequest, match="query id is invalid"):
        await bot.answer_callback_query(query.id)
    with pytest.raises(LookupError, match="中文"):
        worker.press("Deutsch")


@pytest.mark.parametrize(
    "worker_text", ["<script>alert(1)</script>", "<b>bold", "1 < 2", "ticket &nbsp; please", "</i>"]
)
async def test_unescaped_worker_text_in_html_is_refused(bot, api, worker_text):
    worker = api.user(42)

    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.send_message(42, f"You wrote: {worker_text}", parse_mode=ParseMode.HTML)
    escaped = await bot.send_message(
        42, f"You wrote: {html.escape(worker_text)}", parse_mode=ParseMode.HTML
    )

    assert escaped.text == f"You wrote: {worker_text}"
    assert [m.plain for m in worker.messages] == [escaped.text]


async def test_html_errors_use_telegram_wording(bot, api):
    api.user(42)
    with pytest.raises(BadRequest, match=r'(?i)unsupported start tag "script" at byte offset 0'):
        await bot.send_message(42, "<script>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match='end tag corresponding to start tag "b"'):
        await bot.send_message(42, "<b>x", parse_mode=ParseMode.HTML)


async def test_supported_html_becomes_entities(bot, api):
    api.user(42)
    sent = await bot.send_message(
        42,
        '<a href="https://example.org/?a=1&amp;b=2">law</a> '
        '<pre><code class="language-python">pay()</code></pre> '
        '<span class="tg-spoiler">s</span> <blockquote expandable>q</blockquote> '
        "&#128512; AT&T",
        parse_mode=ParseMode.HTML,
    )

    assert sent.text == "law pay() s q 😀 AT&T"
    entities = {e.type: e for e in sent.entities}
    assert entities["text_link"].url == "https://example.org/?a=1&b=2"
    assert entities["pre"].language == "python" and "code" not in entities
    assert {"spoiler", "expandable_blockquote"} <= set(entities)
    assert sent.parse_entity(entities["spoiler"]) == "s"


async def test_message_length_is_counted_after_parsing(bot, api):
    api.user(42)
    await bot.send_message(42, "<b>" + "字" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="too long"):
        await bot.send_message(42, "x" * 4097)
    with pytest.raises(BadRequest, match="text is empty"):
        await bot.send_message(42, "<b> </b>", parse_mode=ParseMode.HTML)


async def test_callback_data_is_limited_to_64_bytes(bot, api):
    api.user(42)
    await bot.send_message(42, "ok", reply_markup=keyboard(("A", "x" * 64)))
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(42, "too long", reply_markup=keyboard(("A", "x" * 65)))
    with pytest.raises(BadRequest, match="Button_data_invalid"):  # 33 letters, 66 bytes in UTF-8
        await bot.send_message(42, "too long", reply_markup=keyboard(("A", "é" * 33)))


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_scripted_flood_limit_raises_retry_after_once(bot, api):
    worker = api.user(42)
    api.fail("sendMessage", status=429, retry_after=1)

    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(42, "first try")
    retry_after = raised.value.retry_after
    assert retry_after in (1, dtm.timedelta(seconds=1))
    await bot.send_message(42, "second try")

    assert [(r.method, r.status) for r in api.requests if r.method == "sendMessage"] == [
        ("sendMessage", 429),
        ("sendMessage", 200),
    ]
    assert [m.plain for m in worker.messages] == ["second try"]


async def test_scripted_bad_gateway_is_a_network_error_for_one_chat_only(bot, api):
    api.user(42)
    api.user(43)
    api.fail("sendMessage", status=502, chat_id=43)

    await bot.send_message(42, "unaffected")
    with pytest.raises(NetworkError, match="Bad Gateway") as raised:
        await bot.send_message(43, "lost")
    assert not isinstance(raised.value, BadRequest)
    await bot.send_message(43, "through")


async def test_blocked_worker_is_forbidden(bot, api):
    worker = api.user(42)
    worker.blocked = True

    with pytest.raises(Forbidden, match="blocked by the user"):
        await bot.send_message(42, "hello")
    with pytest.raises(Forbidden):
        await bot.send_chat_action(42, "typing")
    assert worker.messages == []


async def test_unknown_chat_is_a_bad_request(bot):
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(777, "anyone?")


async def test_worker_photo_can_be_downloaded_and_passed_on(bot, api):
    worker, counsellor = api.user(42), api.user(7, "Mei")
    worker.send_photo(caption="my payslip", file_size=90_000)

    [update] = await bot.get_updates()
    photo = update.message.photo
    assert update.message.caption == "my payslip"
    assert len(photo) >= 2 and photo[0].file_size < photo[-1].file_size
    assert len({size.file_id for size in photo}) == len(photo)

    file = await bot.get_file(photo[-1].file_id)
    data = await file.download_as_bytearray()
    assert len(data) == file.file_size == 90_000

    await bot.send_photo(
        7, photo=photo[-1].file_id, caption="<i>from Ana</i>", parse_mode=ParseMode.HTML
    )
    seen = await counsellor.next_message()
    assert (seen.kind, seen.media_file_id, seen.plain) == ("photo", photo[-1].file_id, "from Ana")

    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_photo(7, photo="no-such-file")


async def test_uploaded_document_keeps_its_bytes(bot, api):
    worker = api.user(42)

    sent = await bot.send_document(42, document=b"ticket 12: wages", filename="ticket.txt")

    seen = await worker.next_message()
    assert seen.kind == "document" and sent.document.file_name == "ticket.txt"
    assert api.files.content(seen.media_file_id) == b"ticket 12: wages"
    assert api.calls("sendDocument")[0]["document"] == seen.media_file_id


async def test_forum_topics_carry_messages_both_ways(bot, api):
    forum = api.forum(FORUM_ID)
    counsellor = api.user(7, "Mei")

    topic = await bot.create_forum_topic(FORUM_ID, "Case 12 · Ana")
    thread = topic.message_thread_id
    await bot.send_message(FORUM_ID, "New case", message_thread_id=thread)
    assert [m.plain for m in forum.topic_messages(thread)] == ["New case"]

    forum.send(counsellor, "/reply@hotline_bot I'll call her", thread_id=thread)
    created, update = await bot.get_updates()
    # The bot hears of the topic it opened, as from Telegram (its own service message).
    assert created.message.forum_topic_created.name == "Case 12 · Ana"
    assert created.message.message_thread_id == thread
    assert created.message.from_user.id == bot.id
    message = update.message
    assert message.message_thread_id == thread and message.is_topic_message
    assert message.entities[0].length == len("/reply@hotline_bot")
    # Telegram makes a topic's messages replies to the topic's creation message.
    assert message.reply_to_message.forum_topic_created.name == "Case 12 · Ana"

    await bot.close_forum_topic(FORUM_ID, thread)
    assert forum.topics[thread]["closed"]
    with pytest.raises(BadRequest, match="Topic_closed"):
        await bot.send_message(FORUM_ID, "anyone?", message_thread_id=thread)
    with pytest.raises(BadRequest, match="Topic_not_modified"):
        await bot.close_forum_topic(FORUM_ID, thread)
    await bot.reopen_forum_topic(FORUM_ID, thread)
    await bot.send_message(FORUM_ID, "back", message_thread_id=thread)
    assert [m.plain for m in await forum.next_messages(2)] == ["New case", "back"]

    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(FORUM_ID, "lost", message_thread_id=thread + 100)
    with pytest.raises(BadRequest, match="not a forum"):
        await bot.create_forum_topic(7, "private chats have no topics")


async def test_worker_edits_and_counsellor_presses_reach_the_bot(bot, api):
    worker, counsellor, forum = api.user(42), api.user(7, "Mei"), api.forum(FORUM_ID)
    question = worker.send("My boss took my pasport")
    worker.edit(question["message_id"], "My boss took my passport")
    await bot.send_message(FORUM_ID, "Take the case?", reply_markup=keyboard(("Take", "take:12")))
    forum.press(counsellor, 0)

    message, edited, pressed = await bot.get_updates()

    assert edited.edited_message.message_id == message.message.message_id
    assert edited.edited_message.text == "My boss took my passport"
    assert pressed.callback_query.from_user.id == 7
    assert pressed.callback_query.data == "take:12"
    assert pressed.callback_query.message.chat.id == FORUM_ID


async def test_drop_pending_updates_and_allowed_updates(bot, api):
    worker = api.user(42)
    worker.send("stale")
    await bot.delete_webhook(drop_pending_updates=True)
    assert api.pending_updates == 0

    await bot.send_message(42, "Pick", reply_markup=keyboard(("A", "a")))
    worker.send("text")
    worker.press("A")
    [only] = await bot.get_updates(allowed_updates=["callback_query"])
    assert only.callback_query.data == "a"


async def test_copy_of_a_worker_photo_into_a_topic(bot, api):
    worker, forum = api.user(42), api.forum(FORUM_ID)
    photo = worker.send_photo(caption="contract page 1")
    topic = await bot.create_forum_topic(FORUM_ID, "Case 3")

    copied = await bot.copy_message(
        FORUM_ID,
        from_chat_id=42,
        message_id=photo["message_id"],
        message_thread_id=topic.message_thread_id,
    )

    seen = await forum.next_message()
    assert seen.message_id == copied.message_id
    assert seen.message_thread_id == topic.message_thread_id
    assert (seen.kind, seen.text) == ("photo", "contract page 1")
    assert seen.media_file_id == photo["photo"][-1]["file_id"]
    assert seen.copied_from == (42, photo["message_id"])
    with pytest.raises(BadRequest, match="Message to copy not found"):
        await bot.copy_message(FORUM_ID, from_chat_id=42, message_id=999)


async def test_edits_update_the_message_in_place(bot, api):
    worker = api.user(42)
    sent = await bot.send_message(42, "Pick one", reply_markup=keyboard(("A", "a")))

    await bot.edit_message_text(
        "Picked <b>A</b>", chat_id=42, message_id=sent.message_id, parse_mode=ParseMode.HTML
    )

    [message] = worker.messages
    assert message.edited and message.plain == "Picked A"
    assert message.buttons == []  # an edit that does not repeat the keyboard drops it
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text(
            "Picked <b>A</b>", chat_id=42, message_id=sent.message_id, parse_mode=ParseMode.HTML
        )
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("?", chat_id=42, message_id=999)


async def test_replies_point_at_the_replied_message(bot, api):
    worker = api.user(42)
    question = worker.send("Is overtime paid?")

    answer = await bot.send_message(42, "Yes", reply_to_message_id=question["message_id"])

    assert answer.reply_to_message.text == "Is overtime paid?"
    assert answer.message_id == question["message_id"] + 1  # one id sequence per chat
    assert (await worker.next_message()).reply_to_message_id == question["message_id"]


async def test_hold_freezes_a_method_until_release(bot, api):
    worker = api.user(42)
    api.hold("sendMessage")

    sending = asyncio.create_task(bot.send_message(42, "later"))
    [stalled] = await api.until_held("sendMessage")

    assert stalled["text"] == "later" and not sending.done()
    assert worker.messages == []
    api.release("sendMessage")
    await sending
    assert (await worker.next_message()).plain == "later"


async def test_redeliver_repeats_the_same_update_id(bot, api):
    worker = api.user(42)
    worker.send("hi")
    [update] = await bot.get_updates()
    assert await bot.get_updates(offset=update.update_id + 1) == ()

    api.redeliver(update.to_dict())

    [again] = await bot.get_updates(offset=update.update_id + 1)
    assert again.update_id == update.update_id
    assert again.message.message_id == update.message.message_id
    assert await bot.get_updates(offset=update.update_id + 1) == ()


async def test_next_message_times_out_with_what_was_seen(bot, api):
    worker = api.user(42)
    await bot.send_message(42, "only one")
    await worker.next_message()
    with pytest.raises(TimeoutError, match="only one"):
        await worker.next_message(timeout=0.05)
    assert await worker.quiet(0.05) == []


async def test_on_call_reports_every_successful_call(bot, api):
    api.user(42)
    seen: list[tuple[str, int]] = []
    api.on_call(
        "sendMessage", lambda params, result: seen.append((params["text"], result["message_id"]))
    )
    api.fail("sendMessage", status=500)

    with pytest.raises(NetworkError):
        await bot.send_message(42, "dropped")
    await bot.send_message(42, "kept")

    assert seen == [("kept", 1)]
    assert [params["text"] for params in api.calls("SENDMESSAGE")] == ["dropped", "kept"]


async def test_a_real_application_polls_and_answers(api):
    worker = api.user(42)

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_html(
            f"Hello, <b>{html.escape(update.effective_user.first_name)}</b>"
        )

    app = (
        Application.builder()
        .token(api.token)
        .base_url(api.base_url)
        .base_file_url(api.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0)
        worker.send("/start")
        reply = await worker.next_message()
        await app.updater.stop()
        await app.stop()

    assert reply.plain == "Hello, Worker"
    assert api.pending_updates == 0  # the updater confirmed what it handled


# --- Telegram's sending limits ---


class FakeClock:
    """Monotonic seconds that move only when a test says so: windows without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def paced(clock):
    """A server with Telegram's real limits on a fake clock."""
    async with LocalBotApi(limits=TelegramLimits(), clock=clock) as server:
        yield server


@pytest.fixture
async def paced_bot(paced):
    async with Bot(paced.token, base_url=paced.base_url) as client:
        yield client


def seconds(error: RetryAfter) -> float:
    """retry_after as a number, whichever type python-telegram-bot is set to give."""
    value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_the_21st_message_into_a_group_within_a_minute_is_refused(paced_bot, paced, clock):
    bot, api, forum = paced_bot, paced, paced.forum(FORUM_ID)
    first = await bot.create_forum_topic(FORUM_ID, "Case 1")  # a service message: counted
    clock.advance(1)
    second = await bot.create_forum_topic(FORUM_ID, "Case 2")
    for n in range(18):  # both topics share the group's 20 a minute
        clock.advance(1)
        thread = (first, second)[n % 2].message_thread_id
        await bot.send_message(FORUM_ID, f"card {n}", message_thread_id=thread)

    clock.advance(1)  # 20 s after the first message, which leaves the window at 60 s
    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(FORUM_ID, "one too many", message_thread_id=first.message_thread_id)
    assert seconds(raised.value) == 40
    with pytest.raises(RetryAfter):
        await bot.create_forum_topic(FORUM_ID, "Case 3")
    # Telegram's own envelope, which python-telegram-bot reads as RetryAfter.
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{api.base_url}{api.token}/sendMessage", json={"chat_id": FORUM_ID, "text": "raw"}
        ) as response:
            assert response.status == 429
            assert await response.json() == {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 40",
                "parameters": {"retry_after": 40},
            }

    assert len(forum.messages) == 18 and len(forum.topics) == 2  # nothing made by a refusal
    assert api.rate_limited == [
        RateLimited("sendMessage", FORUM_ID, "group", 40),
        RateLimited("createForumTopic", FORUM_ID, "group", 40),
        RateLimited("sendMessage", FORUM_ID, "group", 40),
    ]
    clock.advance(39.5)
    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(FORUM_ID, "still too soon")
    assert seconds(raised.value) == 1  # half a second left, rounded up
    clock.advance(0.5)  # the first message is 60 s old: one more fits
    await bot.send_message(FORUM_ID, "now", message_thread_id=first.message_thread_id)
    assert forum.messages[-1].plain == "now"
    assert busiest_window(api.sent_at[FORUM_ID], 60) == 20
    assert len(api.sent_at[FORUM_ID]) == 21


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_a_private_chat_takes_a_burst_then_about_one_a_second(paced_bot, paced, clock):
    bot, api = paced_bot, paced
    worker, other = api.user(42), api.user(43)
    question = worker.send("my boss has not paid me")
    await bot.send_message(42, "1")
    await bot.send_photo(42, api.files.new_photo(1000)[-1]["file_id"])
    await bot.copy_message(42, from_chat_id=42, message_id=question["message_id"])
    await bot.forward_message(42, from_chat_id=42, message_id=question["message_id"])
    sent = await bot.send_message(42, "5")  # a burst of 5, all at one moment

    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(42, "6")
    assert seconds(raised.value) == 1
    # What makes no new message is not counted: typing, edits, deletions.
    await bot.send_chat_action(42, "typing")
    await bot.edit_message_text("five", chat_id=42, message_id=sent.message_id)
    await bot.send_message(43, "another chat has its own bucket")

    clock.advance(1)
    await bot.send_message(42, "6 after a second")
    with pytest.raises(RetryAfter):
        await bot.send_message(42, "7 at once")
    clock.advance(3)  # three more refilled, never more than the burst
    for n in range(3):
        await bot.send_message(42, f"refilled {n}")
    with pytest.raises(RetryAfter):
        await bot.send_message(42, "one too many")

    assert [m.plain for m in worker.messages][-4:] == [
        "6 after a second",
        "refilled 0",
        "refilled 1",
        "refilled 2",
    ]
    assert len(worker.messages) == 9 and len(other.messages) == 1
    assert [(r.method, r.chat_id, r.rule) for r in api.rate_limited] == [
        ("sendMessage", 42, "private"),
    ] * 3


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_the_bot_sends_at_most_30_a_second_across_chats(paced_bot, paced, clock):
    bot, api = paced_bot, paced
    workers = [api.user(100 + n) for n in range(31)]
    for worker in workers[:30]:
        await bot.send_message(worker.id, "your ticket is open")

    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(workers[30].id, "the 31st in one second")
    assert seconds(raised.value) == 1
    assert workers[30].messages == []
    assert api.rate_limited == [RateLimited("sendMessage", 130, "overall", 1)]

    clock.advance(1)
    await bot.send_message(workers[30].id, "a second later")
    assert [m.plain for m in workers[30].messages] == ["a second later"]
    assert sum(len(times) for times in api.sent_at.values()) == 31


async def test_a_call_refused_for_another_reason_uses_no_quota(paced_bot, paced):
    bot, api = paced_bot, paced
    worker = api.user(42)
    worker.blocked = True
    for _ in range(5):
        with pytest.raises(Forbidden):
            await bot.send_message(42, "hello")
    worker.blocked = False
    for _ in range(5):
        with pytest.raises(BadRequest, match="parse entities"):
            await bot.send_message(42, "<b>wages", parse_mode=ParseMode.HTML)

    for n in range(5):  # the whole burst is still there
        await bot.send_message(42, f"message {n}")
    assert len(worker.messages) == 5
    assert api.rate_limited == [] and len(api.sent_at[42]) == 5


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_a_limit_set_to_none_never_refuses_and_can_be_set_while_running(clock):
    async with (
        LocalBotApi(limits=TelegramLimits.unlimited(), clock=clock) as api,
        Bot(api.token, base_url=api.base_url) as bot,
    ):
        forum, worker = api.forum(FORUM_ID), api.user(42)
        for n in range(40):
            await bot.send_message(FORUM_ID, f"card {n}")
            await bot.send_message(42, f"reply {n}")
        assert len(forum.messages) == len(worker.messages) == 40
        assert api.rate_limited == []

        # Turned on while running, a window counts what was just sent; a private chat's
        # bucket starts full.
        api.limits = TelegramLimits(overall_per_second=None, group_per_minute=20)
        with pytest.raises(RetryAfter):
            await bot.send_message(FORUM_ID, "over the limit now")
        for n in range(5):
            await bot.send_message(42, f"burst {n}")
        with pytest.raises(RetryAfter):
            await bot.send_message(42, "and then dry")
        assert [(r.chat_id, r.rule) for r in api.rate_limited] == [
            (FORUM_ID, "group"),
            (42, "private"),
        ]
