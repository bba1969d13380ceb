"""The hotline on a WeChat Official Account, beside Telegram: a worker follows the account on
the local WeChat server (safe mode, the customer-service quota enforced) and files a complaint
in Chinese; its card goes to the Telegram staff group, a counsellor answers from there, and the
answer reaches the worker in WeChat. Through the real Hotline, its HTTP server and its outbox."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel, col, select

from bot import cli
from bot.channels.wechat.callback import CALLBACK_PATH, WeChatAccount, WeChatCallback
from bot.channels.wechat.menu import build_menu
from bot.http_server import HttpServer
from bot.service import Hotline
from content.catalog import Catalog, ContentError
from db.migrate import downgrade, upgrade
from db.models import (
    Broadcast,
    BroadcastDelivery,
    BroadcastStatus,
    InboxUpdate,
    MediaFile,
    OutboxItem,
    Person,
    Ticket,
)
from db.session import create_engine, session_factory
from local_servers.wechat import FakeFollower, LocalWeChat, random_encoding_aes_key
from local_servers.wechat.server import DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_TOKEN
from tests import desk
from tests.processes import hotline_process, killed_after
from tests.test_forget import everything_stored
from tests.test_webhook import free_port, until
from tests.test_wechat_api import scratch_database

pytestmark = pytest.mark.postgres
KEY = random_encoding_aes_key()


class WeChatDesk:
    """The hotline with a WeChat account and a Telegram staff group, and the two platforms."""

    def __init__(self, hotline: Hotline, wechat: LocalWeChat, forum) -> None:
        self.hotline, self.wechat, self.forum = hotline, wechat, forum

    def follower(self, openid: str) -> FakeFollower:
        return self.wechat.follower(openid)


async def _start(
    api, start_hotline, *, mode: str = "safe", **settings
) -> AsyncIterator[WeChatDesk]:
    key = None if mode == "plaintext" else KEY
    wechat = LocalWeChat(encoding_aes_key=key, mode=mode)
    async with wechat:
        hotline, forum = await desk.start_desk(
            api,
            start_hotline,
            desk.COUNSELLOR_LI,
            wechat_app_id=DEFAULT_APP_ID,
            wechat_app_secret=DEFAULT_APP_SECRET,
            wechat_token=DEFAULT_TOKEN,
            wechat_encoding_aes_key=key,
            wechat_api_base_url=wechat.base_url,
            listen="127.0.0.1:0",
            **settings,
        )
        wechat.callback_url = f"http://127.0.0.1:{hotline.http.port}{CALLBACK_PATH}"
        yield WeChatDesk(hotline, wechat, forum)


@pytest.fixture
async def wechat_desk(api, start_hotline) -> AsyncIterator[WeChatDesk]:
    async for started in _start(api, start_hotline):
        yield started


async def heard(follower: FakeFollower, delivery_call) -> str:
    """Sends, and returns everything the worker reads of that turn (passive and custom)."""
    await delivery_call
    first = await follower.next_message(timeout=10)
    rest = await follower.quiet(0.3)
    return "\n".join(m.text or "" for m in [first, *rest])


CHINESE_COMPLAINT = (
    "中文",  # the language
    "1",  # 投诉 / 反映问题, by its number
    "同意",
    "拖欠工资",  # by its words
    "宏达电子厂",
    "玉山镇",
    "前进路88号",
    "老板三个月没发工资",
    "完成",
    "8500",
    "8月到10月",
    "完成",  # no evidence
    "跳过",  # no phone
    "匿名",
)


async def file_in_chinese(worker: FakeFollower) -> str:
    """Follows the account, files a wage complaint in Chinese; returns its reference."""
    await heard(worker, worker.subscribe())
    for answer in CHINESE_COMPLAINT:
        await heard(worker, worker.send_text(answer))
    submitted = await heard(worker, worker.send_text("确认提交"))
    assert "您的投诉编号是" in submitted, submitted
    return submitted.split("【HL-")[1].split("】")[0].join(("HL-", ""))


async def wait_for(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("the condition did not come true")
        await asyncio.sleep(0.05)


def card_of(forum, thread_id: int):
    return next(m for m in forum.topic_messages(thread_id) if m.button_texts)


async def test_a_complaint_filed_in_chinese_on_wechat_reaches_the_staff_and_their_answer_comes_back(
    api, wechat_desk: WeChatDesk
) -> None:
    wechat, forum = wechat_desk.wechat, wechat_desk.forum
    worker = wechat_desk.follower("oWorkerWang")
    reference = await file_in_chinese(worker)
    # Every answer of the walk went back as its callback's passive reply: no quota spent.
    assert all(d.outcome == "reply" for d in worker.deliveries), [
        (d.fields.get("Content"), d.outcome, d.error) for d in worker.deliveries
    ]
    assert all(m.via == "passive" for m in worker.messages)
    assert wechat.calls("/cgi-bin/message/custom/send") == []
    assert all(len(d.tries) == 1 for d in worker.deliveries), "WeChat never had to retry"
    # The card is in the Telegram staff group, in the ticket's own topic.
    await wait_for(lambda: len(forum.topics) == 1 and any(m.button_texts for m in forum.messages))
    thread = next(iter(forum.topics))
    card = card_of(forum, thread)
    assert reference in card.plain and "宏达电子厂" in card.plain
    # A counsellor claims it and writes: the worker reads both in WeChat, by custom/send.
    li = api.user(771, "Li")
    forum.press(li, "认领", message=card)
    claimed = await worker.next_message(timeout=10)
    assert claimed.via == "custom" and "Counsellor Li" in claimed.text
    forum.send(li, "您好，请问有<劳动合同>吗？", thread_id=thread)
    answer = await worker.next_message(timeout=10)
    assert answer.via == "custom" and answer.text == "【Counsellor Li】：您好，请问有<劳动合同>吗？"
    # A photo from the topic is fetched from Telegram and uploaded to WeChat, then its caption.
    forum.send_photo(li, thread_id=thread, caption="这是调解通知书")
    image, caption = await worker.next_messages(2, timeout=10)
    assert image.via == "custom" and image.msgtype == "image"
    assert wechat.media[image.media_id].type == "image"
    assert caption.text == "【Counsellor Li】：这是调解通知书"
    # The worker answers in WeChat: posted into the topic as the worker's words.
    got = await heard(worker, worker.send_text("没有签合同"))
    assert "转给工作人员" in got or "已转" in got, got
    await wait_for(
        lambda: any("没有签合同" in (m.plain or "") for m in forum.topic_messages(thread))
    )
    posted = [m for m in forum.topic_messages(thread) if "没有签合同" in (m.plain or "")]
    assert len(posted) == 1 and posted[0].plain == "工友：没有签合同"
    async with wechat_desk.hotline.sessions() as session:
        ticket = (await session.exec(select(Ticket).where(Ticket.reference == reference))).one()
        person = await session.get(Person, ticket.person_id)
    assert person.channel == "wechat" and person.external_id == "oWorkerWang"


async def claimed_case(api, wechat_desk: WeChatDesk, openid: str):
    """A worker's complaint filed on WeChat and claimed by Counsellor Li: (worker, thread)."""
    forum = wechat_desk.forum
    worker = wechat_desk.follower(openid)
    await file_in_chinese(worker)
    await wait_for(lambda: any(m.button_texts for m in forum.messages))
    thread = next(iter(forum.topics))
    forum.press(api.user(771, "Li"), "认领", message=card_of(forum, thread))
    assert "Counsellor Li" in (await worker.next_message(timeout=10)).text
    return worker, thread


