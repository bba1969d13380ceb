"""WeChat's callback (bot/channels/wechat/callback.py) against the local WeChat server's
callbacks, signed and encrypted as WeChat does: stored once before the answer, whatever is
forged, stale, oversized or not WeChat's refused with nothing stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from bot.channels.wechat.callback import CALLBACK_PATH, MAX_BODY, WeChatAccount, WeChatCallback
from bot.http_server import HttpServer
from db.models import InboxUpdate
from db.session import create_engine, session_factory
from local_servers.wechat import LocalWeChat, random_encoding_aes_key
from local_servers.wechat.server import DEFAULT_APP_ID, DEFAULT_TOKEN

pytestmark = pytest.mark.postgres
KEY = random_encoding_aes_key()
DOCTYPE = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<xml><ToUserName>gh_x</ToUserName><FromUserName>oEvil</FromUserName>
<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&b;</Content><MsgId>1</MsgId></xml>"""


class Receiver:
    """The hotline's side: the callback on an HTTP server of its own, on the test's database."""

    def __init__(self, database_url: str, account: WeChatAccount) -> None:
        self.engine = create_engine(database_url)
        self.sessions = session_factory(self.engine)
        self.callback = WeChatCallback(account, sessions=self.sessions)
        self.server = HttpServer("127.0.0.1", 0, routes=self.callback.routes())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}{CALLBACK_PATH}"

    async def rows(self) -> list[InboxUpdate]:
        async with self.sessions() as session:
            return list((await session.exec(select(InboxUpdate).order_by(InboxUpdate.id))).all())


async def _receiver(database_url: str, mode: str) -> AsyncIterator[tuple[Receiver, LocalWeChat]]:
    account = WeChatAccount(
        app_id=DEFAULT_APP_ID,
        token=DEFAULT_TOKEN,
        encoding_aes_key=None if mode == "plaintext" else KEY,
    )
    receiver = Receiver(database_url, account)
    await receiver.server.start()
    wechat = LocalWeChat(
        encoding_aes_key=None if mode == "plaintext" else KEY,
        mode=mode,
        callback_url=receiver.url,
        reply_deadline=2.0,
    )
    try:
        async with wechat:
            yield receiver, wechat
    finally:
        await receiver.server.stop()
        await receiver.engine.dispose()


@pytest.fixture(params=["plaintext", "safe", "compatible"])
async def hotline_and_wechat(request, database_url: str):
    async for pair in _receiver(database_url, request.param):
        yield pair


@pytest.fixture
async def safe_pair(database_url: str):
    async for pair in _receiver(database_url, "safe"):
        yield pair


def _text(openid: str, content: str, msg_id: int) -> dict:
    return {
        "ToUserName": "gh_hotline",
        "FromUserName": openid,
        "CreateTime": int(time.time()),
        "MsgType": "text",
        "Content": content,
        "MsgId": msg_id,
    }


async def test_a_message_is_stored_once_before_the_answer(hotline_and_wechat) -> None:
    receiver, wechat = hotline_and_wechat
    assert await wechat.verify_url(), "the account's URL check passes"
    worker = wechat.follower("oWorkerA")
    delivery = await worker.send_text("老板欠我三个月工资 <b>&amp;</b>")
    assert delivery.outcome == "none" and len(delivery.tries) == 1, "answered success at once"
    [row] = await receiver.rows()
    assert (row.channel, row.person_key) == ("wechat", "wechat:oWorkerA")
    assert row.update_id == delivery.msg_id
    assert row.payload["Content"] == "老板欠我三个月工资 <b>&amp;</b>"
    assert row.status == "received"


async def test_the_same_message_three_times_at_once_is_one_row(hotline_and_wechat) -> None:
    receiver, wechat = hotline_and_wechat
    query, body = wechat.callbacks.signed_request(_text("oWorkerB", "第一条", 7001))
    answers = await asyncio.gather(*(wechat.callbacks.post_raw(query, body) for _ in range(3)))
    assert answers == [(200, "success")] * 3, "a repeat is answered, never refused"
    assert [r.update_id for r in await receiver.rows()] == [7001]


