"""The HTTP side of the local WeChat server: access tokens, customer-service messages and their
quota, media, the custom menu and mass sends, with WeChat's JSON shapes and errcodes."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self
from zoneinfo import ZoneInfo

from aiohttp import web

from local_servers.listening import listen
from local_servers.wechat.callbacks import (
    MODES,
    Choice,
    FakeFollower,
    MessageCrypt,
    SeenMessage,
    WeChatCallbacks,
    shown_text,
)

DEFAULT_APP_ID = "wx5c0ffee0ddba11ad"
DEFAULT_APP_SECRET = "0123456789abcdef0123456789abcdef"
DEFAULT_TOKEN = "hotlinelocaltoken"
DEFAULT_ORIGINAL_ID = "gh_0c0ffee0dd11"

TOKEN_LIFETIME = 7200  # seconds: "access_token 的有效期目前为 2 个小时" (getAccessToken)
# Customer-service quota since June 2023 (WeChat's announcement of 2023-05-30, "客服消息下发规则"):
# a worker's message allows 5 messages within 48 hours; following the account or pressing a
# menu item (click, not view) allows 3 within 1 minute.
MESSAGE_GRANT, MESSAGE_WINDOW = 5, 48 * 3600.0
EVENT_GRANT, EVENT_WINDOW = 3, 60.0
# The documented limit is for a passive reply's text ("回复的消息内容长度不超过2048字节"); WeChat
# documents none for custom/send, where the same 2048 bytes of UTF-8 is widely reported.
TEXT_LIMIT_BYTES = 2048
# Mass send by OpenID list (message/mass/send): 2 to 10000 OpenIDs; a service account's follower
# receives at most 4 mass messages a calendar month ("用户每月只能接收4条"); clientmsgid is at
# most 64 bytes and is checked against the last 24 hours of mass sends.
MASS_MIN_RECIPIENTS, MASS_MAX_RECIPIENTS = 2, 10000
MASS_PER_MONTH = 4
CLIENTMSGID_BYTES = 64
CLIENTMSGID_MEMORY = 24 * 3600.0
BEIJING = ZoneInfo("Asia/Shanghai")  # WeChat's calendar month is China's
MEDIA_LIFETIME = 3 * 24 * 3600.0  # temporary media (media/upload) are kept 3 days
# media/upload: type -> (largest size in bytes, file extensions, errcode for too big).
MEDIA_RULES: dict[str, tuple[int, frozenset[str], int]] = {
    "image": (10 * 1024 * 1024, frozenset({"bmp", "png", "jpeg", "jpg", "gif"}), 40009),
    "voice": (2 * 1024 * 1024, frozenset({"amr", "mp3"}), 40010),
    "video": (10 * 1024 * 1024, frozenset({"mp4"}), 40011),
    "thumb": (64 * 1024, frozenset({"jpg", "jpeg"}), 40012),
}
CONTENT_TYPES = {
    "bmp": "image/bmp",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "amr": "audio/amr",
    "mp3": "audio/mpeg",
    "mp4": "video/mp4",
}
# menu/create ("创建自定义菜单"): 1-3 buttons, 1-5 sub-buttons each; a button's name at most 16
# bytes, a sub-button's 60; key at most 128 bytes, url at most 1024.
MENU_BUTTONS, MENU_SUB_BUTTONS = 3, 5
NAME_BYTES, SUB_NAME_BYTES, KEY_BYTES, URL_BYTES = 16, 60, 128, 1024
KEY_TYPES = frozenset(
    {
        "click",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
    }
)
URL_TYPES = frozenset({"view", "miniprogram"})
OTHER_TYPES = frozenset({"media_id", "view_limited", "article_id", "article_view_limited"})
_ESCAPE = re.compile(rb"(?<!\\)\\u[0-9a-fA-F]{4}")
FIRST_MSG_ID = 24_500_000_000_000_000  # WeChat's MsgIds are 64-bit; real ones have 17-19 digits

ERRMSG = {
    -1: "system error",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40004: "invalid media type",
    40005: "invalid file type",
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40010: "invalid voice size",
    40011: "invalid video size",
    40012: "invalid thumb size",
    40013: "invalid appid",
    40014: "invalid access_token",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40020: "invalid button url size",
    40023: "invalid sub button size",
    40024: "invalid sub button type",
    40025: "invalid sub button name size",
    40026: "invalid sub button key size",
    40027: "invalid sub button url size",
    40033: "invalid charset. please check your request, if include \\uxxxx will create fail!",
    40125: "invalid appsecret",
    40130: "invalid openid list size, at least two openid",
    41001: "access_token missing",
    41005: "media data missing",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    43004: "require subscribe",
    44002: "empty post data",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    45065: "clientmsgid exist",
    45067: "clientmsgid size out of limit",
    46003: "menu no exist",
    47001: "data format error",
}


class WeChatError(Exception):
    """An errcode answer; raising it anywhere in an API call answers the request. WeChat answers
    errors with HTTP 200 and a JSON body, and appends a request id to errmsg."""

    def __init__(self, errcode: int, errmsg: str | None = None, **extra: object) -> None:
        super().__init__(f"{errcode} {errmsg or ERRMSG.get(errcode, '')}")
        self.errcode = errcode
        self.errmsg = errmsg or ERRMSG.get(errcode, "error")
        self.extra = extra

    def body(self) -> dict:
        rid = f"{int(time.time()):08x}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
        return {"errcode": self.errcode, "errmsg": f"{self.errmsg} rid: {rid}", **self.extra}


@dataclass
class RecordedRequest:
    method: str  # GET or POST
    path: str  # "/cgi-bin/message/custom/send"
    query: dict[str, str]
    json: dict | None  # the JSON body, when there was one
    errcode: int  # what the call was answered (0: success; HTTP errors as -1)
    at: float  # the server's clock when it arrived


@dataclass
class StoredMedia:
    """A file in WeChat's media store: uploaded by the bot, or sent by a worker."""

    media_id: str
    type: str  # image, voice, video, thumb
    data: bytes
    filename: str
    content_type: str
    created_at: float  # the server's clock