async def pending_rows(hotline: Hotline) -> list[OutboxItem]:
    async with hotline.sessions() as session:
        found = await session.exec(
            select(OutboxItem).where(OutboxItem.channel == "wechat", OutboxItem.status == "pending")
        )
        return list(found.all())


async def test_past_the_quota_the_counsellors_messages_wait_for_the_workers_next_message(
    api, wechat_desk: WeChatDesk
) -> None:
    wechat, forum, hotline = wechat_desk.wechat, wechat_desk.forum, wechat_desk.hotline
    worker, thread = await claimed_case(api, wechat_desk, "oWorkerQuota")
    # WeChat's allowance now: 5 for the worker's last message and 3 for following within the
    # minute, less the claim's notice.
    left = wechat.quota_left("oWorkerQuota")
    assert left >= 4
    wechat.expire_tokens()  # and the access token runs out meanwhile: fetched again
    li = api.user(771, "Li")
    for n in range(1, left + 3):
        forum.send(li, f"第{n}条", thread_id=thread)
    got = await worker.next_messages(left, timeout=10)
    assert [m.text for m in got] == [f"【Counsellor Li】：第{n}条" for n in range(1, left + 1)]
    assert await worker.quiet(0.5) == [], "WeChat allows no more until the worker writes"
    assert wechat.quota_left("oWorkerQuota") == 0
    assert len(await pending_rows(hotline)) == 2  # kept, not failed and not dropped
    refused = [c for c in wechat.calls("/cgi-bin/message/custom/send") if c.errcode == 45047]
    assert len(refused) == 1, "one refusal parks the chat; the next row is not even tried"
    # The counsellors are told once, in the topic, why their messages wait.
    await wait_for(lambda: any("⏳" in (m.plain or "") for m in forum.topic_messages(thread)))
    told = [m.plain for m in forum.topic_messages(thread) if "⏳" in (m.plain or "")]
    assert len(told) == 1 and "48 小时内回复 5 条" in told[0]
    # The worker writes again: a new window, and what waited comes first, in its order.
    await worker.send_text("在吗？")
    got = await worker.next_messages(3, timeout=10)
    assert [m.text for m in got[:2]] == [
        f"【您不在时的消息】\n\n【Counsellor Li】：第{left + 1}条",
        f"【Counsellor Li】：第{left + 2}条",
    ]
    assert all(m.via == "custom" for m in got[:2])
    assert await pending_rows(hotline) == []


