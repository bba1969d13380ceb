"""Telegram updates as the engine's Inbound: private chats are workers, the staff group is
staff, every other chat is ignored."""

from __future__ import annotations

import re

from handlers.messages import Inbound, InboundKind, Media

CHANNEL = "telegram"
CHOICE_SEPARATOR = "|"  # callback data: "<question tag>|<choice key>"
MEDIA_KINDS = ("photo", "document", "voice", "video", "audio", "video_note", "animation", "sticker")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")  # C0 controls but tab and line feed
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # a str holds surrogates only unpaired


def to_inbound(update: dict, *, staff_chat_id: int | None = None) -> Inbound | None:
    """What the person did, without Telegram's types; None for what the bot does not answer.

    `update` is the Bot API's JSON as it came (bot/channels/telegram/bot_api.py says why no
    python-telegram-bot object is built). Private chats are workers. The staff group is staff
    (whoever they are: the desk checks the registry). Every other chat is ignored."""
    query = update.get("callback_query")
    if query is not None:
        message = query.get("message")
        if message is None:
            return None
        origin = _origin(message["chat"], staff_chat_id)
        if origin is None:
            return None
        tag, _, key = (query.get("data") or "").rpartition(CHOICE_SEPARATOR)
        return _inbound(
            message["chat"]["id"],
            query.get("from"),
            InboundKind.CHOICE,
            origin,
            choice=key or None,
            choice_tag=tag or None,
            thread_id=message.get("message_thread_id") if origin == "staff" else None,
        )
    edited = update.get("edited_message")
    message = edited or update.get("message")
    if message is None:
        return None
    user = message.get("from")
    if user is None or user.get("is_bot"):
        return None
    origin = _origin(message["chat"], staff_chat_id)
    if origin is None:
        return None
    if edited is not None:
        return _inbound(
            message["chat"]["id"],
            user,
            InboundKind.EDIT,
            origin,
            text=message.get("text"),
            **_where(message, origin),
        )
    return _message_inbound(message, origin)


def update_chat(update: dict) -> dict | None:
    """The chat an update happened in (python-telegram-bot's `effective_chat`)."""
    message = update_message(update)
    return message.get("chat") if message is not None else None


def update_message(update: dict) -> dict | None:
    """The message an update is about: a new or edited one, or the one a button was on."""
    for kind in ("message", "edited_message"):
        if kind in update:
            return update[kind]
    query = update.get("callback_query")
    return query.get("message") if query is not None else None


def _origin(chat: dict, staff_chat_id: int | None) -> str | None:
    if chat.get("type") == "private":
        return "worker"
    if staff_chat_id is not None and chat.get("id") == staff_chat_id:
        return "staff"
    return None


def _where(message: dict, origin: str) -> dict:
    """The message's place: its id, its topic in the staff group, the message it answers.
    In a forum every topic message "replies" to the topic's first message: not a reply."""
    replied = message.get("reply_to_message")
    if replied is not None and "forum_topic_created" in replied:
        replied = None
    return {
        "message_id": message["message_id"],
        "thread_id": message.get("message_thread_id")
        if origin == "staff" and message.get("is_topic_message")
        else None,
        "reply_to": replied["message_id"] if replied else None,
    }


def _message_inbound(message: dict, origin: str) -> Inbound:
    chat_id, user = message["chat"]["id"], message.get("from")
    where = _where(message, origin)
    text = message.get("text")
    if text is not None:
        command = _command(message, text)
        if command is not None:
            _, _, args = text[1:].partition(" ")
            return _inbound(
                chat_id,
                user,
                InboundKind.COMMAND,
                origin,
                command=command,
                text=args or None,
                **where,
            )
        return _inbound(chat_id, user, InboundKind.TEXT, origin, text=text, **where)
    media = _media(message)
    if media is not None:
        return _inbound(
            chat_id,
            user,
            InboundKind.MEDIA,
            origin,
            media=media,
            text=message.get("caption"),
            **where,
        )
    if "location" in message:
        return _inbound(chat_id, user, InboundKind.LOCATION, origin, **where)
    return _inbound(chat_id, user, InboundKind.OTHER, origin, **where)


def _command(message: dict, text: str) -> str | None:
    entities = message.get("entities") or ()
    if not any(e.get("type") == "bot_command" and e.get("offset") == 0 for e in entities):
        return None
    return text[1:].split(maxsplit=1)[0].split("@")[0].lower()


def _media(message: dict) -> Media | None:
    for kind in MEDIA_KINDS:
        item = message.get(kind)
        if not item:
            continue
        if kind == "photo":
            item = item[-1]  # the largest size
        return Media(
            kind=kind,
            file_id=item["file_id"],
            file_size=item.get("file_size"),
            mime_type=clean_text(item.get("mime_type")),
            file_name=clean_text(item.get("file_name")),
        )
    return None


def _inbound(chat_id: int, user: dict | None, kind: InboundKind, origin: str, **fields) -> Inbound:
    """Workers are known by their chat; staff by their own user id."""
    person = chat_id if origin == "worker" else (user["id"] if user else 0)
    for name in ("text", "command"):
        if name in fields:
            fields[name] = clean_text(fields[name])
    return Inbound(
        channel=CHANNEL,
        person_id=str(person),
        kind=kind,
        origin=origin,
        display_name=clean_text(_full_name(user)) if user else None,
        username=clean_text(user.get("username")) if user else None,
        language_hint=clean_text(user.get("language_code")) if user else None,
        **fields,
    )


def _full_name(user: dict) -> str:
    """As python-telegram-bot's User.full_name: first name, then the last name if any."""
    last = user.get("last_name")
    return f"{user.get('first_name', '')} {last}" if last else user.get("first_name", "")


def clean_text(text: str | None) -> str | None:
    """What people send, fit to store: control characters (NUL, which PostgreSQL's text
    refuses, and the rest of C0 but tab and line feed) removed, unpaired surrogates (which
    no database encodes) replaced by U+FFFD."""
    if text is None or (text.isprintable() and text.isascii()):
        return text
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))
