"""The local WeChat server, spoken to over HTTP as the bot will, and its callback client
against a receiver written here by hand.

The rest of the WeChat tests trust this server to behave like WeChat, so its API is checked
through plain aiohttp requests, and its signing and encryption through an independent
implementation in this file (cryptography's AES, padding removed by hand).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from xml.etree import ElementTree

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from local_servers.wechat import LocalWeChat, random_encoding_aes_key

APP_ID = "wx1234567890abcdef"
APP_SECRET = "fedcba9876543210fedcba9876543210"
START = 1_717_000_000.0  # 2024-05-30 00:26 in Beijing


class Clock:
    """WeChat's rules run on this clock; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def wechat(clock: Clock) -> AsyncIterator[LocalWeChat]:
    async with LocalWeChat(app_id=APP_ID, app_secret=APP_SECRET, clock=clock) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def api(
    http: aiohttp.ClientSession,
    wechat: LocalWeChat,
    method: str,
    path: str,
    body: dict | None = None,
    **params: str,
) -> dict:
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    url = f"{wechat.base_url}/cgi-bin/{path}"
    async with http.request(method, url, params=params, data=data) as response:
        assert response.status == 200
        return await response.json()


async def new_token(http: aiohttp.ClientSession, wechat: LocalWeChat) -> str:
    answer = await api(
        http,
        wechat,
        "GET",
        "token",
        grant_type="client_credential",
        appid=APP_ID,
        secret=APP_SECRET,
    )
    return answer["access_token"]


async def stable_token(
    http: aiohttp.ClientSession, wechat: LocalWeChat, *, force: bool = False
) -> dict:
    body = {
        "grant_type": "client_credential",
        "appid": APP_ID,
        "secret": APP_SECRET,
        "force_refresh": force,
    }
    return await api(http, wechat, "POST", "stable_token", body)


async def menu_info(http: aiohttp.ClientSession, wechat: LocalWeChat, token: str) -> dict:
    """A cheap authorized call, to see whether a token is accepted."""
    return await api(http, wechat, "GET", "get_current_selfmenu_info", access_token=token)


async def send_text(
    http: aiohttp.ClientSession, wechat: LocalWeChat, token: str, openid: str, text: str
) -> int:
    body = {"touser": openid, "msgtype": "text", "text": {"content": text}}
    answer = await api(http, wechat, "POST", "message/custom/send", body, access_token=token)
    return answer["errcode"]


# --- access tokens ---


async def test_token_has_an_expiry_and_checks_the_credentials(http, wechat):
    good = await api(
        http,
        wechat,
        "GET",
        "token",
        grant_type="client_credential",
        appid=APP_ID,
        secret=APP_SECRET,
    )
    assert good["expires_in"] == 7200 and len(good["access_token"]) > 100

    wrong_secret = await api(
        http, wechat, "GET", "token", grant_type="client_credential", appid=APP_ID, secret="x"
    )
    wrong_appid = await api(
        http, wechat, "GET", "token", grant_type="client_credential", appid="wx0", secret="x"
    )
    wrong_grant = await api(
        http, wechat, "GET", "token", grant_type="password", appid=APP_ID, secret=APP_SECRET
    )
    assert wrong_secret["errcode"] == 40125 and "invalid appsecret" in wrong_secret["errmsg"]
    assert wrong_appid["errcode"] == 40013
    assert wrong_grant["errcode"] == 40002
    assert [r.errcode for r in wechat.calls("token")] == [0, 40125, 40013, 40002]


async def test_a_new_token_call_invalidates_the_previous_token(http, wechat):
    first = await new_token(http, wechat)
    assert (await menu_info(http, wechat, first))["is_menu_open"] == 0
    second = await new_token(http, wechat)

    assert (await menu_info(http, wechat, first))["errcode"] == 40001
    assert (await menu_info(http, wechat, second))["is_menu_open"] == 0