async def test_one_message_posted_three_times_at_once_is_one_turn(wechat_desk: WeChatDesk) -> None:
    wechat, hotline = wechat_desk.wechat, wechat_desk.hotline
    worker = wechat_desk.follower("oWorkerTwice")
    await heard(worker, worker.subscribe())
    fields = {
        "ToUserName": wechat.original_id,
        "FromUserName": "oWorkerTwice",
        "CreateTime": 1764633600,
        "MsgType": "text",
        "Content": "中文",
        "MsgId": wechat.next_msg_id(),
    }
    query, body = wechat.callbacks.signed_request(fields)
    answers = await asyncio.gather(*(wechat.callbacks.post_raw(query, body) for _ in range(3)))
    assert [status for status, _ in answers] == [200, 200, 200]
    replied = [text for _, text in answers if text != "success"]
    assert len(replied) == 1, answers  # the others are duplicates, answered without an effect
    assert "需要什么帮助" in wechat.callbacks.read_reply("oWorkerTwice", replied[0]).text
    assert await worker.quiet(0.5) == []  # nothing by custom/send either
    async with hotline.sessions() as session:
        rows = await session.exec(
            select(InboxUpdate).where(InboxUpdate.channel == "wechat", InboxUpdate.update_id > 0)
        )
        assert len(rows.all()) == 1


async def test_without_a_reply_budget_every_answer_goes_by_customer_service_message(
    api, start_hotline
) -> None:
    async for started in _start(api, start_hotline, wechat_reply_budget=0):
        worker = started.follower("oWorkerSlow")
        delivery = await worker.subscribe()
        assert delivery.outcome == "none"  # "success" at once
        first = await worker.next_message(timeout=10)
        assert first.via == "custom" and "中文" in first.text


async def test_a_callback_stored_by_a_run_that_died_is_answered_at_the_next_start(
    api, start_hotline, database_url: str
) -> None:
    """kill -9 between storing a message and answering it: the next run finds it stored and
    answers by customer-service message (the callback itself was lost with the process)."""
    wechat = LocalWeChat(encoding_aes_key=KEY, mode="safe", reply_deadline=1.0, callback_tries=1)
    async with wechat:
        dead = WeChatCallback(
            WeChatAccount(DEFAULT_APP_ID, DEFAULT_TOKEN, KEY),
            sessions=session_factory(engine := create_engine(database_url)),
            on_stored=_never_answer,
        )
        server = HttpServer("127.0.0.1", 0, routes=dead.routes())
        await server.start()
        wechat.callback_url = f"http://127.0.0.1:{server.port}{CALLBACK_PATH}"
        worker = wechat.follower("oWorkerKilled")
        delivery = await worker.send_text("你好")
        assert delivery.outcome == "failed"  # WeChat saw no answer in time
        await server.stop()
        await engine.dispose()
        hotline, _ = await desk.start_desk(
            api,
            start_hotline,
            wechat_app_id=DEFAULT_APP_ID,
            wechat_app_secret=DEFAULT_APP_SECRET,
            wechat_token=DEFAULT_TOKEN,
            wechat_encoding_aes_key=KEY,
            wechat_api_base_url=wechat.base_url,
            listen="127.0.0.1:0",
        )
        answer = await worker.next_message(timeout=10)
        assert answer.via == "custom" and "中文" in answer.text  # the language question
        async with hotline.sessions() as session:
            rows = (await session.exec(select(InboxUpdate))).all()
        assert [row.status for row in rows] == ["done"]


