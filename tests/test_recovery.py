"""Nothing stuck, nothing doubled: a ticket's topic whose opening lost its answer (a 5xx, the
bot killed with SIGKILL) is found again, never opened twice; a turn that raises is tried
again in its lane, and once given up the worker is told once and the staff group alerted."""

from __future__ import annotations

import asyncio
import signal

import pytest
from sqlmodel import select

from bot import failed_turns
from db.models import InboxStatus, InboxUpdate, Ticket
from local_servers.telegram import LocalBotApi
from tests.conversation import file_complaint, replies, say, texts, wage_complaint
from tests.desk import STAFF_CHAT, start_desk
from tests.processes import hotline_process, killed_after

SORRY = "Sorry, something went wrong on our side"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failed_turns, "FIRST_RETRY_DELAY", 0.02)


async def ticket_of(hotline, reference: str) -> Ticket:
    async with hotline.sessions() as session:
        return (await session.exec(select(Ticket).where(Ticket.reference == reference))).one()


async def inbox_rows(hotline) -> list[InboxUpdate]:
    async with hotline.sessions() as session:
        return list((await session.exec(select(InboxUpdate).order_by(InboxUpdate.id))).all())


def cards(forum) -> list:
    return [m for m in forum.messages if "认领" in m.button_texts]


async def a_card_is_up(forum, *, seconds: float = 5.0) -> None:
    """Waits, for `seconds` at the most, until a ticket's card is in the staff group."""
    for _ in range(round(seconds / 0.05)):
        if cards(forum):
            return
        await asyncio.sleep(0.05)


# -- a topic opened once ----------------------------------------------------------------------


async def test_a_topic_whose_answer_was_lost_is_claimed_not_opened_again(
    api: LocalBotApi, start_hotline
) -> None:
    """Telegram opens the topic but the answer is a 500: the bot learns the topic from its
    service message instead of opening a second one, and the card goes into it."""
    hotline, forum = await start_desk(api, start_hotline)
    answers_lost = []

    def lose_the_first_answer(params: dict, result: dict | None) -> None:
        if not answers_lost:
            answers_lost.append(params)
            raise RuntimeError("the answer is lost on the way back")

    api.on_call("createForumTopic", lose_the_first_answer)
    worker = api.user(2101, language_code="en")
    reference = await file_complaint(worker, photo=None)
    await a_card_is_up(forum)
    await asyncio.sleep(0.3)
    assert answers_lost, "the first createForumTopic answer was lost"
    [thread] = forum.topics
    assert forum.topics[thread]["name"].startswith(reference)
    [card] = cards(forum)
    assert card.message_thread_id == thread
    assert len(api.calls("createForumTopic")) == 1
    assert (await ticket_of(hotline, reference)).topic_id == thread


async def test_a_topic_request_that_opened_nothing_is_made_again(
    api: LocalBotApi, start_hotline
) -> None:
    """A 502 before Telegram did anything: no service message comes, so the bot asks again
    (once the poller has shown there is none) and the card is not lost."""
    hotline, forum = await start_desk(api, start_hotline)
    api.fail("createForumTopic", status=502)
    worker = api.user(2106, language_code="en")
    reference = await file_complaint(worker, photo=None)
    await a_card_is_up(forum)
    await asyncio.sleep(0.3)
    [thread] = forum.topics
    assert [card.message_thread_id for card in cards(forum)] == [thread]
    assert len(api.calls("createForumTopic")) == 2, "the 502 and the one that opened it"
    assert (await ticket_of(hotline, reference)).topic_id == thread


async def test_kill_9_between_opening_a_topic_and_storing_it_opens_one_topic(
    api: LocalBotApi, database_url
) -> None:
    """The bot dies (SIGKILL) after Telegram got createForumTopic and before the topic's id
    was stored; the restarted bot carries out the stored card into that same topic."""
    forum = api.forum(STAFF_CHAT, "Hotline staff")
    worker = api.user(2102, language_code="en")
    with killed_after(hotline_process(api, database_url, HOTLINE_STAFF_CHAT_ID=str(STAFF_CHAT))):
        worker.send("/start")
        assert "Choose a language" in texts(await replies(worker, timeout=30))
        for answer in (*wage_complaint()[1:], "done", "skip", "Stay anonymous"):
            await say(worker, answer)
        api.hold("createForumTopic")
        submitted = texts(await say(worker, "Submit"))
        reference = submitted.split("complaint number is ")[1].split(".")[0]
        await api.until_held("createForumTopic", timeout=15)
    api.release("createForumTopic")  # Telegram carries out the dead bot's request
    for _ in range(100):
        if forum.topics:
            break
        await asyncio.sleep(0.05)
    [thread] = forum.topics
    assert cards(forum) == [], "the card had not been posted"
    restarted = hotline_process(api, database_url, HOTLINE_STAFF_CHAT_ID=str(STAFF_CHAT))
    try:
        await a_card_is_up(forum, seconds=30)  # a new process: it starts first
        await forum.quiet(1.0)
        assert list(forum.topics) == [thread], "one topic for the ticket"
        [card] = cards(forum)
        assert card.message_thread_id == thread
        assert reference in card.plain
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(20) == 0
    assert len(api.calls("createForumTopic")) == 1