async def test_token_overlap_keeps_the_previous_token_for_a_while(http, wechat, clock):
    wechat.token_overlap = 300.0  # WeChat's promise: old and new both work for 5 minutes
    first = await new_token(http, wechat)
    await new_token(http, wechat)
    assert "errcode" not in await menu_info(http, wechat, first)
    clock.advance(300)
    assert (await menu_info(http, wechat, first))["errcode"] == 40001


async def test_stable_token_is_kept_until_force_refresh_and_apart_from_token(http, wechat, clock):
    first = await stable_token(http, wechat)
    clock.advance(1000)
    again = await stable_token(http, wechat)
    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] == 7200 - 1000

    await new_token(http, wechat)  # the other kind: no effect on the stable token
    assert "errcode" not in await menu_info(http, wechat, first["access_token"])

    refreshed = await stable_token(http, wechat, force=True)
    assert refreshed["access_token"] != first["access_token"]
    assert (await menu_info(http, wechat, first["access_token"]))["errcode"] == 40001
    assert "errcode" not in await menu_info(http, wechat, refreshed["access_token"])

    wrong = await api(
        http,
        wechat,
        "POST",
        "stable_token",
        {"grant_type": "client_credential", "appid": APP_ID, "secret": "nope"},
    )
    assert wrong["errcode"] == 40125


async def test_expired_missing_and_malformed_tokens(http, wechat, clock):
    wechat.token_lifetime = 60
    token = await new_token(http, wechat)
    clock.advance(59)
    assert "errcode" not in await menu_info(http, wechat, token)
    clock.advance(1)
    assert (await menu_info(http, wechat, token))["errcode"] == 42001

    fresh = await new_token(http, wechat)
    wechat.expire_tokens()  # the test hook: every token expires now
    assert (await menu_info(http, wechat, fresh))["errcode"] == 42001
    assert (await menu_info(http, wechat, "not a token!"))["errcode"] == 40014
    missing = await api(http, wechat, "GET", "get_current_selfmenu_info")
    assert missing["errcode"] == 41001


# --- the customer-service quota ---


async def test_a_worker_message_allows_five_sends_within_48_hours(http, wechat, clock):
    token = await new_token(http, wechat)
    worker = wechat.follower("o-worker-1")
    assert await send_text(http, wechat, token, worker.openid, "too early") == 45015

    delivery = await worker.send_text("我要投诉")  # no callback URL: stays on WeChat's side
    assert delivery.outcome == "no_server" and delivery.fields["Content"] == "我要投诉"
    codes = [await send_text(http, wechat, token, worker.openid, f"回复 {n}") for n in range(6)]
    assert codes == [0, 0, 0, 0, 0, 45047]
    seen = await worker.next_messages(5, timeout=1)
    assert [m.text for m in seen] == [f"回复 {n}" for n in range(5)]
    assert {m.via for m in seen} == {"custom"}

    clock.advance(47 * 3600)
    await worker.send_text("还在吗")  # renews the window and the five
    assert wechat.quota_left(worker.openid) == 5
    clock.advance(47 * 3600)
    token = await new_token(http, wechat)  # tokens last two hours
    assert await send_text(http, wechat, token, worker.openid, "still open") == 0
    clock.advance(3600)
    assert await send_text(http, wechat, token, worker.openid, "closed") == 45015
    assert len(worker.messages) == 6


async def test_following_or_a_menu_click_allows_three_within_a_minute(http, wechat, clock):
    token = await new_token(http, wechat)
    worker = wechat.follower("o-new", following=False)
    await worker.subscribe()
    codes = [await send_text(http, wechat, token, worker.openid, "欢迎") for _ in range(4)]
    assert codes == [0, 0, 0, 45047]

    await worker.click("MY_TICKETS")
    clock.advance(59)
    assert await send_text(http, wechat, token, worker.openid, "你的投诉") == 0
    clock.advance(1)
    assert await send_text(http, wechat, token, worker.openid, "too late") == 45015

    await worker.view("https://example.org/guide")  # a link button grants nothing
    assert wechat.quota_left(worker.openid) == 0