async def _never_answer(stored):
    """A process that stored the message and died before its answer."""
    await asyncio.sleep(3600)


async def test_hotline_wechat_menu_sets_the_menu_and_a_tap_runs_its_command(
    wechat_desk: WeChatDesk, database_url: str, monkeypatch
) -> None:
    wechat = wechat_desk.wechat
    for name, value in (
        ("DATABASE_URL", database_url),
        ("WECHAT_APP_ID", DEFAULT_APP_ID),
        ("WECHAT_APP_SECRET", DEFAULT_APP_SECRET),
        ("WECHAT_TOKEN", DEFAULT_TOKEN),
        ("WECHAT_API_BASE_URL", wechat.base_url),
    ):
        monkeypatch.setenv(name, value)
    assert await asyncio.to_thread(cli.main, ["wechat", "menu"]) == 0
    assert [b["name"] for b in wechat.menu["button"]] == ["我要投诉", "我的投诉", "更多服务"]
    under = wechat.menu["button"][2]["sub_button"]
    assert [b["key"] for b in under] == [
        "cmd:talk",
        "cmd:legalaid",
        "cmd:jobs",
        "cmd:guide",
        "cmd:help",
    ]
    worker = wechat_desk.follower("oWorkerMenu")
    await heard(worker, worker.subscribe())
    await heard(worker, worker.send_text("中文"))
    got = await heard(worker, worker.click("cmd:complaint"))
    assert "提交前请先了解" in got  # the complaint's first question: its consent
    got = await heard(worker, worker.press("我的投诉"))
    assert "您还没有" in got or "我的投诉" in got, got


def test_a_menu_wechat_would_refuse_is_refused_before_it_is_sent(tmp_path) -> None:
    content = tmp_path / "content"
    shutil.copytree(Catalog().folder, content)
    menu = content / "wechat_menu.yaml"
    menu.write_text(menu.read_text().replace("wechat.menu.services", "menu.legal_aid"))
    with pytest.raises(ContentError, match="over WeChat's 16 bytes"):
        build_menu(Catalog(content))


async def test_a_voice_note_and_a_location_answer_questions_and_evidence_reaches_the_topic(
    wechat_desk: WeChatDesk,
) -> None:
    """WeChat's speech recognition: a voice note's transcript is the answer where words are
    asked, and a shared location's label where the district is; at the evidence step the
    voice note and a photo are the evidence, fetched from WeChat (media/get) into the
    ticket's topic, the transcript as the voice note's caption."""
    forum = wechat_desk.forum
    worker = wechat_desk.follower("oWorkerVoice")
    await heard(worker, worker.subscribe())
    walk = list(CHINESE_COMPLAINT)
    for answer in walk[: walk.index("宏达电子厂")]:
        await heard(worker, worker.send_text(answer))
    got = await heard(worker, worker.send_voice(recognition="宏达电子厂"))
    assert "哪个区或镇" in got, got  # the employer, said aloud, was taken as typed
    place = worker.send_location(31.38, 120.98, label="江苏省苏州市昆山市玉山镇前进西路")
    assert "工作地点在哪里" in await heard(worker, place)  # the district read from the label
    for answer in walk[walk.index("玉山镇") + 1 : walk.index("8月到10月") + 1]:
        await heard(worker, worker.send_text(answer))
    assert "已收到第 1 份证据" in await heard(worker, worker.send_image())
    got = await heard(worker, worker.send_voice(recognition="老板说下个月再发"))
    assert "已收到第 2 份证据" in got  # a voice note where evidence is asked is evidence
    for answer in walk[walk.index("8月到10月") + 1 :]:
        await heard(worker, worker.send_text(answer))
    submitted = await heard(worker, worker.send_text("确认提交"))
    assert "您的投诉编号是" in submitted
    await wait_for(lambda: len([m for m in forum.messages if m.kind != "text"]) >= 2)
    thread = next(iter(forum.topics))
    card = card_of(forum, thread)
    assert "宏达电子厂" in card.plain and "渠道: 微信" in card.plain and "2 份" in card.plain
    files = [m for m in forum.topic_messages(thread) if m.kind != "text"]
    assert [m.kind for m in files] == ["photo", "document"]
    assert files[1].plain == "工友：老板说下个月再发"
    async with wechat_desk.hotline.sessions() as session:
        employer, district = (await session.exec(select(Ticket.employer, Ticket.district))).one()
    assert (employer, district) == ("宏达电子厂", "yushan")