@dataclass
class MassSend:
    """One accepted message/mass/send, and what became of each recipient."""

    msg_id: int
    clientmsgid: str
    msgtype: str
    payload: dict
    delivered: list[str]
    over_monthly_limit: list[str]  # had their 4 mass messages this month already: skipped
    not_following: list[str]  # unfollowed the account: filtered out
    at: float


@dataclass
class _Token:
    kind: str  # "token" (/cgi-bin/token) or "stable" (/cgi-bin/stable_token)
    expires_at: float
    revoked_at: float | None = None  # a newer token of its kind was issued; invalid from then


@dataclass
class _Grant:
    left: int
    until: float


@dataclass
class _Quota:
    """One follower's customer-service allowance: the worker's-message grant and the
    follow/menu grant. Both may be open at once; a send uses the one closing first. (WeChat
    does not say how they combine; adding them is our reading.)"""

    message: _Grant | None = None
    event: _Grant | None = None

    def open(self, now: float) -> list[_Grant]:
        grants = [grant for grant in (self.message, self.event) if grant and now < grant.until]
        return sorted(grants, key=lambda grant: grant.until)

    def take(self, now: float) -> int | None:
        grants = self.open(now)
        if not grants:
            return 45015
        for grant in grants:
            if grant.left > 0:
                grant.left -= 1
                return None
        return 45047


@dataclass
class _Fault:
    errcode: int
    status: int
    times: int


Handler = Callable[[web.Request, dict[str, str], dict | None], Awaitable[object]]


def _byte_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _extension(filename: str) -> str:
    return filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