async def test_unfollowed_and_unknown_openids_are_refused(http, wechat):
    token = await new_token(http, wechat)
    worker = wechat.follower("o-leaving")
    await worker.send_text("再见")
    await worker.unsubscribe()
    assert await send_text(http, wechat, token, worker.openid, "别走") == 43004
    assert await send_text(http, wechat, token, "o-stranger", "hello") == 40003
    with pytest.raises(RuntimeError):
        await worker.send_text("can't: not following")
    assert worker.messages == []


async def test_text_over_2048_bytes_is_refused_without_using_the_quota(http, wechat):
    token = await new_token(http, wechat)
    worker = wechat.follower("o-long")
    await worker.send_text("请说详细")
    assert await send_text(http, wechat, token, worker.openid, "工" * 683) == 45002  # 2049 bytes
    assert await send_text(http, wechat, token, worker.openid, "") == 44004
    assert wechat.quota_left(worker.openid) == 5
    assert await send_text(http, wechat, token, worker.openid, "工" * 682 + "ab") == 0  # 2048
    assert len((await worker.next_message(timeout=1)).text.encode()) == 2048


async def test_msgmenu_and_bizmsgmenu_links_are_tappable(http, wechat):
    token = await new_token(http, wechat)
    worker = wechat.follower("o-choices")
    await worker.send_text("工资")
    menu = {
        "touser": worker.openid,
        "msgtype": "msgmenu",
        "msgmenu": {
            "head_content": "拖欠了多久？",
            "list": [{"id": "1", "content": "一个月"}, {"id": "2", "content": "三个月"}],
            "tail_content": "点选一项",
        },
    }
    answer = await api(http, wechat, "POST", "message/custom/send", menu, access_token=token)
    assert answer["errcode"] == 0
    shown = await worker.next_message(timeout=1)
    assert shown.text == "拖欠了多久？\n一个月\n三个月\n点选一项"
    tapped = await worker.tap("三个月")
    assert tapped.fields["Content"] == "三个月" and tapped.fields["bizmsgmenuid"] == "2"

    link = '<a href="weixin://bizmsgmenu?msgmenucontent=是&msgmenuid=y">是</a>'
    assert await send_text(http, wechat, token, worker.openid, f"确认吗？{link}") == 0
    confirm = await worker.next_message(timeout=1)
    assert confirm.text == "确认吗？是" and [c.id for c in confirm.choices] == ["y"]
    assert (await worker.tap(0)).fields["bizmsgmenuid"] == "y"


# --- media ---


async def test_media_round_trip(http, wechat, clock):
    token = await new_token(http, wechat)
    photo = b"\xff\xd8\xff" + os.urandom(5000) + b"\xff\xd9"

    async def upload(kind: str, filename: str, data: bytes) -> dict:
        form = aiohttp.FormData()
        form.add_field("media", data, filename=filename, content_type="image/jpeg")
        url = f"{wechat.base_url}/cgi-bin/media/upload"
        params = {"access_token": token, "type": kind}
        async with http.post(url, params=params, data=form) as response:
            return await response.json()

    uploaded = await upload("image", "card.jpg", photo)
    assert uploaded["type"] == "image" and uploaded["created_at"] == int(START)
    url = f"{wechat.base_url}/cgi-bin/media/get"
    params = {"access_token": token, "media_id": uploaded["media_id"]}
    async with http.get(url, params=params) as response:
        assert response.content_type == "image/jpeg"
        assert await response.read() == photo

    assert (await upload("sticker", "card.jpg", photo))["errcode"] == 40004
    assert (await upload("image", "card.exe", photo))["errcode"] == 40005
    assert (await upload("thumb", "thumb.jpg", photo * 20))["errcode"] == 40012
    missing = await api(http, wechat, "GET", "media/get", access_token=token, media_id="nope")
    assert missing["errcode"] == 40007

    worker = wechat.follower("o-photo")
    sent = await worker.send_image(photo)
    async with http.get(sent.fields["PicUrl"]) as response:
        assert await response.read() == photo
    params["media_id"] = sent.fields["MediaId"]
    async with http.get(url, params=params) as response:
        assert await response.read() == photo

    clock.advance(3 * 24 * 3600)  # temporary media last three days
    params["access_token"] = await new_token(http, wechat)
    expired = await api(http, wechat, "GET", "media/get", **params)
    assert expired["errcode"] == 40007