async def test_forget_on_wechat_leaves_neither_the_openid_nor_what_the_worker_said(
    api, wechat_desk: WeChatDesk
) -> None:
    """Also after a counsellor claimed the ticket and wrote in its Telegram topic (the staff
    group's lanes are Telegram's, whichever channel the worker is on)."""
    worker, thread = await claimed_case(api, wechat_desk, "oWorkerForgetMe")
    wechat_desk.forum.send(api.user(771, "Li"), "宏达电子厂在哪条路？", thread_id=thread)
    await worker.next_message(timeout=10)
    assert "删除" in await heard(worker, worker.send_text("/forget"))
    done = await heard(worker, worker.send_text("确定删除"))
    assert "已删除" in done or "删除了" in done, done
    await wechat_desk.hotline.telegram.sender.idle()
    stored = await everything_stored(wechat_desk.hotline)
    for secret in ("oWorkerForgetMe", "宏达电子厂", "前进路88号", "老板三个月没发工资"):
        assert secret not in stored, secret


async def broadcast_and_wait(hotline: Hotline, text: str) -> dict[str, str]:
    """`hotline broadcast send --text-zh TEXT`, then each recipient's delivery once done."""
    assert await asyncio.to_thread(cli.main, ["broadcast", "send", "--text-zh", text]) == 0
    for _ in range(150):
        async with hotline.sessions() as session:
            broadcast = (
                await session.exec(select(Broadcast).order_by(col(Broadcast.id).desc()))
            ).first()
        if broadcast.status == BroadcastStatus.DONE:
            break
        await asyncio.sleep(0.1)
    assert broadcast.status == BroadcastStatus.DONE
    async with hotline.sessions() as session:
        rows = await session.exec(
            select(Person.external_id, BroadcastDelivery.status)
            .join(BroadcastDelivery, BroadcastDelivery.person_id == Person.id)
            .where(BroadcastDelivery.broadcast_id == broadcast.id)
        )
        return dict(rows.all())


async def test_broadcasts_reach_wechat_workers_by_mass_send_four_a_month(
    wechat_desk: WeChatDesk, database_url: str, monkeypatch
) -> None:
    """Mass send reaches a follower whatever their 48-hour window, at most 4 a month on a
    service account: the fifth is reported as not delivered, never sent anyway."""
    wechat, hotline = wechat_desk.wechat, wechat_desk.hotline
    near, away = wechat_desk.follower("oWorkerNear"), wechat_desk.follower("oWorkerAway")
    for worker in (near, away):
        await heard(worker, worker.subscribe())
        assert "通知" in await heard(worker, worker.send_text("中文"))  # subscribed to notices
    wechat.close_quota("oWorkerAway")  # 48 hours have passed for them
    monkeypatch.setenv("DATABASE_URL", database_url)
    for n in range(1, 5):
        outcome = await broadcast_and_wait(hotline, f"第{n}期：维权活动周一开始")
        assert outcome == {"oWorkerNear": "sent", "oWorkerAway": "sent"}
        for worker in (near, away):
            notice = await worker.next_message(timeout=10)
            assert notice.via == "mass" and f"第{n}期" in notice.text
    assert len(wechat.mass_sends) == 4, "one mass send a broadcast for both"
    assert await broadcast_and_wait(hotline, "第5期") == {
        "oWorkerNear": "failed",
        "oWorkerAway": "failed",
    }
    assert len(wechat.mass_sends) == 4 and await near.quiet(0.3) == []
    assert wechat.calls("/cgi-bin/message/custom/send") == []
    assert await pending_rows(hotline) == []


async def test_a_wechat_only_centre_runs_without_a_telegram_token(api, start_hotline) -> None:
    """No TELEGRAM_BOT_TOKEN: the hotline serves the WeChat account alone (tickets are kept
    for the staff, who have no Telegram group to see them in), and never calls Telegram."""
    async for started in _start(api, start_hotline, telegram_bot_token=None):
        hotline = started.hotline
        assert hotline.telegram is None and hotline.application is None
        worker = started.follower("oWorkerOnlyWeChat")
        reference = await file_in_chinese(worker)
        assert all(d.outcome == "reply" for d in worker.deliveries)
        assert await hotline.sender.idle()
        async with hotline.sessions() as session:
            ticket = (await session.exec(select(Ticket))).one()
        assert ticket.reference == reference
        assert await pending_rows(hotline) == []
        assert started.forum.messages == [] and not api.polling
        assert "inbox-prune" in hotline.periodic.names()


