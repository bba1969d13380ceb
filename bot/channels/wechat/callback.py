"""WeChat's callback (`/wechat` on the hotline's HTTP server): what WeChat posts, checked,
then stored in the inbox before it is answered.

Durable first, as with Telegram's webhook: WeChat waits 5 seconds for an answer and then sends
the same message again, up to three times in all, so a message is kept once it is stored and a
repeat (a retry, or the same message reaching two processes) finds its row and has no second
effect (the inbox is unique on channel and MsgId; events, which have none, on a key made of
their sender, time and kind: inbound.update_key).

What is refused, and stores nothing:
- 403: a missing or wrong `signature` (SHA-1 over the Token, timestamp and nonce); a timestamp
  outside TIMESTAMP_WINDOW (a captured request replayed later); with WECHAT_ENCODING_AES_KEY
  set, a body that is not encrypted, a wrong `msg_signature` or another account's AppID; the
  same timestamp and nonce with another body (a captured signature reused for a forged body:
  in plaintext mode the body itself is signed by nothing, so this cache, per process, is what
  there is; safe mode signs the body and is the one to use).
- 413: a body over MAX_BODY (a message is a few hundred bytes).
- 400: XML that is not WeChat's: malformed, a DOCTYPE or an entity (never expanded), no sender.
- 500: the database did not take it (WeChat tries again).

Once stored, `on_stored` (the channel) gets the rows and may answer with a passive reply in
time; without one, or with nothing to say, the answer is "success" (WeChat's "no reply").
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.wechat.callback_xml import parse_callback
from bot.channels.wechat.crypto import MessageCrypto, fresh, signature_matches
from bot.channels.wechat.inbound import CHANNEL, update_key
from bot.channels.wechat.refusals import CallbackRefused
from bot.http_server import read_capped
from db import inbox
from db.models import utcnow

log = logging.getLogger(__name__)

CALLBACK_PATH = "/wechat"
MAX_BODY = 64 * 1024
TIMESTAMP_WINDOW = 300.0  # seconds either way; WeChat's clock and ours agree far better
NONCES_KEPT = 10_000  # about the last TIMESTAMP_WINDOW of callbacks at 30 a second
NO_REPLY = "success"  # WeChat's word for "nothing to say": it neither retries nor complains
# For tests only (tests/test_wechat_channel.py), as for Telegram's webhook: die with SIGKILL
# right after a callback is stored and before its answer. Never set it in production.
DIE_AFTER_STORE = "HOTLINE_TEST_DIE_AFTER_STORE"

# (inbox row id, the message's fields) of what was stored new, in the order it came.
Stored = list[tuple[int, dict[str, str]]]


class Answer(Protocol):
    """A passive reply, and what to do once it is written to WeChat or could not be."""

    xml: str
    written: Callable[[], None]
    lost: Callable[[], None]


OnStored = Callable[[Stored], Awaitable[Answer | None]]


@dataclass(frozen=True)
class WeChatAccount:
    """The account's server configuration (WECHAT_APP_ID, WECHAT_TOKEN,
    WECHAT_ENCODING_AES_KEY; without a key, plaintext mode)."""

    app_id: str
    token: str
    encoding_aes_key: str | None = None


class _Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WeChatCallback:
    def __init__(
        self,
        account: WeChatAccount,
        *,
        sessions: async_sessionmaker[AsyncSession],
        on_stored: OnStored | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.sessions = sessions
        self.on_stored = on_stored
        self.clock = clock
        self.crypto = (
            MessageCrypto(account.token, account.encoding_aes_key, account.app_id)
            if account.encoding_aes_key
            else None
        )
        self._die_after_store = os.environ.get(DIE_AFTER_STORE) == "1"
        if self._die_after_store:
            log.warning("%s is set: this process kills itself once it stores", DIE_AFTER_STORE)
        # (timestamp, nonce) -> the body's digest, oldest first, for the replay check.
        self._nonces: collections.OrderedDict[tuple[str, str], bytes] = collections.OrderedDict()

    def routes(self) -> list[web.RouteDef]:
        return [web.get(CALLBACK_PATH, self.verify), web.post(CALLBACK_PATH, self.receive)]

    async def verify(self, request: web.Request) -> web.Response:
        """The account's URL check when the server address is saved: echostr back, signed."""
        query = request.query
        try:
            self._check_signature(query)
        except _Refusal as refused:
            log.warning("wechat: URL check refused (%s)", refused.reason)
            return web.Response(status=refused.status)
        return web.Response(text=query.get("echostr", ""))

    async def receive(self, request: web.Request) -> web.Response:
        try:
            fields = await self._authentic_fields(request)
        except _Refusal as refused:
            log.warning("wechat: callback refused with %d (%s)", refused.status, refused.reason)
            return web.Response(status=refused.status)
        try:
            stored = await self._store(fields)
        except Exception:  # WeChat tries again; nothing was kept, so nothing is lost
            log.exception("wechat: could not store a callback")
            return web.Response(status=500)
        if stored and self._die_after_store:  # tests only: see DIE_AFTER_STORE
            os.kill(os.getpid(), signal.SIGKILL)
        answer = await self.on_stored(stored) if self.on_stored is not None else None
        if answer is None:
            return web.Response(text=NO_REPLY)
        response = web.Response(text=answer.xml, content_type="text/xml")
        try:
            await response.prepare(request)
            await response.write_eof()
        except (ConnectionError, RuntimeError):  # WeChat hung up: the rows go another way
            answer.lost()
            raise
        answer.written()
        return response

    async def _authentic_fields(self, request: web.Request) -> dict[str, str]:
        """The message's fields, once every check has passed (see the module's docstring)."""
        query = request.query
        self._check_signature(query)
        body = await read_capped(request, MAX_BODY)
        if body is None:
            raise _Refusal(413, f"a body over {MAX_BODY} bytes")
        self._check_replay(query, body)
        try:
            outer = parse_callback(body)
            fields = outer if self.crypto is None else self._decrypted(query, outer)
        except CallbackRefused as refused:
            raise _Refusal(400, str(refused)) from None
        if not fields.get("FromUserName", "").strip():
            raise _Refusal(400, "no FromUserName")
        return fields

    def _check_signature(self, query: Mapping[str, str]) -> None:
        given, timestamp, nonce = (query.get(k) for k in ("signature", "timestamp", "nonce"))
        if not (given and timestamp and nonce):
            raise _Refusal(403, "no signature")
        if not signature_matches(given, self.account.token, timestamp, nonce):
            raise _Refusal(403, "a wrong signature")
        if not fresh(timestamp, self.clock(), TIMESTAMP_WINDOW):
            raise _Refusal(403, "a timestamp outside the window")

    def _check_replay(self, query: Mapping[str, str], body: bytes) -> None:
        """The same signed timestamp and nonce may come again only with the same body:
        WeChat's own retry. Another body under them is a forgery."""
        key = (query["timestamp"], query["nonce"])
        digest = hashlib.sha256(body).digest()
        seen = self._nonces.get(key)
        if seen is not None and seen != digest:
            raise _Refusal(403, "a signature reused for another body")
        self._nonces[key] = digest
        self._nonces.move_to_end(key)
        while len(self._nonces) > NONCES_KEPT:
            self._nonces.popitem(last=False)

    def _decrypted(self, query: Mapping[str, str], outer: dict[str, str]) -> dict[str, str]:
        """Safe and compatible mode: only the signed Encrypt field is read (compatible mode's
        plaintext copy beside it is signed by nothing)."""
        assert self.crypto is not None
        encrypted = outer.get("Encrypt")
        if query.get("encrypt_type") != "aes" or not encrypted:
            raise _Refusal(403, "not encrypted, and the account has an EncodingAESKey")
        given = query.get("msg_signature", "")
        if not self.crypto.check_msg_signature(
            given, query["timestamp"], query["nonce"], encrypted
        ):
            raise _Refusal(403, "a wrong msg_signature")
        try:
            return parse_callback(self.crypto.decrypt(encrypted).encode())
        except CallbackRefused as refused:  # another account's AppID, or damaged
            raise _Refusal(403, str(refused)) from None

    async def _store(self, fields: dict[str, str]) -> Stored:
        key = update_key(fields)
        lane = inbox.person_lane(CHANNEL, fields["FromUserName"].strip())
        async with self.sessions() as session, session.begin():
            stored = await inbox.store_updates(
                session, channel=CHANNEL, updates=[(key, lane, fields)], now=utcnow()
            )
        return [(stored[key], fields)] if key in stored else []
