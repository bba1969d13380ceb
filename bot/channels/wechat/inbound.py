"""WeChat callbacks as the engine's Inbound, and the inbox's key for each callback.

`fields` are a callback's fields as bot/channels/wechat/callback_xml.parse_callback reads them
(after crypto has checked them and, in safe mode, decrypted them). WeChat has no staff group:
whoever writes to the account is a worker, known by their OpenID. Of the event pushes, the ones
a worker means as an action (following, unfollowing, a menu button) become commands or text;
the ones that only report something (a link opened, a periodic location, a send finished) are
not a turn.

Telegram's channel cleans what people send of control characters and unpaired surrogates
before it is stored; here the XML parser has already refused them (XML 1.0's Char production
admits neither, not even as character references), so the fields are stored as they came.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping

from handlers.messages import Inbound, InboundKind, Media

CHANNEL = "wechat"
# A custom-menu CLICK button whose key is "cmd:NAME" is the command NAME (the menu is ours:
# `hotline wechat menu` writes these keys); any other key is the button's entry, as if typed.
MENU_COMMAND_PREFIX = "cmd:"
# WeChat's "following after scanning a parametric QR code" push: EventKey is "qrscene_" and
# the code's scene value.
SCENE_PREFIX = "qrscene_"
# A choice tapped in a `weixin://bizmsgmenu` link or a customer-service msgmenu arrives as a
# text message with this field (WeChat's customer-service messages page) and the choice's
# words as Content.
TAPPED_CHOICE_FIELD = "bizmsgmenuid"
# Chinese keyboards type the full-width solidus in full-width punctuation mode.
SLASHES = ("/", "\uff0f")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}\Z")  # Telegram's command names, so both agree
_MSG_ID = re.compile(r"[0-9]{1,20}\Z")
MAX_SIGNED_64 = 2**63 - 1
# What WeChat names a voice note's Format (amr, speex) as a MIME type, where the two differ.
_VOICE_MIME_TYPES = {"mp3": "audio/mpeg"}
_FORMAT_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]{0,15}\Z")
# An event's identity for the inbox: a retry of a push repeats every one of these fields.
EVENT_IDENTITY = ("FromUserName", "CreateTime", "MsgType", "Event", "EventKey")


def to_inbound(fields: Mapping[str, str]) -> Inbound | None:
    """What the worker did, without WeChat's XML; None for what is not a turn (a push that
    only reports, or a callback with nobody to answer)."""
    person_id = _stripped(fields, "FromUserName")
    if not person_id:
        return None
    msg_type = _stripped(fields, "MsgType").lower()
    if msg_type == "event":
        return _event(person_id, fields)
    read = _MESSAGE_READERS.get(msg_type)
    read_fields = read(fields) if read is not None else None
    # A message the hotline cannot read still gets an answer (the engine's "please send text").
    kind, values = read_fields or (InboundKind.OTHER, {})
    return Inbound(
        channel=CHANNEL,
        person_id=person_id,
        kind=kind,
        message_id=message_id(fields),
        **values,
    )


def message_id(fields: Mapping[str, str]) -> int | None:
    """MsgId as the number it is (64 bits; events have none). One that is not a positive
    number fitting a signed 64-bit column is treated as absent, so that update_key's split
    (messages positive, events negative) holds."""
    raw = _stripped(fields, "MsgId")
    if not _MSG_ID.match(raw):
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_SIGNED_64 else None


def update_key(fields: Mapping[str, str]) -> int:
    """The inbox's unique id for a callback, so that WeChat's retries (up to three, 5 s apart)
    and the same callback reaching two processes are stored once.

    A message's key is its MsgId, which WeChat repeats in every retry: positive. An event has
    no MsgId, so its key is a hash of EVENT_IDENTITY (who, when to the second, which event and
    key), the first 8 bytes of SHA-256 folded into 63 bits and made negative, -1 to -2**63:
    it can never equal a real MsgId, and it is the same in every process and every release
    (unlike Python's salted hash()), as rows already stored must be matched by a retry that
    arrives after a restart. Two identical events from one worker within the same second are
    one (a double tap on a menu button). A message without a usable MsgId is keyed as an event.
    """
    if _stripped(fields, "MsgType").lower() != "event":
        value = message_id(fields)
        if value is not None:
            return value
    identity = [_stripped(fields, name) for name in EVENT_IDENTITY]
    digest = hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode()).digest()
    return -(int.from_bytes(digest[:8], "big") & MAX_SIGNED_64) - 1


# -- messages -------------------------------------------------------------------------------

# What a message reader found: the kind and Inbound's fields, None for what it cannot read.
_Read = tuple[InboundKind, dict[str, object]] | None


def _text(fields: Mapping[str, str]) -> _Read:
    content = fields.get("Content", "")  # never stripped: the engine strips where it matters
    if not content.strip():
        return None
    if TAPPED_CHOICE_FIELD not in fields:  # a tapped choice is its words, whatever they are
        command = _command(content)
        if command is not None:
            name, args = command
            return InboundKind.COMMAND, {"command": name, "text": args}
    return InboundKind.TEXT, {"text": content}


def _image(fields: Mapping[str, str]) -> _Read:
    # PicUrl is left out: a public URL to the worker's photo, personal data that anyone holding
    # it can open. The photo is fetched by MediaId (media/get) and kept as evidence.
    return _media(fields, "photo")


def _voice(fields: Mapping[str, str]) -> _Read:
    read = _media(fields, "voice", mime_type=_voice_mime_type(_stripped(fields, "Format")))
    if read is None:
        return None
    # Recognition: WeChat's own transcript, present when the account has speech recognition
    # on. The worker meant it as what they said, so it is the turn's text; the voice stays the
    # evidence.
    transcript = _stripped(fields, "Recognition")
    kind, values = read
    return kind, {**values, "text": transcript or None}


def _video(fields: Mapping[str, str]) -> _Read:
    return _media(fields, "video")


def _location(fields: Mapping[str, str]) -> _Read:
    # Label is the place's address in words, where the engine finds a district. Location_X/Y
    # and Scale are left out: Inbound has no field for coordinates (Telegram's locations carry
    # none into it either).
    return InboundKind.LOCATION, {"text": _stripped(fields, "Label") or None}


def _link(fields: Mapping[str, str]) -> _Read:
    # A shared article is what a pasted link is on Telegram: text. The title says what it is,
    # the URL is what a counsellor opens, each on its own line; the Description is the
    # article's own summary, not the worker's words, and the URL leads to it.
    parts = [_stripped(fields, "Title"), _stripped(fields, "Url")]
    text = "\n".join(part for part in parts if part)
    return (InboundKind.TEXT, {"text": text}) if text else None


_MESSAGE_READERS = {
    "text": _text,
    "image": _image,
    "voice": _voice,
    "video": _video,
    "shortvideo": _video,
    "location": _location,
    "link": _link,
}


def _media(fields: Mapping[str, str], kind: str, *, mime_type: str | None = None) -> _Read:
    media_id = _stripped(fields, "MediaId")
    if not media_id:
        return None
    return InboundKind.MEDIA, {"media": Media(kind=kind, file_id=media_id, mime_type=mime_type)}


def _voice_mime_type(voice_format: str) -> str | None:
    name = voice_format.lower()
    if not _FORMAT_NAME.match(name):
        return None
    return _VOICE_MIME_TYPES.get(name, f"audio/{name}")


def _command(text: str) -> tuple[str, str | None] | None:
    """A leading slash word as a command, lower case, and the rest as its arguments. Leading
    space is allowed (Telegram's clients trim it before sending, WeChat's do not). The word is
    read in NFKC, so full-width letters typed in full-width mode (／ｈｅｌｐ) are the command."""
    typed = text.lstrip()
    if not typed or typed[0] not in SLASHES:
        return None
    rest = typed[1:]
    if not rest or rest[0].isspace():
        return None
    word, *args = rest.split(maxsplit=1)
    name = unicodedata.normalize("NFKC", word).lower()
    if not _COMMAND_NAME.match(name):
        return None
    return name, (args[0].rstrip() or None) if args else None


# -- events ---------------------------------------------------------------------------------


def _event(person_id: str, fields: Mapping[str, str]) -> Inbound | None:
    event = _stripped(fields, "Event").lower()
    key = _stripped(fields, "EventKey")
    if event == "subscribe":
        # Following the account is Telegram's /start; a QR code's scene value is its argument,
        # as a Telegram deep link's payload is /start's.
        scene = key.removeprefix(SCENE_PREFIX) if key.startswith(SCENE_PREFIX) else ""
        return _event_inbound(person_id, InboundKind.COMMAND, command="start", text=scene or None)
    if event == "unsubscribe":
        return _event_inbound(person_id, InboundKind.COMMAND, command="stop")
    if event == "click":
        if key.startswith(MENU_COMMAND_PREFIX):
            command = _command("/" + key.removeprefix(MENU_COMMAND_PREFIX))
            if command is None:  # a menu written wrong: the worker is asked to type instead
                return _event_inbound(person_id, InboundKind.OTHER)
            name, args = command
            return _event_inbound(person_id, InboundKind.COMMAND, command=name, text=args)
        if not key:
            return _event_inbound(person_id, InboundKind.OTHER)
        return _event_inbound(person_id, InboundKind.TEXT, text=key)
    # VIEW (a link in the menu opened), LOCATION (the periodic location report),
    # TEMPLATESENDJOBFINISH, MASSSENDJOBFINISH, SCAN and whatever WeChat adds: not a turn.
    return None


def _event_inbound(person_id: str, kind: InboundKind, **values: str | None) -> Inbound:
    return Inbound(channel=CHANNEL, person_id=person_id, kind=kind, **values)


def _stripped(fields: Mapping[str, str], name: str) -> str:
    """A field WeChat writes (an id, a type, a key, a number), without the whitespace a
    pretty-printed body puts around it. Never used for what the worker typed."""
    return fields.get(name, "").strip()