async def test_a_wechat_workers_evidence_is_kept_past_wechats_three_days_and_forgotten(
    wechat_desk: WeChatDesk,
) -> None:
    wechat, hotline = wechat_desk.wechat, wechat_desk.hotline
    worker = wechat_desk.follower("oWorkerEvidence")
    photo = b"\xff\xd8\xff\xe0" + "工资条".encode() * 100 + b"\xff\xd9"
    walk = list(CHINESE_COMPLAINT)
    await heard(worker, worker.subscribe())
    for answer in walk[: walk.index("8月到10月") + 1]:
        await heard(worker, worker.send_text(answer))
    assert "已收到第 1 份证据" in await heard(worker, worker.send_image(photo))
    for answer in [*walk[walk.index("8月到10月") + 1 :], "确认提交"]:
        await heard(worker, worker.send_text(answer))
    assert await hotline.wechat.keep_evidence() == 1
    assert await hotline.wechat.keep_evidence() == 0, "kept once"
    async with hotline.sessions() as session:
        kept = (await session.exec(select(MediaFile))).one()
    assert kept.channel == "wechat" and kept.content == photo and kept.size == len(photo)
    wechat.media.clear()  # three days later WeChat has deleted it: the kept copy remains
    assert "删除" in await heard(worker, worker.send_text("/forget"))
    assert "已删除" in await heard(worker, worker.send_text("确定删除"))
    async with hotline.sessions() as session:
        assert (await session.exec(select(MediaFile))).all() == []


async def test_migration_0010_makes_the_table_the_model_describes(
    database_url: str, tmp_path
) -> None:
    async with scratch_database(database_url, tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0009")
            await upgrade(engine)
            async with engine.connect() as connection:
                differences = await connection.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync), SQLModel.metadata
                    )
                )
            assert [d for d in differences if "media_file" in repr(d)] == []
            await downgrade(engine, "0009")
            async with engine.connect() as connection:
                tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            assert "media_file" not in tables
        finally:
            await engine.dispose()


async def test_kill_9_between_storing_a_callback_and_answering_it_loses_nothing(
    api, database_url: str
) -> None:
    """`hotline run` stores the worker's message and dies before its answer; WeChat's
    retries find nobody; the restarted hotline runs the stored message once and answers by
    customer-service message, and WeChat's later retry of it is a repeat with no effect."""
    port = free_port()
    async with LocalWeChat(
        encoding_aes_key=KEY,
        mode="safe",
        callback_url=f"http://127.0.0.1:{port}{CALLBACK_PATH}",
        reply_deadline=1.0,
        callback_tries=3,
    ) as wechat:
        env = {
            "WECHAT_APP_ID": DEFAULT_APP_ID,
            "WECHAT_APP_SECRET": DEFAULT_APP_SECRET,
            "WECHAT_TOKEN": DEFAULT_TOKEN,
            "WECHAT_ENCODING_AES_KEY": KEY,
            "WECHAT_API_BASE_URL": wechat.base_url,
            "HOTLINE_LISTEN": f"127.0.0.1:{port}",
        }
        worker = wechat.follower("oWorkerKill9")
        dying = hotline_process(api, database_url, **env, HOTLINE_TEST_DIE_AFTER_STORE="1")
        with killed_after(dying):
            await until(lambda: api.polling, timeout=60)  # up: it polls Telegram too
            delivery = await worker.send_text("你好")
            await until(lambda: dying.poll() is not None, timeout=30)
        assert dying.returncode == -signal.SIGKILL
        assert delivery.outcome == "failed"  # no try was answered: WeChat gave up
        restarted = hotline_process(api, database_url, **env)
        try:
            answer = await worker.next_message(timeout=60)
            assert answer.via == "custom" and "中文" in answer.text  # the language question
            query, body = wechat.callbacks.signed_request(delivery.fields)
            assert await wechat.callbacks.post_raw(query, body) == (200, "success")
            assert await worker.quiet(1.0) == []
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(20) == 0, restarted.stderr.read()
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            rows = (await session.exec(select(InboxUpdate))).all()
        assert [(row.channel, row.status) for row in rows] == [("wechat", "done")]
    finally:
        await engine.dispose()


async def test_the_words_wechat_adds_are_in_the_workers_language(wechat_desk: WeChatDesk) -> None:
    worker = wechat_desk.follower("oWorkerEnglish")
    await heard(worker, worker.subscribe())
    await heard(worker, worker.send_text("English"))
    got = await heard(worker, worker.send_text("File a complaint"))
    assert "Reply: " in got and "回复：" not in got, got
