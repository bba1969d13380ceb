"""The WeChat side that calls the bot: followers' messages and events POSTed to the callback
URL, signed and (in safe or compatible mode) encrypted as WeChat does, under WeChat's 5-second
deadline and retries, and the bot's passive replies read back and checked.

The signing and the AES scheme are written here from WeChat's documentation ("消息加解密说明"),
not imported from the bot, so that a mistake in the bot's implementation shows instead of being
shared.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import string
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit
from xml.etree.ElementTree import Element, ParseError

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from local_servers.reading import MessageReader

if TYPE_CHECKING:
    from local_servers.wechat.server import LocalWeChat

MODES = ("plaintext", "compatible", "safe")  # the account's message encryption modes
AES_KEY_LENGTH = 43  # characters of an EncodingAESKey
PAD_BLOCK_BITS = 256  # WeChat pads to 32 bytes (PKCS#7 with k=32), not to AES's 16
REPLY_TEXT_BYTES = 2048  # "回复的消息内容长度不超过2048字节" (passive reply, text)
REPLY_TYPES = ("text", "image", "voice", "video", "music", "news")
_LINK = re.compile(r"""<a\s+[^>]*?href\s*=\s*(["'])(.*?)\1[^>]*>(.*?)</a>""", re.S | re.I)
_PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 2000 + b"\xff\xd9"
_VOICE = b"#!AMR\n" + b"\x00" * 3000
_VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 20000


def signature(*parts: str) -> str:
    """WeChat's signature: SHA-1 hex of the parts sorted and joined (token, timestamp, nonce;
    and the Encrypt field for msg_signature)."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def random_encoding_aes_key() -> str:
    """An EncodingAESKey as the account's settings page makes one: 43 characters from A-Z,
    a-z and 0-9 (WeChat's rule; base64's "+" and "/" never appear in one)."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))


class MessageCrypt:
    """WeChat's message encryption: AESKey = base64decode(EncodingAESKey + "="), AES-256-CBC
    with IV = AESKey[:16], plaintext = 16 random bytes + 4-byte big-endian length + message +
    AppID, PKCS#7 padded to 32 bytes, and base64 outside."""

    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        if len(encoding_aes_key) != AES_KEY_LENGTH:
            raise ValueError(f"an EncodingAESKey has {AES_KEY_LENGTH} characters")
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except ValueError:
            raise ValueError("an EncodingAESKey is base64 (A-Z, a-z, 0-9, +, /)") from None
        if len(key) != 32:
            raise ValueError("an EncodingAESKey decodes to 32 bytes")
        self._key = key
        self.app_id = app_id

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: str) -> str:
        body = message.encode("utf-8")
        plain = os.urandom(16) + struct.pack(">I", len(body)) + body + self.app_id.encode()
        padder = padding.PKCS7(PAD_BLOCK_BITS).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> tuple[str, str]:
        """(message, AppID) of an Encrypt field; ValueError when it is not WeChat's scheme."""
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except ValueError:
            raise ValueError("Encrypt is not base64") from None
        if not raw or len(raw) % 16:
            raise ValueError("Encrypt is not whole AES blocks")
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(PAD_BLOCK_BITS).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise ValueError("not PKCS#7 padding to a 32-byte block") from None
        if len(plain) < 20:
            raise ValueError("plaintext shorter than its random prefix and length")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise ValueError("message length beyond the plaintext")
        message = plain[20 : 20 + length].decode("utf-8")
        return message, plain[20 + length :].decode("utf-8")


def to_xml(fields: Mapping[str, object]) -> str:
    """A WeChat XML message: strings in CDATA, numbers bare."""
    parts = ["<xml>"]
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            text = str(value).replace("]]>", "]]]]><![CDATA[>")
            parts.append(f"<{name}><![CDATA[{text}]]></{name}>")
        else:
            parts.append(f"<{name}>{value}</{name}>")
    parts.append("</xml>")
    return "".join(parts)


def parse_xml(text: str) -> dict:
    """A WeChat XML message as a dict (nested elements as dicts), read without DTDs or
    entities; ValueError when it is not such XML."""
    try:
        root = fromstring(text)
    except (ParseError, DefusedXmlException) as error:
        raise ValueError(f"not XML: {error}") from None
    if root.tag != "xml":
        raise ValueError(f"root element <{root.tag}>, not <xml>")
    value = _element(root)
    return value if isinstance(value, dict) else {}