class LocalWeChat:
    """A WeChat Official Account API server on localhost, for the real bot to talk to.

    Give the bot `base_url` as WECHAT_API_BASE_URL. Workers are FakeFollower objects
    (`follower(openid)`): they send messages and events to the bot's `callback_url` as WeChat
    does, and collect what the account sends them. `clock` (unix seconds) runs WeChat's rules
    (token expiry, quota windows, the month of mass sends) and is injectable, so a test moves
    time by hand instead of sleeping; signed callback timestamps stay on the real clock.
    """

    def __init__(
        self,
        app_id: str = DEFAULT_APP_ID,
        app_secret: str = DEFAULT_APP_SECRET,
        *,
        token: str = DEFAULT_TOKEN,
        encoding_aes_key: str | None = None,
        mode: str = "plaintext",
        original_id: str = DEFAULT_ORIGINAL_ID,
        callback_url: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: int = TOKEN_LIFETIME,
        token_overlap: float = 0.0,
        reply_deadline: float = 5.0,
        callback_tries: int = 3,
        resign_retries: bool = False,
        calls_per_second: int | None = None,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode != "plaintext":
            MessageCrypt(encoding_aes_key or "", app_id)  # raises on a malformed key
        self.app_id = app_id
        self.app_secret = app_secret
        # The account's server configuration (服务器配置): URL, Token, EncodingAESKey and the
        # message encryption mode. Settable while running, as on the admin page.
        self.token = token
        self.encoding_aes_key = encoding_aes_key
        self.mode = mode
        self.original_id = original_id  # the account's 原始ID: ToUserName of every callback
        self.callback_url = callback_url
        # WeChat waits 5 s for the callback's answer, then tries again, 3 tries in all. A test
        # shortens the wait. resign_retries: each retry freshly signed (new timestamp and
        # nonce) instead of the same request again; WeChat does not document which it does.
        self.reply_deadline = reply_deadline
        self.callback_tries = callback_tries
        self.resign_retries = resign_retries
        # expires_in of new tokens; token_overlap: seconds a token stays valid after a newer
        # one of its kind is issued (for /cgi-bin/token WeChat promises 5 minutes; 0, the
        # default, shows at once a bot whose second process invalidates the first's token).
        self.token_lifetime = token_lifetime
        self.token_overlap = token_overlap
        self.calls_per_second = calls_per_second  # None: no cap; else 45009 past it
        self.latency = latency  # seconds each API call waits: the round trip loopback lacks
        self.clock = clock
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.followers: dict[str, FakeFollower] = {}
        self.media: dict[str, StoredMedia] = {}
        self.menu: dict | None = None  # the last menu/create body
        self.mass_sends: list[MassSend] = []
        self.callbacks = WeChatCallbacks(self)
        self._tokens: dict[str, _Token] = {}
        self._latest: dict[str, str] = {}  # kind -> its newest token
        self._quotas: dict[str, _Quota] = {}
        self._mass_counts: dict[tuple[str, tuple[int, int]], int] = {}
        self._clientmsgids: dict[str, tuple[int, float]] = {}  # -> (msg_id, sent at)
        self._call_times: deque[float] = deque()
        self._faults: dict[str, list[_Fault]] = {}
        self._msg_ids = itertools.count(FIRST_MSG_ID)
        self._mass_ids = itertools.count(1_000_000_001)
        self._runner: web.AppRunner | None = None
        self._routes: dict[str, tuple[str, Handler, bool]] = {
            "/cgi-bin/token": ("GET", self._token, False),
            "/cgi-bin/stable_token": ("POST", self._stable_token, True),
            "/cgi-bin/message/custom/send": ("POST", self._custom_send, True),
            "/cgi-bin/message/mass/send": ("POST", self._mass_send, True),
            "/cgi-bin/media/upload": ("POST", self._media_upload, False),
            "/cgi-bin/media/get": ("GET", self._media_get, False),
            "/cgi-bin/menu/create": ("POST", self._menu_create, True),
            "/cgi-bin/menu/get": ("GET", self._menu_get, False),
            "/cgi-bin/menu/delete": ("GET", self._menu_delete, False),
            "/cgi-bin/get_current_selfmenu_info": ("GET", self._selfmenu_info, False),
        }

    # --- lifecycle ---

    @property
    def base_url(self) -> str:
        """What the bot takes as WECHAT_API_BASE_URL (https://api.weixin.qq.com for real)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/cgi-bin/{api:.+}", self._handle)
        app.router.add_get("/mmbiz/{media_id}", self._download)
        self._runner, self.port = await listen(app, self.host, self.port)

    async def stop(self) -> None:
        await self.callbacks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- people ---

    def follower(self, openid: str, *, following: bool = True) -> FakeFollower:
        """The worker with this OpenID, created on first use (following the account unless
        told otherwise: a worker who writes to the account follows it)."""
        if openid not in self.followers:
            self.followers[openid] = FakeFollower(self, openid, following=following)
        return self.followers[openid]

    async def verify_url(self, url: str | None = None) -> bool:
        """WeChat's check when the server configuration is saved: a signed GET whose echostr
        must come back as the whole body."""
        return await self.callbacks.verify_url(url)

    def next_msg_id(self) -> int:
        return next(self._msg_ids)

    # --- the customer-service quota ---

    def grant_message_quota(self, openid: str) -> None:
        """A worker's message: 5 customer-service messages within 48 hours from now (renewed,
        not added, by the next message)."""
        quota = self._quotas.setdefault(openid, _Quota())
        quota.message = _Grant(MESSAGE_GRANT, self.clock() + MESSAGE_WINDOW)

    def grant_event_quota(self, openid: str) -> None:
        """Following the account or pressing a click menu item: 3 within 1 minute."""
        quota = self._quotas.setdefault(openid, _Quota())
        quota.event = _Grant(EVENT_GRANT, self.clock() + EVENT_WINDOW)

    def close_quota(self, openid: str) -> None:
        """Unfollowing ends every open grant."""
        self._quotas.pop(openid, None)

    def quota_left(self, openid: str) -> int:
        """Customer-service messages this follower may still be sent right now."""
        quota = self._quotas.get(openid)
        return sum(grant.left for grant in quota.open(self.clock())) if quota else 0

    def window_open(self, openid: str) -> bool:
        quota = self._quotas.get(openid)
        return bool(quota and quota.open(self.clock()))

    def mass_received(self, openid: str) -> int:
        """Mass messages this follower has received in the current calendar month."""
        return self._mass_counts.get((openid, _month(self.clock())), 0)

    # --- tokens ---

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (42001 on use), as if two hours had passed."""
        now = self.clock()
        for issued in self._tokens.values():
            issued.expires_at = min(issued.expires_at, now)

    def _issue(self, kind: str, force: bool) -> dict:
        now = self.clock()
        latest = self._tokens.get(self._latest.get(kind, ""))
        # stable_token returns the same token while it is valid unless force_refresh; each
        # /cgi-bin/token call makes a new one, and the previous one invalid. The two kinds are
        # apart ("与getAccessToken获取的调用凭证完全隔离，互不影响").
        if kind == "stable" and not force and latest and self._valid(latest, now):
            return {"access_token": self._latest[kind], "expires_in": int(latest.expires_at - now)}
        if latest is not None:
            until = now + self.token_overlap
            if latest.revoked_at is None or until < latest.revoked_at:
                latest.revoked_at = until
        value = f"80_{secrets.token_urlsafe(108)}"
        self._tokens[value] = _Token(kind, now + self.token_lifetime)
        self._latest[kind] = value
        return {"access_token": value, "expires_in": self.token_lifetime}

    @staticmethod
    def _valid(issued: _Token, now: float) -> bool:
        return now < issued.expires_at and (issued.revoked_at is None or now < issued.revoked_at)

    def _authorize(self, query: dict[str, str]) -> None:
        value = query.get("access_token", "")
        if not value:
            raise WeChatError(41001)
        issued = self._tokens.get(value)
        if issued is None:
            # One of ours by its shape but not issued here: "not latest"; anything else is
            # malformed.
            ours = value.startswith("80_") and len(value) > 100
            raise WeChatError(40001 if ours else 40014)
        now = self.clock()
        if issued.revoked_at is not None and now >= issued.revoked_at:
            raise WeChatError(40001)
        if now >= issued.expires_at:
            raise WeChatError(42001)

    def _check_credentials(self, grant_type: object, appid: object, secret: object) -> None:
        if grant_type != "client_credential":
            raise WeChatError(40002)
        if appid != self.app_id:
            raise WeChatError(40013)
        if secret != self.app_secret:
            raise WeChatError(40125)

    # --- media ---

    def add_media(
        self, media_type: str, data: bytes, filename: str, content_type: str | None = None
    ) -> StoredMedia:
        """Put a file in the media store (a worker's photo or voice note, or a bot's upload)."""
        media_id = secrets.token_urlsafe(48)
        content_type = content_type or CONTENT_TYPES.get(
            _extension(filename), "application/octet-stream"
        )
        stored = StoredMedia(media_id, media_type, data, filename, content_type, self.clock())
        self.media[media_id] = stored
        return stored

    def media_url(self, media_id: str) -> str:
        """Where the file downloads without a token, like a PicUrl on mmbiz.qpic.cn."""
        return f"{self.base_url}/mmbiz/{media_id}"

    def _live_media(self, media_id: object) -> StoredMedia | None:
        stored = self.media.get(media_id) if isinstance(media_id, str) else None
        if stored is None or self.clock() - stored.created_at >= MEDIA_LIFETIME:
            return None
        return stored

    # --- recording and scripted faults ---

    def calls(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to one API: "message/custom/send" or its full path."""
        full = path if path.startswith("/") else f"/cgi-bin/{path}"
        return [request for request in self.requests if request.path == full]

    def fail(self, path: str, *, errcode: int = -1, status: int = 200, times: int = 1) -> None:
        """Answer the next `times` calls of an API with an errcode (HTTP 200, WeChat's way) or,
        with status >= 500, an HTTP error: "system busy" and outages the bot must survive."""
        full = path if path.startswith("/") else f"/cgi-bin/{path}"
        self._faults.setdefault(full, []).append(_Fault(errcode, status, times))

    def _scripted_fault(self, path: str) -> _Fault | None:
        faults = self._faults.get(path)
        if not faults:
            return None
        fault = faults[0]
        fault.times -= 1
        if fault.times <= 0:
            faults.pop(0)
        return fault

    def _check_frequency(self) -> None:
        if self.calls_per_second is None:
            return
        now = self.clock()
        while self._call_times and now - self._call_times[0] >= 1.0:
            self._call_times.popleft()
        if len(self._call_times) >= self.calls_per_second:
            raise WeChatError(45009)
        self._call_times.append(now)

    # --- HTTP ---

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived = self.clock()
        query = dict(request.query)
        entry = self._routes.get(request.path)
        payload: dict | None = None

        def record(errcode: int) -> None:
            self.requests.append(
                RecordedRequest(request.method, request.path, query, payload, errcode, arrived)
            )

        if entry is None:
            record(-1)
            return web.Response(status=404, text=f"not served by the local WeChat: {request.path}")
        method, handler, takes_json = entry
        try:
            if request.method != method:
                raise WeChatError(43001 if method == "GET" else 43002)
            if self.latency:
                await asyncio.sleep(self.latency)
            if takes_json:
                payload = await self._json_body(request, request.path)
            self._check_frequency()
            fault = self._scripted_fault(request.path)
            if fault is not None and fault.status >= 500:
                record(-1)
                return web.Response(status=fault.status, text="Service Unavailable")
            if fault is not None:
                raise WeChatError(fault.errcode)
            result = await handler(request, query, payload)
        except WeChatError as error:
            record(error.errcode)
            return _json_response(error.body())
        record(0)
        if isinstance(result, web.StreamResponse):
            return result
        return _json_response(result)

    @staticmethod
    async def _json_body(request: web.Request, path: str) -> dict:
        raw = await request.read()
        if not raw.strip():
            raise WeChatError(44002)
        # menu/create refuses \uXXXX escapes (errcode 40033's documented meaning): send
        # UTF-8 JSON, as WeChat's examples do.
        if path == "/cgi-bin/menu/create" and _ESCAPE.search(raw):
            raise WeChatError(40033)
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise WeChatError(47001) from None
        if not isinstance(payload, dict):
            raise WeChatError(47001)
        return payload

    async def _download(self, request: web.Request) -> web.StreamResponse:
        stored = self._live_media(request.match_info["media_id"])
        if stored is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=stored.data, content_type=stored.content_type)

    # --- the APIs ---

    async def _token(self, request: web.Request, query: dict[str, str], payload: None) -> dict:
        self._check_credentials(query.get("grant_type"), query.get("appid"), query.get("secret"))
        return self._issue("token", force=True)

    async def _stable_token(self, request: web.Request, query: dict, payload: dict) -> dict:
        self._check_credentials(
            payload.get("grant_type"), payload.get("appid"), payload.get("secret")
        )
        return self._issue("stable", force=payload.get("force_refresh") is True)

    async def _custom_send(self, request: web.Request, query: dict, payload: dict) -> dict:
        self._authorize(query)
        openid = payload.get("touser")
        follower = self.followers.get(openid) if isinstance(openid, str) else None
        if follower is None:
            raise WeChatError(40003)
        if not follower.following:
            raise WeChatError(43004)
        message = self._custom_message(follower.openid, payload)
        refused = self._quotas.setdefault(follower.openid, _Quota()).take(self.clock())
        if refused is not None:
            raise WeChatError(refused)
        follower.receive(message)
        return {"errcode": 0, "errmsg": "ok"}

    def _custom_message(self, openid: str, payload: dict) -> SeenMessage:
        """The message a custom/send body makes, checked as WeChat checks it."""
        msgtype = payload.get("msgtype")
        if msgtype not in ("text", "image", "voice", "msgmenu"):
            raise WeChatError(40008)  # WeChat has more kinds; the hotline sends these
        body = payload.get(msgtype)
        if not isinstance(body, dict):
            raise WeChatError(47001)
        if msgtype == "text":
            content = body.get("content")
            if not isinstance(content, str) or not content:
                raise WeChatError(44004)
            if _byte_len(content) > TEXT_LIMIT_BYTES:
                raise WeChatError(45002)
            text, choices = shown_text(content)
            return SeenMessage(openid, "custom", "text", text, None, choices, payload, self.clock())
        if msgtype in ("image", "voice"):
            stored = self._live_media(body.get("media_id"))
            if stored is None or stored.type != msgtype:
                raise WeChatError(40007)
            return SeenMessage(
                openid, "custom", msgtype, None, stored.media_id, [], payload, self.clock()
            )
        return self._msgmenu(openid, payload, body)

    def _msgmenu(self, openid: str, payload: dict, body: dict) -> SeenMessage:
        """A question with tappable answers (客服消息 "菜单消息"): head, one line per item,
        tail. Tapping an item sends its content back as text with bizmsgmenuid."""
        items = body.get("list")
        if not isinstance(items, list) or not items:
            raise WeChatError(47001)
        choices = []
        for item in items:
            if not isinstance(item, dict) or not item.get("id") or not item.get("content"):
                raise WeChatError(47001)
            choices.append(Choice(str(item["id"]), str(item["content"])))
        lines = [str(body.get("head_content") or "")]
        lines += [choice.content for choice in choices]
        lines.append(str(body.get("tail_content") or ""))
        text = "\n".join(line for line in lines if line)
        if _byte_len(text) > TEXT_LIMIT_BYTES:
            raise WeChatError(45002)
        return SeenMessage(openid, "custom", "msgmenu", text, None, choices, payload, self.clock())

    async def _media_upload(self, request: web.Request, query: dict, payload: None) -> dict:
        self._authorize(query)
        kind = query.get("type", "")
        if kind not in MEDIA_RULES:
            raise WeChatError(40004)
        upload = None
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            upload = form.get("media")
        if not isinstance(upload, web.FileField):
            raise WeChatError(41005)
        data = upload.file.read()
        largest, extensions, too_big = MEDIA_RULES[kind]
        filename = upload.filename or ""
        if _extension(filename) not in extensions:
            raise WeChatError(40005)
        if not data:
            raise WeChatError(41005)
        if len(data) > largest:
            raise WeChatError(too_big)
        stored = self.add_media(kind, data, filename, upload.content_type or None)
        key = "thumb_media_id" if kind == "thumb" else "media_id"  # WeChat's answer for thumbs
        return {"type": kind, key: stored.media_id, "created_at": int(stored.created_at)}

    async def _media_get(
        self, request: web.Request, query: dict, payload: None
    ) -> web.StreamResponse | dict:
        self._authorize(query)
        stored = self._live_media(query.get("media_id"))
        if stored is None:
            raise WeChatError(40007)
        if stored.type == "video":  # videos come as a download address, not as bytes
            return {"video_url": self.media_url(stored.media_id)}
        name = f"{stored.media_id}.{_extension(stored.filename) or 'bin'}"
        return web.Response(
            body=stored.data,
            content_type=stored.content_type,
            headers={"Content-disposition": f'attachment; filename="{name}"'},
        )

    async def _menu_create(self, request: web.Request, query: dict, payload: dict) -> dict:
        self._authorize(query)
        buttons = payload.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= MENU_BUTTONS:
            raise WeChatError(40016)
        for button in buttons:
            if not isinstance(button, dict):
                raise WeChatError(47001)
            subs = button.get("sub_button") or []
            _check_button(button, sub=False, leaf=not subs)
            if not subs:
                continue
            if not isinstance(subs, list) or len(subs) > MENU_SUB_BUTTONS:
                raise WeChatError(40023)
            for sub in subs:
                if not isinstance(sub, dict):
                    raise WeChatError(47001)
                _check_button(sub, sub=True, leaf=True)
        self.menu = payload
        return {"errcode": 0, "errmsg": "ok"}

    async def _menu_get(self, request: web.Request, query: dict, payload: None) -> dict:
        self._authorize(query)
        if self.menu is None:
            raise WeChatError(46003)
        buttons = [
            {**button, "sub_button": list(button.get("sub_button") or [])}
            for button in self.menu["button"]
        ]
        return {"menu": {"button": buttons}}

    async def _menu_delete(self, request: web.Request, query: dict, payload: None) -> dict:
        self._authorize(query)
        self.menu = None
        return {"errcode": 0, "errmsg": "ok"}

    async def _selfmenu_info(self, request: web.Request, query: dict, payload: None) -> dict:
        """The menu as get_current_selfmenu_info shows it: sub-buttons under {"list": [...]}."""
        self._authorize(query)
        if self.menu is None:
            return {"is_menu_open": 0, "selfmenu_info": {"button": []}}
        buttons = []
        for button in self.menu["button"]:
            shown = {key: value for key, value in button.items() if key != "sub_button"}
            if button.get("sub_button"):
                shown["sub_button"] = {"list": list(button["sub_button"])}
            buttons.append(shown)
        return {"is_menu_open": 1, "selfmenu_info": {"button": buttons}}

    async def _mass_send(self, request: web.Request, query: dict, payload: dict) -> dict:
        self._authorize(query)
        recipients = payload.get("touser")
        if not isinstance(recipients, list) or not all(isinstance(o, str) for o in recipients):
            raise WeChatError(40130)
        # WeChat documents at least 2 and at most 10000; it names 40130 for too few only, and
        # we answer it for too many as well.
        if not MASS_MIN_RECIPIENTS <= len(recipients) <= MASS_MAX_RECIPIENTS:
            raise WeChatError(40130)
        msgtype = payload.get("msgtype")
        content = self._mass_content(msgtype, payload)
        if any(openid not in self.followers for openid in recipients):
            raise WeChatError(40003)
        clientmsgid = payload.get("clientmsgid")
        if clientmsgid is None:
            # Not given: "以群发范围和群发内容的摘要值做为clientmsgid", so the same message to the
            # same people twice within 24 hours is refused anyway.
            digest = json.dumps([sorted(recipients), msgtype, content], sort_keys=True)
            clientmsgid = hashlib.sha1(digest.encode()).hexdigest()
        clientmsgid = str(clientmsgid)
        if _byte_len(clientmsgid) > CLIENTMSGID_BYTES:
            raise WeChatError(45067)
        now = self.clock()
        earlier = self._clientmsgids.get(clientmsgid)
        if earlier is not None and now - earlier[1] < CLIENTMSGID_MEMORY:
            raise WeChatError(45065, msg_id=earlier[0])
        msg_id = next(self._mass_ids)
        self._clientmsgids[clientmsgid] = (msg_id, now)
        record = MassSend(msg_id, clientmsgid, str(msgtype), payload, [], [], [], now)
        month = _month(now)
        for openid in dict.fromkeys(recipients):  # each person once, in the given order
            follower = self.followers[openid]
            if not follower.following:
                record.not_following.append(openid)
                continue
            received = self._mass_counts.get((openid, month), 0)
            if received >= MASS_PER_MONTH:
                record.over_monthly_limit.append(openid)
                continue
            self._mass_counts[(openid, month)] = received + 1
            record.delivered.append(openid)
            follower.receive(self._mass_message(openid, str(msgtype), content, payload, now))
        self.mass_sends.append(record)
        return {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id}

    def _mass_content(self, msgtype: object, payload: dict) -> object:
        if msgtype == "text":
            text = (payload.get("text") or {}).get("content")
            if not isinstance(text, str) or not text:
                raise WeChatError(44004)
            if _byte_len(text) > TEXT_LIMIT_BYTES:
                raise WeChatError(45002)
            return text
        if msgtype == "image":
            # {"images": {"media_ids": [...]}} now; {"image": {"media_id": ...}} before.
            images = payload.get("images") or {}
            ids = images.get("media_ids") or [(payload.get("image") or {}).get("media_id")]
            stored = [self._live_media(media_id) for media_id in ids]
            if not ids or any(image is None or image.type != "image" for image in stored):
                raise WeChatError(40007)
            return list(ids)
        raise WeChatError(40008)

    @staticmethod
    def _mass_message(
        openid: str, msgtype: str, content: object, payload: dict, now: float
    ) -> SeenMessage:
        if msgtype == "text":
            text, choices = shown_text(str(content))
            return SeenMessage(openid, "mass", "text", text, None, choices, payload, now)
        media_ids = list(content)  # type: ignore[call-overload]
        return SeenMessage(openid, "mass", "image", None, media_ids[0], [], payload, now)


def _check_button(button: dict, *, sub: bool, leaf: bool) -> None:
    """One menu button against menu/create's rules; a parent button needs only a name."""
    name = button.get("name")
    if not isinstance(name, str) or not 1 <= _byte_len(name) <= (
        SUB_NAME_BYTES if sub else NAME_BYTES
    ):
        raise WeChatError(40025 if sub else 40018)
    if not leaf:
        return
    kind = button.get("type")
    if kind not in KEY_TYPES | URL_TYPES | OTHER_TYPES:
        raise WeChatError(40024 if sub else 40017)
    if kind in KEY_TYPES:
        key = button.get("key")
        if not isinstance(key, str) or not 1 <= _byte_len(key) <= KEY_BYTES:
            raise WeChatError(40026 if sub else 40019)
    if kind in URL_TYPES:
        url = button.get("url")
        if not isinstance(url, str) or not 1 <= _byte_len(url) <= URL_BYTES:
            raise WeChatError(40027 if sub else 40020)


def _month(now: float) -> tuple[int, int]:
    moment = datetime.fromtimestamp(now, BEIJING)
    return moment.year, moment.month


def _json_response(body: dict[str, Any]) -> web.Response:
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        content_type="application/json",
        charset="utf-8",
    )