# --- the custom menu ---


async def test_menu_validation_and_read_back(http, wechat):
    token = await new_token(http, wechat)

    async def create(buttons: list) -> int:
        body = {"button": buttons}
        answer = await api(http, wechat, "POST", "menu/create", body, access_token=token)
        return answer["errcode"]

    click = {"type": "click", "name": "投诉", "key": "COMPLAINT"}
    assert await create([]) == 40016
    assert await create([click] * 4) == 40016
    assert await create([{**click, "name": "我要投诉工资问题"}]) == 40018  # 24 bytes > 16
    assert await create([{**click, "key": "K" * 129}]) == 40019
    assert await create([{"type": "view", "name": "指南"}]) == 40020
    assert await create([{"type": "poke", "name": "戳"}]) == 40017
    subs = [{"type": "click", "name": f"项{n}", "key": f"K{n}"} for n in range(6)]
    assert await create([{"name": "服务", "sub_button": subs}]) == 40023
    long_sub = {"type": "click", "name": "长" * 21, "key": "K"}  # 63 bytes > 60
    assert await create([{"name": "服务", "sub_button": [long_sub]}]) == 40025
    assert wechat.menu is None

    menu = [
        click,
        {
            "name": "服务",
            "sub_button": [*subs[:4], {"type": "view", "name": "指南", "url": "https://g.cn"}],
        },
        {"type": "click", "name": "找人工", "key": "HUMAN"},
    ]
    assert await create(menu) == 0
    read = await api(http, wechat, "GET", "menu/get", access_token=token)
    assert [b["name"] for b in read["menu"]["button"]] == ["投诉", "服务", "找人工"]
    info = await menu_info(http, wechat, token)
    assert info["is_menu_open"] == 1
    assert len(info["selfmenu_info"]["button"][1]["sub_button"]["list"]) == 5

    escaped = json.dumps({"button": [click]}).encode()  # \u6295\u8bc9: refused, as by WeChat
    url = f"{wechat.base_url}/cgi-bin/menu/create"
    async with http.post(url, params={"access_token": token}, data=escaped) as response:
        assert (await response.json())["errcode"] == 40033

    worker = wechat.follower("o-menu")
    pressed = await worker.press("找人工")
    assert pressed.fields["Event"] == "CLICK" and pressed.fields["EventKey"] == "HUMAN"
    assert "MsgId" not in pressed.fields
    with pytest.raises(LookupError):
        await worker.click("NOT_IN_MENU")


# --- mass send ---


async def test_mass_send_clientmsgid_is_sent_once(http, wechat):
    token = await new_token(http, wechat)
    workers = [wechat.follower(f"o-mass-{n}") for n in range(3)]
    body = {
        "touser": [w.openid for w in workers],
        "msgtype": "text",
        "text": {"content": "周六法律咨询"},
        "clientmsgid": "broadcast-7",
    }
    first = await api(http, wechat, "POST", "message/mass/send", body, access_token=token)
    assert first["errcode"] == 0 and first["msg_id"]
    again = await api(http, wechat, "POST", "message/mass/send", body, access_token=token)
    assert again["errcode"] == 45065 and again["msg_id"] == first["msg_id"]
    assert [len(w.messages) for w in workers] == [1, 1, 1]
    assert workers[0].messages[0].via == "mass"
    assert len(wechat.mass_sends) == 1

    alone = {**body, "touser": [workers[0].openid], "clientmsgid": "broadcast-8"}
    refused = await api(http, wechat, "POST", "message/mass/send", alone, access_token=token)
    assert refused["errcode"] == 40130
    too_long = {**body, "clientmsgid": "x" * 65}
    refused = await api(http, wechat, "POST", "message/mass/send", too_long, access_token=token)
    assert refused["errcode"] == 45067