async def test_an_event_repeated_is_one_row_and_never_a_message_id(hotline_and_wechat) -> None:
    receiver, wechat = hotline_and_wechat
    fields = {
        "ToUserName": "gh_hotline",
        "FromUserName": "oWorkerC",
        "CreateTime": int(time.time()),
        "MsgType": "event",
        "Event": "subscribe",
    }
    query, body = wechat.callbacks.signed_request(fields)
    for _ in range(2):
        assert await wechat.callbacks.post_raw(query, body) == (200, "success")
    [row] = await receiver.rows()
    assert row.update_id < 0, "events have no MsgId: their key can never equal one"


async def test_forged_missing_stale_and_reused_signatures_store_nothing(
    hotline_and_wechat,
) -> None:
    receiver, wechat = hotline_and_wechat
    callbacks = wechat.callbacks
    query, body = callbacks.signed_request(_text("oWorkerD", "hi", 7002))
    forged = {**query, "signature": "0" * 40}
    assert (await callbacks.post_raw(forged, body))[0] == 403
    missing = {k: v for k, v in query.items() if k != "signature"}
    assert (await callbacks.post_raw(missing, body))[0] == 403
    old = str(int(time.time()) - 3600)
    stale_query, stale_body = callbacks.signed_request(_text("oWorkerD", "hi", 7003), timestamp=old)
    assert (await callbacks.post_raw(stale_query, stale_body))[0] == 403
    # A captured, correctly signed query with another body under it.
    assert (await callbacks.post_raw(query, body))[0] == 200
    _, other = callbacks.signed_request(_text("oWorkerD", "transfer the money", 7004))
    assert (await callbacks.post_raw(query, other))[0] == 403
    assert [r.update_id for r in await receiver.rows()] == [7002]
    assert not await wechat.follower("oWorkerD").quiet(0), "nothing was sent back"


async def test_a_doctype_an_oversized_body_and_garbage_are_refused(hotline_and_wechat) -> None:
    receiver, wechat = hotline_and_wechat
    callbacks = wechat.callbacks
    for body, status in (
        (DOCTYPE, 400),  # refused, never expanded
        (b"<xml><FromUserName>oX</FromUserName>" + b"a" * (MAX_BODY + 1) + b"</xml>", 413),
        (b"not xml at all", 400),
    ):
        query, _ = callbacks.signed_request(_text("oX", "x", 1))
        answer_status, _ = await callbacks.post_raw(query, body)
        assert answer_status == status, body[:40]
    assert await receiver.rows() == []


async def test_safe_mode_refuses_plaintext_a_wrong_msg_signature_and_another_account(
    safe_pair, database_url: str
) -> None:
    receiver, wechat = safe_pair
    callbacks = wechat.callbacks
    plain = LocalWeChat(mode="plaintext", callback_url=receiver.url)
    query, body = plain.callbacks.signed_request(_text("oWorkerE", "明文", 7005))
    assert (await callbacks.post_raw(query, body))[0] == 403, "the account encrypts"
    query, body = callbacks.signed_request(_text("oWorkerE", "密文", 7006))
    tampered = {**query, "msg_signature": "f" * 40}
    assert (await callbacks.post_raw(tampered, body))[0] == 403
    other = LocalWeChat(
        app_id="wxanotheraccount1", encoding_aes_key=KEY, mode="safe", callback_url=receiver.url
    )
    query, body = other.callbacks.signed_request(_text("oWorkerE", "别的公众号", 7007))
    assert (await callbacks.post_raw(query, body))[0] == 403, "another account's AppID"
    assert await receiver.rows() == []
    assert (await callbacks.post_raw(*callbacks.signed_request(_text("oWorkerE", "好", 7008))))[
        0
    ] == 200
    assert [r.update_id for r in await receiver.rows()] == [7008]


async def test_a_database_that_fails_gets_500_and_wechat_tries_again(tmp_path) -> None:
    account = WeChatAccount(app_id=DEFAULT_APP_ID, token=DEFAULT_TOKEN)
    receiver = Receiver(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'h.db'}", account)
    await receiver.server.start()
    try:
        async with LocalWeChat(callback_url=receiver.url, reply_deadline=1.0) as wechat:
            delivery = await wechat.follower("oWorkerF").send_text("在吗")
        assert [t.status for t in delivery.tries] == [500, 500, 500], "WeChat's three tries"
        assert delivery.outcome == "failed"
    finally:
        await receiver.server.stop()
        await receiver.engine.dispose()