def _element(element: Element) -> str | dict:
    if len(element) == 0:
        return element.text or ""
    return {child.tag: _element(child) for child in element}


@dataclass
class Choice:
    """An answer the worker can tap: a msgmenu item or a weixin://bizmsgmenu link."""

    id: str
    content: str


def shown_text(text: str) -> tuple[str, list[Choice]]:
    """What the worker reads of a text message (links shown as their words) and the
    tappable answers in it (weixin://bizmsgmenu?msgmenucontent=…&msgmenuid=… links)."""
    choices = []
    for match in _LINK.finditer(text):
        href = match.group(2)
        if href.startswith("weixin://bizmsgmenu"):
            query = parse_qs(urlsplit(href).query)
            content = (query.get("msgmenucontent") or [match.group(3)])[0]
            choices.append(Choice((query.get("msgmenuid") or [""])[0], content))
    return _LINK.sub(lambda match: match.group(3), text), choices


@dataclass
class SeenMessage:
    """A message the worker sees from the account, however it came."""

    openid: str
    via: str  # "custom" (message/custom/send), "passive" (a callback's reply) or "mass"
    msgtype: str  # text, image, voice, msgmenu, ...
    text: str | None  # as the worker reads it: links as their words, a msgmenu as its lines
    media_id: str | None
    choices: list[Choice]
    raw: dict  # the custom/send or mass/send body, or the passive reply's fields
    at: float  # the server's clock


@dataclass
class CallbackTry:
    """One POST of a callback to the bot."""

    sent_at: float  # time.monotonic()
    answered_after: float | None  # seconds; None: no answer within the deadline (or at all)
    status: int | None  # the HTTP status of the answer, None without one
    body: str | None
    error: str | None  # why this try did not count as answered


@dataclass
class CallbackDelivery:
    """A message or event and every try to hand it to the bot, with what came of it:
    "reply" (a passive reply the worker sees), "none" ("success" or empty), "failed" (no
    valid answer: WeChat shows the worker "该公众号暂时无法提供服务，请稍后再试"), or
    "no_server" (no callback URL: the message stays on WeChat's side)."""

    openid: str
    fields: dict
    msg_id: int | None
    tries: list[CallbackTry] = field(default_factory=list)
    outcome: str = "no_server"
    reply: SeenMessage | None = None
    error: str | None = None