async def test_mass_send_reaches_a_follower_four_times_a_month(http, wechat, clock):
    token = await new_token(http, wechat)
    a, b, gone = (wechat.follower(o) for o in ("o-a", "o-b", "o-gone"))
    await gone.unsubscribe()

    async def mass(n: int, to: list[str]) -> int:
        body = {"touser": to, "msgtype": "text", "text": {"content": f"通知 {n}"}}
        body["clientmsgid"] = f"notice-{n}"
        answer = await api(http, wechat, "POST", "message/mass/send", body, access_token=token)
        return answer["errcode"]

    for n in range(3):
        assert await mass(n, ["o-a", "o-b"]) == 0
    assert await mass(3, ["o-a", "o-gone"]) == 0  # a: 4th this month
    assert await mass(4, ["o-a", "o-b"]) == 0
    last = wechat.mass_sends[-1]
    assert last.delivered == ["o-b"] and last.over_monthly_limit == ["o-a"]
    assert wechat.mass_sends[3].not_following == ["o-gone"]
    assert wechat.mass_received("o-a") == 4 and len(a.messages) == 4
    assert len(b.messages) == 4 and gone.messages == []

    clock.advance(3 * 24 * 3600)  # June in Beijing: a new month
    token = await new_token(http, wechat)
    assert await mass(5, ["o-a", "o-b"]) == 0
    assert wechat.mass_sends[-1].delivered == ["o-a", "o-b"]


# --- frequency cap, faults and the record ---


async def test_frequency_cap_answers_45009(http, wechat, clock):
    token = await new_token(http, wechat)
    wechat.calls_per_second = 2
    answers = [await menu_info(http, wechat, token) for _ in range(3)]
    assert [a.get("errcode", 0) for a in answers] == [0, 0, 45009]
    clock.advance(1)
    assert "errcode" not in await menu_info(http, wechat, token)


async def test_scripted_faults_and_the_request_record(http, wechat):
    token = await new_token(http, wechat)
    wechat.follower("o-rec")
    wechat.fail("message/custom/send", errcode=-1)
    wechat.fail("message/custom/send", status=503)
    assert await send_text(http, wechat, token, "o-rec", "x") == -1
    url = f"{wechat.base_url}/cgi-bin/message/custom/send"
    async with http.post(url, params={"access_token": token}, data=b"{}") as response:
        assert response.status == 503
    assert await send_text(http, wechat, token, "o-rec", "x") == 45015

    recorded = wechat.calls("message/custom/send")
    assert [r.errcode for r in recorded] == [-1, -1, 45015]
    assert recorded[-1].json == {"touser": "o-rec", "msgtype": "text", "text": {"content": "x"}}
    assert recorded[-1].query["access_token"] == token and recorded[-1].method == "POST"
    wrong_method = await api(http, wechat, "GET", "message/custom/send", access_token=token)
    assert wrong_method["errcode"] == 43002


# --- the callback client, against a receiver written here ---


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    return base64.b64decode(encoding_aes_key + "=")


def open_sealed(encoding_aes_key: str, encrypted: str) -> tuple[str, str]:
    """(message, AppID), by WeChat's documented layout; the padding removed by hand."""
    key = aes_key(encoding_aes_key)
    raw = base64.b64decode(encrypted)
    assert len(raw) % 32 == 0, "padded to 32-byte blocks"
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(raw) + decryptor.finalize()
    pad = plain[-1]
    assert 1 <= pad <= 32 and plain[-pad:] == bytes([pad]) * pad
    plain = plain[:-pad]
    length = int.from_bytes(plain[16:20], "big")
    return plain[20 : 20 + length].decode(), plain[20 + length :].decode()