# -- failed turns: retried, then given up and alerted -----------------------------------------


def failing(hotline, text: str, times: int) -> list[str]:
    """Makes the worker's turns on `text` raise `times` times (inside the turn's
    transaction, as a bug in a handler would); returns the list of failures so far."""
    route = hotline.engine._route
    failures: list[str] = []

    async def flaky(turn, state) -> None:
        if turn.inbound.text == text and len(failures) < times:
            failures.append(text)
            raise RuntimeError("a bug in a handler")
        await route(turn, state)

    hotline.engine._route = flaky
    return failures


async def test_a_turn_failing_fewer_times_than_the_limit_is_answered_in_order(
    api: LocalBotApi, hotline
) -> None:
    worker = api.user(2103, language_code="en")
    await say(worker, "/start")
    failures = failing(hotline, "English", failed_turns.TURN_ATTEMPTS - 1)
    worker.send("English")
    worker.send("/help")  # waits behind the retried turn in the worker's lane
    seen = texts([await worker.next_message(), *await worker.quiet(0.5)])
    assert len(failures) == failed_turns.TURN_ATTEMPTS - 1
    assert SORRY not in seen
    assert "How can we help?" in seen and "How it works" in seen
    assert seen.index("How can we help?") < seen.index("How it works")
    rows = await inbox_rows(hotline)
    retried = [r for r in rows if r.attempts]
    assert [(r.attempts, r.status) for r in retried] == [
        (failed_turns.TURN_ATTEMPTS - 1, InboxStatus.DONE)
    ]


async def test_a_turn_that_keeps_failing_is_given_up_once_and_the_staff_alerted(
    api: LocalBotApi, start_hotline, monkeypatch: pytest.MonkeyPatch
) -> None:
    hotline, forum = await start_desk(api, start_hotline)
    worker = api.user(2104, "Zhang Private", language_code="en")
    await say(worker, "/start")
    failures = failing(hotline, "English", failed_turns.TURN_ATTEMPTS)
    apologies = []
    apologise = failed_turns.apologise

    async def noted(*args):
        apologies.append(await apologise(*args))
        return apologies[-1]

    monkeypatch.setattr(failed_turns, "apologise", noted)
    worker.send("English")
    worker.send("/help")  # handled after the failing turn is given up
    seen = [await worker.next_message(), *await worker.quiet(0.5)]
    assert len(failures) == failed_turns.TURN_ATTEMPTS
    assert SORRY in seen[0].plain and sum(SORRY in m.plain for m in seen) == 1
    assert "How it works" in texts(seen[1:])
    assert "How can we help?" in texts(await say(worker, "English")), "the next one works"
    [failed] = [r for r in await inbox_rows(hotline) if r.status == InboxStatus.FAILED]
    assert failed.attempts == failed_turns.TURN_ATTEMPTS
    assert failed.payload["message"]["text"] == "English", "kept for an operator"
    [apology] = apologies
    assert apology.queued and not apology.replies, "said through the outbox, at its pace"

    assert "failure-alerts" in hotline.periodic.names(), "checked often"
    assert await hotline.alert_failures() == 1
    assert await hotline.alert_failures() == 0, "alerted once"
    assert await hotline.telegram.sender.idle()
    [alert] = [m for m in forum.messages if "收件箱" in (m.plain or "")]
    assert alert.message_thread_id is None, "in the General topic"
    assert f"收件箱第 {failed.id} 条" in alert.plain and "telegram" in alert.plain
    assert "Zhang" not in alert.plain and "2104" not in alert.plain and "English" not in alert.plain


async def test_a_staff_update_that_keeps_failing_is_given_up_and_alerted(
    api: LocalBotApi, start_hotline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.desk

    hotline, forum = await start_desk(api, start_hotline, (2171, "counsellor", "Li"))
    li = api.user(2171, "Li")
    worker = api.user(2105, language_code="en")
    await file_complaint(worker, photo=None)
    await a_card_is_up(forum)
    [thread] = forum.topics
    real = bot.desk.from_staff
    failures: list[str] = []

    async def flaky(turn) -> None:
        if turn.inbound.text == "Please call us" and len(failures) < failed_turns.TURN_ATTEMPTS:
            failures.append(turn.inbound.text)
            raise RuntimeError("a bug in a staff handler")
        await real(turn)

    monkeypatch.setattr(bot.desk, "from_staff", flaky)
    await forum.quiet(0.3)
    forum.send(li, "Please call us", thread_id=thread)
    forum.send(li, "Are you there?", thread_id=thread)  # waits in the topic's lane
    answer = await worker.next_message()
    assert answer.plain == "Li: Are you there?"
    assert all("Please call us" not in m.plain for m in worker.messages)
    in_topic = [m.plain for m in await forum.quiet(0.3) if m.message_thread_id == thread]
    assert sum("系统出了点问题" in text for text in in_topic) == 1
    assert len(failures) == failed_turns.TURN_ATTEMPTS
    assert await hotline.alert_failures() == 1
    assert await hotline.telegram.sender.idle()
    [alert] = [m for m in forum.messages if "收件箱" in (m.plain or "")]
    assert alert.message_thread_id is None