class WeChatCallbacks:
    """Signs, encrypts and POSTs callbacks to the server configuration's URL, and reads the
    answers. The settings (URL, token, EncodingAESKey, mode, deadline, tries) are read from the
    LocalWeChat each time, so a test may change them between messages."""

    def __init__(self, wechat: LocalWeChat) -> None:
        self._wechat = wechat
        self._client: ClientSession | None = None
        self.deliveries: list[CallbackDelivery] = []

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _session(self) -> ClientSession:
        if self._client is None or self._client.closed:
            # No cap on connections: WeChat calls the bot as often as followers write.
            self._client = ClientSession(
                connector=TCPConnector(limit=0), headers={"User-Agent": "Mozilla/4.0"}
            )
        return self._client

    def _crypt(self) -> MessageCrypt | None:
        wechat = self._wechat
        if wechat.mode == "plaintext":
            return None
        return MessageCrypt(wechat.encoding_aes_key or "", wechat.app_id)

    def signed_request(
        self,
        fields: Mapping[str, object],
        *,
        timestamp: str | None = None,
        nonce: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The query string and body WeChat sends for a message, in the account's mode; a test
        may alter either before post_raw to play a forger."""
        wechat = self._wechat
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(9 * 10**9) + 10**9)
        query = {
            "signature": signature(wechat.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": str(fields.get("FromUserName", "")),
        }
        message = to_xml(fields)
        crypt = self._crypt()
        if crypt is None:
            return query, message.encode("utf-8")
        encrypted = crypt.encrypt(message)
        query["encrypt_type"] = "aes"
        query["msg_signature"] = signature(wechat.token, timestamp, nonce, encrypted)
        if wechat.mode == "compatible":  # both: the plaintext fields and their Encrypt
            body = to_xml({**fields, "Encrypt": encrypted})
        else:
            body = to_xml({"ToUserName": wechat.original_id, "Encrypt": encrypted})
        return query, body.encode("utf-8")

    async def post_raw(
        self, query: Mapping[str, str], body: bytes, *, url: str | None = None
    ) -> tuple[int, str]:
        """POST exactly this to the callback URL (no deadline, no retry): (status, body)."""
        async with self._session().post(
            url or self._wechat.callback_url,
            params=dict(query),
            data=body,
            headers={"Content-Type": "text/xml"},
        ) as response:
            return response.status, await response.text()

    async def verify_url(self, url: str | None = None) -> bool:
        wechat = self._wechat
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(9 * 10**9) + 10**9)
        echostr = str(secrets.randbelow(10**19))
        query = {
            "signature": signature(wechat.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }
        try:
            async with self._session().get(
                url or wechat.callback_url,
                params=query,
                timeout=ClientTimeout(total=wechat.reply_deadline),
            ) as response:
                return response.status == 200 and await response.text() == echostr
        except (ClientError, TimeoutError, OSError):
            return False

    async def deliver(self, follower: FakeFollower, fields: dict) -> CallbackDelivery:
        """Hand a message or event to the bot as WeChat does: up to `callback_tries` POSTs,
        the next one when the bot has not answered within `reply_deadline` seconds (or failed
        with a 5xx, or could not be reached). An answer after the deadline is never read."""
        wechat = self._wechat
        delivery = CallbackDelivery(follower.openid, fields, fields.get("MsgId"))  # type: ignore[arg-type]
        self.deliveries.append(delivery)
        follower.deliveries.append(delivery)
        url = wechat.callback_url
        if not url:
            return delivery
        query, body = self.signed_request(fields)
        for attempt in range(max(1, wechat.callback_tries)):
            if attempt and wechat.resign_retries:
                query, body = self.signed_request(fields)
            tried = await self._try(url, query, body)
            delivery.tries.append(tried)
            if tried.status is not None and tried.status < 500:
                break
        last = delivery.tries[-1]
        if last.status != 200:
            delivery.outcome = "failed"
            delivery.error = last.error or f"HTTP {last.status}"
            return delivery
        if (last.body or "").strip() in ("", "success"):
            delivery.outcome = "none"
            return delivery
        try:
            reply = self.read_reply(follower.openid, last.body or "")
        except ValueError as error:
            delivery.outcome, delivery.error = "failed", str(error)
            return delivery
        delivery.outcome, delivery.reply = "reply", reply
        if follower.following:  # a reply to an unfollow reaches nobody
            follower.receive(reply)
        return delivery

    async def _try(self, url: str, query: dict[str, str], body: bytes) -> CallbackTry:
        wechat = self._wechat
        sent = time.monotonic()
        try:
            async with self._session().post(
                url,
                params=query,
                data=body,
                headers={"Content-Type": "text/xml"},
                timeout=ClientTimeout(total=wechat.reply_deadline),
            ) as response:
                text = await response.text(errors="replace")
                status = response.status
        except TimeoutError:
            error = f"no answer within {wechat.reply_deadline:g} s"
            return CallbackTry(sent, None, None, None, error)
        except (ClientError, OSError) as failure:
            return CallbackTry(sent, None, None, None, str(failure) or "unreachable")
        error = None if status == 200 else f"HTTP {status}"
        return CallbackTry(sent, time.monotonic() - sent, status, text, error)

    def read_reply(self, openid: str, body: str) -> SeenMessage:
        """A passive reply as WeChat reads it; ValueError for anything WeChat would refuse."""
        wechat = self._wechat
        outer = parse_xml(body)
        if "Encrypt" in outer:
            crypt = self._crypt()
            if crypt is None:
                raise ValueError("an encrypted reply to an account in plaintext mode")
            parts = [str(outer.get(name, "")) for name in ("TimeStamp", "Nonce", "Encrypt")]
            if outer.get("MsgSignature") != signature(wechat.token, *parts):
                raise ValueError("the reply's MsgSignature does not match")
            message, app_id = crypt.decrypt(parts[2])
            if app_id != wechat.app_id:
                raise ValueError(f"the reply is encrypted for AppID {app_id!r}")
            fields = parse_xml(message)
        elif wechat.mode == "safe":
            raise ValueError("a plaintext reply to an account in safe mode")
        else:
            fields = outer
        if fields.get("ToUserName") != openid:
            raise ValueError(f"the reply is to {fields.get('ToUserName')!r}, not {openid!r}")
        if fields.get("FromUserName") != wechat.original_id:
            raise ValueError(f"the reply is from {fields.get('FromUserName')!r}, not the account")
        msgtype = fields.get("MsgType")
        if msgtype not in REPLY_TYPES:
            raise ValueError(f"a reply of MsgType {msgtype!r}")
        now = wechat.clock()
        if msgtype == "text":
            content = fields.get("Content")
            if not isinstance(content, str) or not content:
                raise ValueError("a text reply without Content")
            if len(content.encode("utf-8")) > REPLY_TEXT_BYTES:
                raise ValueError(f"a text reply over {REPLY_TEXT_BYTES} bytes")
            text, choices = shown_text(content)
            return SeenMessage(openid, "passive", "text", text, None, choices, fields, now)
        media_id = None
        if msgtype in ("image", "voice", "video"):
            inner = fields.get(msgtype.title())
            media_id = inner.get("MediaId") if isinstance(inner, dict) else None
            if media_id not in wechat.media:
                raise ValueError(f"a {msgtype} reply with an unknown MediaId")
        return SeenMessage(openid, "passive", str(msgtype), None, media_id, [], fields, now)


class FakeFollower(MessageReader[SeenMessage]):
    """A worker who follows the account: sends messages and events to the bot as WeChat
    delivers them, and sees what the account sends back, with a cursor so a test can wait for
    "the next message" without sleeping. Each send returns its CallbackDelivery once WeChat is
    done with it (answered, or out of tries)."""

    def __init__(self, wechat: LocalWeChat, openid: str, *, following: bool = True) -> None:
        super().__init__()
        self._wechat = wechat
        self.openid = openid
        self.following = following
        self.deliveries: list[CallbackDelivery] = []

    def __repr__(self) -> str:
        return f"<FakeFollower {self.openid}>"

    # --- what the worker does ---

    async def send_text(self, text: str, *, bizmsgmenuid: str | None = None) -> CallbackDelivery:
        extra = {"bizmsgmenuid": bizmsgmenuid} if bizmsgmenuid is not None else {}
        return await self._message("text", {"Content": text, **extra})

    async def send_image(
        self, data: bytes = _PHOTO, *, filename: str = "photo.jpg"
    ) -> CallbackDelivery:
        stored = self._wechat.add_media("image", data, filename)
        url = self._wechat.media_url(stored.media_id)
        return await self._message("image", {"PicUrl": url, "MediaId": stored.media_id})

    async def send_voice(
        self, data: bytes = _VOICE, *, format: str = "amr", recognition: str | None = None
    ) -> CallbackDelivery:
        """A voice note; `recognition` is WeChat's own transcript, sent only when the account
        has speech recognition on."""
        stored = self._wechat.add_media("voice", data, f"voice.{format}")
        fields: dict[str, object] = {"MediaId": stored.media_id, "Format": format}
        if recognition is not None:
            fields["Recognition"] = recognition
        return await self._message("voice", fields)

    async def send_video(self, data: bytes = _VIDEO, *, short: bool = False) -> CallbackDelivery:
        video = self._wechat.add_media("video", data, "video.mp4")
        thumb = self._wechat.add_media("thumb", _PHOTO, "thumb.jpg")
        fields = {"MediaId": video.media_id, "ThumbMediaId": thumb.media_id}
        return await self._message("shortvideo" if short else "video", fields)

    async def send_location(
        self, latitude: float, longitude: float, *, scale: int = 15, label: str = ""
    ) -> CallbackDelivery:
        fields = {"Location_X": latitude, "Location_Y": longitude, "Scale": scale, "Label": label}
        return await self._message("location", fields)

    async def send_link(self, title: str, description: str, url: str) -> CallbackDelivery:
        return await self._message("link", {"Title": title, "Description": description, "Url": url})

    async def tap(
        self, choice: str | int, *, message: SeenMessage | None = None
    ) -> CallbackDelivery:
        """Tap an answer of a msgmenu (or a bizmsgmenu link): WeChat sends its content as the
        worker's text, with its id as bizmsgmenuid. `choice`: its index, id or words."""
        if message is None:
            message = next((m for m in reversed(self.messages) if m.choices), None)
            if message is None:
                raise LookupError(f"{self!r} has no message with answers to tap")
        chosen = _choose(message, choice)
        return await self.send_text(chosen.content, bizmsgmenuid=chosen.id)

    async def subscribe(self, *, event_key: str | None = None) -> CallbackDelivery:
        self.following = True
        self._wechat.grant_event_quota(self.openid)
        extra = {"EventKey": event_key} if event_key is not None else {}
        return await self._event("subscribe", extra)

    async def unsubscribe(self) -> CallbackDelivery:
        self.following = False
        self._wechat.close_quota(self.openid)
        return await self._event("unsubscribe", {})

    async def click(self, key: str) -> CallbackDelivery:
        """Press a click button of the custom menu by its key."""
        self._check_following("press a menu item")
        menu = self._wechat.menu
        if menu is not None and key not in {b.get("key") for b in _leaf_buttons(menu)}:
            raise LookupError(f"no menu button with key {key!r}")
        self._wechat.grant_event_quota(self.openid)
        return await self._event("CLICK", {"EventKey": key})

    async def view(self, url: str) -> CallbackDelivery:
        """Press a view (link) button: an event, but no customer-service allowance."""
        self._check_following("press a menu item")
        return await self._event("VIEW", {"EventKey": url})

    async def press(self, name: str) -> CallbackDelivery:
        """Press the custom menu's button of this name, as the worker would."""
        menu = self._wechat.menu
        button = next((b for b in _leaf_buttons(menu or {}) if b.get("name") == name), None)
        if button is None:
            names = [b.get("name") for b in _leaf_buttons(menu or {})]
            raise LookupError(f"no menu button named {name!r}; buttons: {names}")
        if button.get("type") == "click":
            return await self.click(str(button["key"]))
        if button.get("type") == "view":
            return await self.view(str(button["url"]))
        raise LookupError(f"button {name!r} is of type {button.get('type')!r}: not pressable here")

    async def send(self, msgtype: str, fields: dict) -> CallbackDelivery:
        """Any other message type, fields beyond the common ones given by hand."""
        return await self._message(msgtype, fields)

    async def _message(self, msgtype: str, fields: dict) -> CallbackDelivery:
        self._check_following("write to the account")
        self._wechat.grant_message_quota(self.openid)
        message = {**self._header(msgtype), **fields, "MsgId": self._wechat.next_msg_id()}
        return await self._wechat.callbacks.deliver(self, message)

    async def _event(self, event: str, fields: dict) -> CallbackDelivery:
        message = {**self._header("event"), "Event": event, **fields}  # events have no MsgId
        return await self._wechat.callbacks.deliver(self, message)

    def _header(self, msgtype: str) -> dict:
        return {
            "ToUserName": self._wechat.original_id,
            "FromUserName": self.openid,
            "CreateTime": int(time.time()),
            "MsgType": msgtype,
        }

    def _check_following(self, action: str) -> None:
        if not self.following:
            raise RuntimeError(f"{self!r} does not follow the account, so cannot {action}")

    # --- what the worker sees ---

    def receive(self, message: SeenMessage) -> None:
        self.messages.append(message)
        self.wake()

    @property
    def last(self) -> SeenMessage | None:
        return self.messages[-1] if self.messages else None

    def _missing(self, n: int, timeout: float) -> str:
        unread = [m.text for m in self.messages[self._cursor :]]
        return f"{self!r}: expected {n} new message(s) within {timeout}s, got {unread}"


def _leaf_buttons(menu: dict) -> list[dict]:
    leaves = []
    for button in menu.get("button") or ():
        leaves.extend(button.get("sub_button") or [button])
    return leaves


def _choose(message: SeenMessage, choice: str | int) -> Choice:
    if isinstance(choice, int):
        if 0 <= choice < len(message.choices):
            return message.choices[choice]
    else:
        for chosen in message.choices:
            if choice in (chosen.id, chosen.content):
                return chosen
    raise LookupError(f"no answer {choice!r}; answers: {[c.content for c in message.choices]}")