def seal(encoding_aes_key: str, app_id: str, message: str, *, block: int = 32) -> str:
    key = aes_key(encoding_aes_key)
    body = message.encode()
    plain = os.urandom(16) + len(body).to_bytes(4, "big") + body + app_id.encode()
    pad = block - len(plain) % block
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def xml_fields(text: str) -> dict[str, str]:
    return {child.tag: child.text or "" for child in ElementTree.fromstring(text)}


def text_reply(fields: dict[str, str], content: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{fields['FromUserName']}]]></ToUserName>"
        f"<FromUserName><![CDATA[{fields['ToUserName']}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content></xml>"
    )


def sealed_reply(
    wechat: LocalWeChat, reply: str, *, good_signature: bool = True, block: int = 32
) -> str:
    encrypted = seal(wechat.encoding_aes_key or "", wechat.app_id, reply, block=block)
    timestamp, nonce = str(int(time.time())), "1357924680"
    signed = sign(wechat.token, timestamp, nonce, encrypted) if good_signature else "0" * 40
    return (
        f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{signed}]]></MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )


class Receiver:
    """The bot's callback, by hand: checks the signatures, decrypts, answers `answer`."""

    def __init__(self, wechat: LocalWeChat) -> None:
        self.wechat = wechat
        self.posts: list[dict] = []  # query, outer body fields, message fields
        self.answer: Callable[[dict[str, str]], Awaitable[str]] = self._success
        self.token: str | None = None  # the bot's Token, when not the account's
        self.url = ""

    @staticmethod
    async def _success(fields: dict[str, str]) -> str:
        return "success"

    async def handle(self, request: web.Request) -> web.Response:
        query, token = request.query, self.token or self.wechat.token
        if sign(token, query["timestamp"], query["nonce"]) != query.get("signature"):
            return web.Response(status=403)
        if request.method == "GET":
            return web.Response(text=query["echostr"])
        outer = xml_fields(await request.text())
        fields = outer
        if query.get("encrypt_type") == "aes":
            expected = sign(token, query["timestamp"], query["nonce"], outer["Encrypt"])
            if expected != query.get("msg_signature"):
                return web.Response(status=403)
            message, app_id = open_sealed(self.wechat.encoding_aes_key or "", outer["Encrypt"])
            assert app_id == self.wechat.app_id
            fields = xml_fields(message)
        self.posts.append({"query": dict(query), "outer": outer, "fields": fields})
        return web.Response(text=await self.answer(fields))


