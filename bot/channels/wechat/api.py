"""WeChat's server API for what the hotline sends (customer-service messages, media, the custom
menu), on one keep-alive aiohttp session, with one access token for every process.

The token comes from /cgi-bin/stable_token, not /cgi-bin/token: each /cgi-bin/token call
issues a new token and makes the one before invalid, so processes fetching their own would
break each other's, while stable_token in its normal mode hands every caller the current
token and invalidates nothing ("普通模式，access_token 有效期内重复调用该接口不会更新
access_token"). It is kept in memory and in the database (db/wechat_tokens.py): the first
process to need one fetches it, the others read it. It is refreshed when less than
REFRESH_AHEAD is left, and when WeChat refuses it (TOKEN_REFUSED), after which the refused call
is made once more: WeChat did nothing with a call whose token it refused, so even a send is
safe to repeat.

WeChat answers errors with HTTP 200 and an errcode; those the outbox must tell apart are typed
(QuotaSpent, WindowClosed, Unfollowed, ContentTooLong, and RetryLater's TooFrequent and
WeChatUnavailable, whose retry_after grows while WeChat keeps saying "later").

Neither the token nor the AppSecret is logged: URLs are logged with access_token hidden, and
aiohttp's own errors, which may quote the URL, are not chained onto ours.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import orjson
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from yarl import URL

from db import wechat_tokens
from db.models import utcnow
from db.wechat_tokens import REFRESH_AHEAD

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
TOKEN_PATH = "/cgi-bin/stable_token"
CUSTOM_SEND_PATH = "/cgi-bin/message/custom/send"
# The token was refused, not the call: 40001 invalid or not the latest, 40014 not a token,
# 42001 expired (WeChat's global return codes).
TOKEN_REFUSED = frozenset({40001, 40014, 42001})
# getStableAccessToken: "强制刷新模式每天限用20次且需间隔30秒" (otherwise it does not refresh).
FORCE_SPACING = timedelta(seconds=30)
SYSTEM_BUSY = -1  # WeChat's "系统繁忙，此时请开发者稍候再试"
TIMEOUT = 10.0  # seconds for a call, answer included
MEDIA_TIMEOUT = 60.0  # an upload or download of up to 10 MB (media/upload's largest)
# "Try later" answers in a row wait 1, 2, 4 ... seconds, at most 10 minutes: 45009 may be a
# per-second or per-minute cap, or the API's daily quota (which a wait will not lift soon).
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 600.0
HIDDEN = "<hidden>"
_TOKEN_IN_URL = re.compile(r"(access_token=)[^&\s'\"]+")
_JSON_TYPES = frozenset({"application/json", "text/json", "text/plain"})  # WeChat uses all three

# A multipart body: field name -> a plain value, or a file as (filename, content).
FormFields = Mapping[str, str | tuple[str, bytes]]


class WeChatError(Exception):
    """What WeChat answered instead of doing the call: its errcode and errmsg (errcode None:
    an HTTP error or an answer that is not WeChat's JSON)."""

    def __init__(self, errcode: int | None, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}" if errcode is not None else errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


class QuotaSpent(WeChatError):
    """45047: the worker's customer-service messages are used up until they write again."""


class WindowClosed(WeChatError):
    """45015: the worker has not written within 48 hours (or never): nothing may be sent."""


class Unfollowed(WeChatError):
    """43004: the worker no longer follows the account."""


class ContentTooLong(WeChatError):
    """45002: the text is over WeChat's 2048 bytes."""


class AlreadySent(WeChatError):
    """45065: a mass send with this clientmsgid was sent before (within 24 hours)."""


class RetryLater(WeChatError):
    """WeChat cannot take the call now: try it again after `retry_after` seconds."""

    def __init__(self, errcode: int | None, errmsg: str, *, retry_after: float) -> None:
        super().__init__(errcode, errmsg)
        self.retry_after = retry_after


class TooFrequent(RetryLater):
    """45009: a call-frequency limit (or the API's daily quota) was reached."""


class WeChatUnavailable(RetryLater):
    """HTTP 5xx, a timeout, a failed connection, or errcode -1 ("system busy")."""


_TYPED: dict[int, type[WeChatError]] = {
    45047: QuotaSpent,
    45015: WindowClosed,
    43004: Unfollowed,
    45002: ContentTooLong,
    45065: AlreadySent,
}


def redacted(url: str) -> str:
    """The URL as it may be logged: its access_token hidden."""
    return _TOKEN_IN_URL.sub(rf"\1{HIDDEN}", url)


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: datetime

    def lasts(self, now: datetime) -> bool:
        return self.expires_at - now > REFRESH_AHEAD


class WeChatApi:
    """One per process and account. `sessions` reach the database where the token is shared;
    `clock` (aware UTC) says when tokens expire."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime] = utcnow,
        timeout: float = TIMEOUT,
        media_timeout: float = MEDIA_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._secret = app_secret
        self._sessions = sessions
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._media_timeout = aiohttp.ClientTimeout(total=media_timeout)
        # Belongs to the event loop it is made on, so it is made on first use inside it.
        self._http: aiohttp.ClientSession | None = None
        self._token: _Token | None = None
        self._refreshing = asyncio.Lock()  # one refresh at a time; the others take its token
        self._forced_at: datetime | None = None
        self._refusals = 0  # "try later" answers in a row

    def __repr__(self) -> str:
        return f"<WeChatApi {self.app_id} at {self.base_url}>"  # never the secret or token

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()

    # --- what the hotline calls ---

    async def send_text(self, openid: str, text: str) -> None:
        """A customer-service text message (counts against the worker's quota)."""
        body = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        await self.call("POST", CUSTOM_SEND_PATH, json=body)

    async def mass_send(self, openids: list[str], text: str, *, clientmsgid: str) -> None:
        """One text to a list of followers (message/mass/send, 2 to 10,000 of them): a
        service account's followers get at most 4 a month. `clientmsgid` makes a repeat of
        the same send an AlreadySent, not a second message."""
        body = {
            "touser": openids,
            "msgtype": "text",
            "text": {"content": text},
            "send_ignore_reprint": 0,
            "clientmsgid": clientmsgid,
        }
        await self.call("POST", "/cgi-bin/message/mass/send", json=body)

    async def send_image(self, openid: str, media_id: str) -> None:
        body = {"touser": openid, "msgtype": "image", "image": {"media_id": media_id}}
        await self.call("POST", CUSTOM_SEND_PATH, json=body)

    async def upload_image(self, data: bytes, filename: str) -> str:
        """A temporary image (kept 3 days by WeChat); returns its media_id."""
        answer = await self.call(
            "POST",
            "/cgi-bin/media/upload",
            params={"type": "image"},
            data={"media": (filename, data)},
        )
        media_id = answer.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WeChatError(None, "media/upload answered without a media_id")
        return media_id

    async def download_media(self, media_id: str) -> bytes:
        """A worker's photo, voice note or video, by its MediaId (media/get)."""
        answer = await self._authorized(
            "GET",
            "/cgi-bin/media/get",
            params={"media_id": media_id},
            json=None,
            data=None,
            raw=True,
        )
        if isinstance(answer, bytes):
            return answer
        # media/get: a video comes as a download address, not as its bytes.
        video_url = answer.get("video_url")
        if not isinstance(video_url, str) or not video_url:
            raise WeChatError(None, "media/get answered neither a file nor a video address")
        _, body = await self._request("GET", video_url, json=None, data=None, media=True)
        self._refusals = 0
        return body

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """The account's custom menu (menu/create), {"button": [...]}."""
        await self.call("POST", "/cgi-bin/menu/create", json=menu)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        data: FormFields | None = None,
    ) -> dict[str, Any]:
        """Any API (`path` as "/cgi-bin/..."), with the access token added; returns WeChat's
        JSON answer, or raises its errcode as a WeChatError."""
        answer = await self._authorized(
            method, path, params=params, json=json, data=data, raw=False
        )
        assert isinstance(answer, dict)
        return answer

    # --- the token ---

    async def _access_token(self) -> str:
        cached = self._token
        if cached is not None and cached.lasts(self._clock()):
            return cached.value
        return await self._refresh(refused=None)

    async def _refresh(self, *, refused: str | None) -> str:
        """A token that lasts, and is not `refused` (the one WeChat just refused): another
        process's if it stored one, else fetched, and stored for the others."""
        async with self._refreshing:
            now = self._clock()
            cached = self._token
            if cached is not None and cached.value != refused and cached.lasts(now):
                return cached.value  # refreshed by another call while this one waited
            async with self._sessions() as session, session.begin():
                shared = await wechat_tokens.hold_refresh(session, app_id=self.app_id, now=now)
                stored = await wechat_tokens.current_token(session, app_id=self.app_id, now=now)
                if stored is not None and stored.token != refused:
                    return self._keep(_Token(stored.token, stored.expires_at))
                if shared:
                    # Fetched with the row locked: the other processes wait, then read it.
                    token = await self._fetch(refused)
                    await self._store(session, token)
                    return self._keep(token)
            # SQLite, one process: fetched without holding its one connection meanwhile.
            token = await self._fetch(refused)
            async with self._sessions() as session, session.begin():
                await self._store(session, token)
            return self._keep(token)

    async def _fetch(self, refused: str | None) -> _Token:
        """stable_token in its normal mode; forced only when that hands back the very token
        WeChat refused (force_refresh invalidates the token every process holds, and WeChat
        allows it 20 times a day)."""
        token = await self._stable_token(force=False)
        if refused is None or token.value != refused:
            return token
        now = self._clock()
        if self._forced_at is not None and now - self._forced_at < FORCE_SPACING:
            return token  # too soon to force again: the retry will say whether it is refused
        self._forced_at = now
        return await self._stable_token(force=True)

    async def _stable_token(self, *, force: bool) -> _Token:
        now = self._clock()
        body: dict[str, Any] = {
            "grant_type": "client_credential",
            "appid": self.app_id,
            "secret": self._secret,
        }
        if force:
            body["force_refresh"] = True
        _, raw = await self._request(
            "POST", f"{self.base_url}{TOKEN_PATH}", json=body, data=None, media=False
        )
        answer = self._read(TOKEN_PATH, raw)
        value, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(value, str) or not value or not isinstance(expires_in, int):
            raise WeChatError(None, "stable_token answered without a token")
        log.info(
            "WeChat access token fetched%s, valid %d s", " (forced)" if force else "", expires_in
        )
        return _Token(value, now + timedelta(seconds=expires_in))

    async def _store(self, session: AsyncSession, token: _Token) -> None:
        await wechat_tokens.store_token(
            session,
            app_id=self.app_id,
            token=token.value,
            expires_at=token.expires_at,
            now=self._clock(),
        )

    def _keep(self, token: _Token) -> str:
        self._token = token
        return token.value

    # --- HTTP ---

    async def _authorized(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None,
        json: Mapping[str, Any] | None,
        data: FormFields | None,
        raw: bool,
    ) -> dict[str, Any] | bytes:
        """The call with the token; made once more with a fresh token if WeChat refused it."""
        token = await self._access_token()
        try:
            return await self._once(
                method, path, token, params=params, json=json, data=data, raw=raw
            )
        except WeChatError as error:
            if error.errcode not in TOKEN_REFUSED:
                raise
            log.info("WeChat refused the access token (%s): refreshing it", error.errcode)
        token = await self._refresh(refused=token)
        return await self._once(method, path, token, params=params, json=json, data=data, raw=raw)

    async def _once(
        self,
        method: str,
        path: str,
        token: str,
        *,
        params: Mapping[str, str | int] | None,
        json: Mapping[str, Any] | None,
        data: FormFields | None,
        raw: bool,
    ) -> dict[str, Any] | bytes:
        url = str(
            URL(f"{self.base_url}{path}").update_query({**(params or {}), "access_token": token})
        )
        content_type, body = await self._request(
            method, url, json=json, data=data, media=raw or data is not None
        )
        if raw and content_type not in _JSON_TYPES:
            self._refusals = 0
            return body
        return self._read(path, body)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        json: Mapping[str, Any] | None,
        data: FormFields | None,
        media: bool,
    ) -> tuple[str, bytes]:
        """One HTTP request: the answer's content type and body, or WeChatUnavailable."""
        body: bytes | aiohttp.FormData | None = None
        headers = {}
        if json is not None:
            # UTF-8 as it is, never \uXXXX: menu/create refuses escapes (errcode 40033).
            body = orjson.dumps(json)
            headers["Content-Type"] = "application/json; charset=utf-8"
        elif data is not None:
            body = _form(data)  # made for each try: a FormData is read once
        shown = redacted(url)
        try:
            async with self._session().request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=self._media_timeout if media else self._timeout,
            ) as response:
                content = await response.read()
                status, content_type = response.status, response.content_type
        except TimeoutError:
            raise self._later(WeChatUnavailable, None, f"{method} {shown} timed out") from None
        except (aiohttp.ClientError, OSError) as error:
            # `from None`: aiohttp's error may quote the URL, token and all.
            reason = redacted(f"{type(error).__name__}: {error}")
            raise self._later(WeChatUnavailable, None, f"{method} {shown}: {reason}") from None
        log.debug("WeChat %s %s: HTTP %s", method, shown, status)
        if status >= 500:
            raise self._later(WeChatUnavailable, None, f"{method} {shown}: HTTP {status}")
        if status != 200:
            raise WeChatError(None, f"{method} {shown}: HTTP {status}")
        return content_type, content

    def _read(self, path: str, body: bytes) -> dict[str, Any]:
        """WeChat's JSON answer, or its errcode raised."""
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise WeChatError(None, f"{path}: an answer that is not JSON") from None
        if not isinstance(answer, dict):
            raise WeChatError(None, f"{path}: an answer that is not a JSON object")
        errcode = answer.get("errcode") or 0
        errmsg = str(answer.get("errmsg", ""))
        if errcode == 45009:
            raise self._later(TooFrequent, errcode, errmsg)
        if errcode == SYSTEM_BUSY:
            raise self._later(WeChatUnavailable, errcode, errmsg)
        self._refusals = 0  # WeChat answered: the next "later" waits the shortest again
        if errcode == 0:
            return answer
        log.debug("WeChat %s: errcode %s %s", path, errcode, errmsg)
        raise _TYPED.get(errcode, WeChatError)(errcode, errmsg)

    def _later(self, kind: type[RetryLater], errcode: int | None, errmsg: str) -> RetryLater:
        self._refusals += 1
        retry_after = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(self._refusals - 1, 20))
        return kind(errcode, errmsg, retry_after=retry_after)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # WeChat's API sets no cookies; a jar that keeps none saves a lookup per request.
            self._http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._http


def _form(fields: FormFields) -> aiohttp.FormData:
    # quote_fields=False sends a Chinese file name as UTF-8, not percent-encoded.
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, content = value
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            form.add_field(name, content, filename=filename, content_type=content_type)
        else:
            form.add_field(name, value)
    return form
