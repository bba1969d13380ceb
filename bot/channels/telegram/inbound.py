"""Telegram updates as the engine's Inbound: private chats are workers, the staff group is
staff, every other chat is ignored."""

from __future__ import annotations

import re

from telegram import Message, Update

from handlers.messages import Inbound, InboundKind, Media

CHANNEL = "telegram"
CHOICE_SEPARATOR = "|"  # callback data: "<question tag>|<choice key>"
MEDIA_KINDS = ("photo", "document", "voice", "video", "audio", "video_note", "animation", "sticker")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")  # C0 controls but tab and line feed
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # a str holds surrogates only unpaired


def to_inbound(update: Update, *, staff_chat_id: int | None = None) -> Inbound | None:
    """What the person did, without Telegram's types; None for what the bot does not answer.

    Private chats are workers. The staff group is staff (whoever they are: the desk checks
    the registry). Every other chat is ignored."""
    if update.callback_query is not None:
        query = update.callback_query
        message = query.message
        if message is None:
            return None
        origin = _origin(message.chat, staff_chat_id)
        if origin is None:
            return None
        tag, _, key = (query.data or "").rpartition(CHOICE_SEPARATOR)
        return _inbound(
            message.chat.id,
            query.from_user,
            InboundKind.CHOICE,
            origin,
            choice=key or None,
            choice_tag=tag or None,
            thread_id=message.message_thread_id if origin == "staff" else None,
        )
    message = update.edited_message or update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    origin = _origin(message.chat, staff_chat_id)
    if origin is None:
        return None
    if update.edited_message is not None:
        return _inbound(
            message.chat.id,
            message.from_user,
            InboundKind.EDIT,
            origin,
            text=message.text,
            **_where(message, origin),
        )
    return _message_inbound(message, origin)


def _origin(chat, staff_chat_id: int | None) -> str | None:
    if chat.type == "private":
        return "worker"
    if staff_chat_id is not None and chat.id == staff_chat_id:
        return "staff"
    return None


def _where(message: Message, origin: str) -> dict:
    """The message's place: its id, its topic in the staff group, the message it answers.
    In a forum every topic message "replies" to the topic's first message: not a reply."""
    replied = message.reply_to_message
    if replied is not None and replied.forum_topic_created is not None:
        replied = None
    return {
        "message_id": message.message_id,
        "thread_id": message.message_thread_id
        if origin == "staff" and message.is_topic_message
        else None,
        "reply_to": replied.message_id if replied else None,
    }


def _message_inbound(message: Message, origin: str) -> Inbound:
    chat_id, user = message.chat.id, message.from_user
    where = _where(message, origin)
    text = message.text
    if text is not None:
        command = _command(message)
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
            chat_id, user, InboundKind.MEDIA, origin, media=media, text=message.caption, **where
        )
    if message.location is not None:
        return _inbound(chat_id, user, InboundKind.LOCATION, origin, **where)
    return _inbound(chat_id, user, InboundKind.OTHER, origin, **where)


def _command(message: Message) -> str | None:
    entities = message.entities or ()
    if not any(e.type == "bot_command" and e.offset == 0 for e in entities):
        return None
    return message.text[1:].split(maxsplit=1)[0].split("@")[0].lower()


def _media(message: Message) -> Media | None:
    for kind in MEDIA_KINDS:
        item = getattr(message, kind)
        if not item:
            continue
        if kind == "photo":
            item = item[-1]  # the largest size
        return Media(
            kind=kind,
            file_id=item.file_id,
            file_size=item.file_size,
            mime_type=clean_text(getattr(item, "mime_type", None)),
            file_name=clean_text(getattr(item, "file_name", None)),
        )
    return None


def _inbound(chat_id: int, user, kind: InboundKind, origin: str, **fields) -> Inbound:
    """Workers are known by their chat; staff by their own user id."""
    person = chat_id if origin == "worker" else (user.id if user else 0)
    for name in ("text", "command"):
        if name in fields:
            fields[name] = clean_text(fields[name])
    return Inbound(
        channel=CHANNEL,
        person_id=str(person),
        kind=kind,
        origin=origin,
        display_name=clean_text(user.full_name) if user else None,
        username=clean_text(user.username) if user else None,
        language_hint=clean_text(user.language_code) if user else None,
        **fields,
    )


def clean_text(text: str | None) -> str | None:
    """What people send, fit to store: control characters (NUL, which PostgreSQL's text
    refuses, and the rest of C0 but tab and line feed) removed, unpaired surrogates (which
    no database encodes) replaced by U+FFFD."""
    if text is None or (text.isprintable() and text.isascii()):
        return text
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))