@pytest.fixture
async def receiver(wechat: LocalWeChat) -> AsyncIterator[Receiver]:
    bot = Receiver(wechat)
    app = web.Application()
    app.router.add_route("*", "/wechat", bot.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    bot.url = f"http://127.0.0.1:{sock.getsockname()[1]}/wechat"
    wechat.callback_url = bot.url
    wechat.reply_deadline = 1.0  # WeChat's 5 s, shortened; ample for a local answer
    yield bot
    await runner.cleanup()


async def test_plaintext_callback_is_signed_and_its_passive_reply_is_free(receiver, wechat):
    async def reply(fields: dict[str, str]) -> str:
        return text_reply(fields, f"收到：{fields['Content']}")

    receiver.answer = reply
    worker = wechat.follower("o-plain")
    delivery = await worker.send_text("老板不给工资")

    [post] = receiver.posts
    assert post["query"]["openid"] == "o-plain" and "encrypt_type" not in post["query"]
    assert post["fields"]["ToUserName"] == wechat.original_id
    assert post["fields"]["MsgType"] == "text" and post["fields"]["Content"] == "老板不给工资"
    assert int(post["fields"]["MsgId"]) == delivery.msg_id
    assert delivery.outcome == "reply" and len(delivery.tries) == 1
    seen = await worker.next_message(timeout=1)
    assert seen.via == "passive" and seen.text == "收到：老板不给工资"
    assert wechat.quota_left(worker.openid) == 5  # the passive reply cost nothing


async def test_safe_mode_encrypts_the_callback_and_reads_the_encrypted_reply(receiver, wechat):
    wechat.mode, wechat.encoding_aes_key = "safe", random_encoding_aes_key()

    async def reply(fields: dict[str, str]) -> str:
        return sealed_reply(wechat, text_reply(fields, "已登记"))

    receiver.answer = reply
    worker = wechat.follower("o-safe")
    delivery = await worker.send_voice(recognition="我在昆山")

    [post] = receiver.posts
    assert set(post["outer"]) == {"ToUserName", "Encrypt"}  # nothing readable outside
    assert post["query"]["encrypt_type"] == "aes"
    assert post["fields"]["MsgType"] == "voice" and post["fields"]["Recognition"] == "我在昆山"
    assert post["fields"]["Format"] == "amr" and post["fields"]["MediaId"] in wechat.media
    assert delivery.outcome == "reply"
    assert (await worker.next_message(timeout=1)).text == "已登记"

    async def plaintext(fields: dict[str, str]) -> str:
        return text_reply(fields, "not sealed")

    receiver.answer = plaintext  # safe mode takes only an encrypted reply
    refused = await worker.send_text("再问")
    assert refused.outcome == "failed" and "plaintext" in (refused.error or "")
    assert await worker.quiet(0.05) == []


async def test_compatible_mode_carries_plaintext_and_encrypt(receiver, wechat):
    wechat.mode, wechat.encoding_aes_key = "compatible", random_encoding_aes_key()

    async def reply(fields: dict[str, str]) -> str:
        return text_reply(fields, "明文回复也行")  # compatible mode takes either

    receiver.answer = reply
    worker = wechat.follower("o-compat")
    await worker.send_location(31.3856, 120.9817, label="江苏省苏州市昆山市")

    [post] = receiver.posts
    assert post["outer"]["Label"] == "江苏省苏州市昆山市" and "Encrypt" in post["outer"]
    assert post["fields"]["Location_X"] == "31.3856" and post["fields"]["Scale"] == "15"
    assert (await worker.next_message(timeout=1)).text == "明文回复也行"


async def test_a_reply_with_a_bad_msg_signature_is_a_failure(receiver, wechat):
    wechat.mode, wechat.encoding_aes_key = "safe", random_encoding_aes_key()

    async def forged(fields: dict[str, str]) -> str:
        return sealed_reply(wechat, text_reply(fields, "伪造"), good_signature=False)

    receiver.answer = forged
    worker = wechat.follower("o-forged")
    delivery = await worker.send_text("你好")
    assert delivery.outcome == "failed" and "MsgSignature" in (delivery.error or "")
    assert len(delivery.tries) == 1  # answered in time: WeChat does not retry
    assert worker.messages == []


async def test_a_reply_padded_to_16_bytes_is_refused(receiver, wechat):
    """WeChat pads to 32-byte blocks; AES's usual 16 is a bug the bot must not have."""
    wechat.mode, wechat.encoding_aes_key = "safe", random_encoding_aes_key()

    async def short_padded(fields: dict[str, str]) -> str:
        for words in ("好", "好的", "好的。"):  # one whose 16-byte padding is not 32-aligned
            reply = text_reply(fields, words)
            if (20 + len(reply.encode()) + len(wechat.app_id)) % 32 < 16:
                return sealed_reply(wechat, reply, block=16)
        raise AssertionError("no reply length shows the difference")

    receiver.answer = short_padded
    worker = wechat.follower("o-padding")
    delivery = await worker.send_text("你好")
    assert delivery.outcome == "failed" and "32-byte" in (delivery.error or "")
    assert worker.messages == []


def test_a_malformed_encoding_aes_key_is_refused():
    with pytest.raises(ValueError, match="43 characters"):
        LocalWeChat(mode="safe", encoding_aes_key="too-short")
    with pytest.raises(ValueError, match="mode"):
        LocalWeChat(mode="secret")


async def test_success_and_empty_are_no_reply(receiver, wechat):
    worker = wechat.follower("o-quiet")
    assert (await worker.send_text("一")).outcome == "none"
    receiver.answer = lambda fields: asyncio.sleep(0, "")
    assert (await worker.send_text("二")).outcome == "none"
    assert worker.messages == [] and len(receiver.posts) == 2


async def test_a_late_answer_is_dropped_and_the_message_sent_again(receiver, wechat):
    wechat.reply_deadline = 0.4
    answers = iter([0.8, 0.0])

    async def slow_then_quick(fields: dict[str, str]) -> str:
        delay = next(answers)
        await asyncio.sleep(delay)
        return text_reply(fields, "late" if delay else "on time")

    receiver.answer = slow_then_quick
    worker = wechat.follower("o-retry")
    delivery = await worker.send_text("在吗")

    assert [t.answered_after is None for t in delivery.tries] == [True, False]
    assert delivery.tries[1].answered_after < 0.4
    first, second = receiver.posts
    assert first["fields"]["MsgId"] == second["fields"]["MsgId"]
    assert first["query"] == second["query"]  # the same request again
    assert [m.text for m in await worker.quiet(0.5)] == ["on time"]  # "late" never counts

    wechat.resign_retries = True  # the other reading of WeChat's retry: signed afresh
    answers = iter([0.8, 0.0])
    await worker.send_text("还在吗")
    third, fourth = receiver.posts[2:]
    assert third["fields"]["MsgId"] == fourth["fields"]["MsgId"]
    assert third["query"]["nonce"] != fourth["query"]["nonce"]


async def test_no_answer_in_time_is_tried_three_times_then_fails(receiver, wechat):
    wechat.reply_deadline = 0.15

    async def too_slow(fields: dict[str, str]) -> str:
        await asyncio.sleep(0.3)
        return text_reply(fields, "too late")

    receiver.answer = too_slow
    worker = wechat.follower("o-slow")
    delivery = await worker.send_text("救命")
    assert delivery.outcome == "failed" and len(delivery.tries) == 3
    assert all(t.answered_after is None and t.status is None for t in delivery.tries)
    await asyncio.sleep(0.2)  # the receiver finishes its last answer, unread
    assert len(receiver.posts) == 3 and worker.messages == []


async def test_each_message_type_has_wechat_fields(receiver, wechat, http):
    worker = wechat.follower("o-kinds", following=False)
    await worker.subscribe()
    image = await worker.send_image(b"\xff\xd8photo\xff\xd9")
    await worker.send_voice()
    await worker.send_link("合同", "劳动合同", "https://example.org/c")
    await worker.send_video(short=True)
    await worker.click("COMPLAINT")
    await worker.unsubscribe()

    kinds = [(p["fields"]["MsgType"], p["fields"].get("Event")) for p in receiver.posts]
    assert kinds == [
        ("event", "subscribe"),
        ("image", None),
        ("voice", None),
        ("link", None),
        ("shortvideo", None),
        ("event", "CLICK"),
        ("event", "unsubscribe"),
    ]
    ids = [int(p["fields"]["MsgId"]) for p in receiver.posts if "MsgId" in p["fields"]]
    assert len(ids) == 4 and ids == sorted(ids) and ids[-1] < 2**63
    assert "Recognition" not in receiver.posts[2]["fields"]  # speech recognition off
    assert receiver.posts[5]["fields"]["EventKey"] == "COMPLAINT"
    assert all(int(p["fields"]["CreateTime"]) > START for p in receiver.posts)
    async with http.get(image.fields["PicUrl"]) as response:
        assert await response.read() == b"\xff\xd8photo\xff\xd9"


async def test_verify_url_echoes_only_for_the_right_token(receiver, wechat):
    assert await wechat.verify_url()
    receiver.token = "a-different-token"  # the bot configured with another Token: 403
    assert not await wechat.verify_url()
    assert receiver.posts == []
