"""The chats the local Bot API hosts, seen from the people in them.

Tests play workers and counsellors: a FakeUser is a worker in a private chat with the bot, a
FakeForum is the staff supergroup with one topic per case. Both send messages the way a
Telegram client would (pushing updates to the bot) and collect what the bot sent them, with a
cursor so a test can wait for "the next reply" without sleeping.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from local_servers.reading import MessageReader
from local_servers.telegram.formatting import utf16_len

if TYPE_CHECKING:
    from local_servers.telegram.server import LocalBotApi

_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")
_KINDS = ("text", "photo", "document", "voice", "video", "sticker", "venue", "location", "contact")
_query_ids = itertools.count(1)


@dataclass
class Button:
    text: str
    callback_data: str | None = None
    url: str | None = None


@dataclass
class BotMessage:
    """A message from the bot, as a test wants to look at it."""

    message_id: int
    chat_id: int
    message_thread_id: int | None
    text: str | None  # as the bot sent it, HTML included
    plain: str | None  # as the person sees it
    parse_mode: str | None
    buttons: list[list[Button]]
    kind: str
    media_file_id: str | None
    reply_to_message_id: int | None
    edited: bool = False
    raw: dict = field(default_factory=dict)  # the Message object the bot got back
    keyboard: list[list[str]] = field(default_factory=list)  # reply keyboard button texts
    copied_from: tuple[int, int] | None = None  # (chat_id, message_id) of a copy's original
    deleted: bool = False

    @classmethod
    def of(
        cls,
        message: dict,
        text: str | None,
        parse_mode: str | None,
        markup: dict | None = None,
        copied_from: tuple[int, int] | None = None,
    ) -> BotMessage:
        kind = next((kind for kind in _KINDS if kind in message), "other")
        media = message.get(kind) if kind != "text" else None
        if isinstance(media, list):  # photo sizes, largest last
            media = media[-1]
        reply = message.get("reply_to_message")
        keyboard = (markup or {}).get("keyboard") or []
        return cls(
            message_id=message["message_id"],
            chat_id=message["chat"]["id"],
            message_thread_id=message.get("message_thread_id"),
            text=text,
            plain=message.get("text", message.get("caption", _venue_text(message))),
            parse_mode=parse_mode,
            buttons=_inline_buttons(message),
            kind=kind,
            media_file_id=media.get("file_id") if isinstance(media, dict) else None,
            reply_to_message_id=reply["message_id"] if reply else None,
            raw=message,
            keyboard=[[_button_text(button) for button in row] for row in keyboard],
            copied_from=copied_from,
        )

    def apply_edit(self, message: dict, text: str | None, parse_mode: str | None) -> None:
        self.raw = message
        self.text, self.parse_mode = text, parse_mode
        self.plain = message.get("text", message.get("caption"))
        self.buttons = _inline_buttons(message)
        self.edited = True

    @property
    def button_texts(self) -> list[str]:
        return [button.text for row in self.buttons for button in row]


def _venue_text(message: dict) -> str | None:
    """What a person reads on a venue: its title and address (None for other messages)."""
    venue = message.get("venue")
    return f"{venue['title']}\n{venue['address']}" if venue else None


def _inline_buttons(message: dict) -> list[list[Button]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return [
        [Button(b.get("text", ""), b.get("callback_data"), b.get("url")) for b in row]
        for row in rows
    ]


def _button_text(button: str | dict) -> str:
    return button if isinstance(button, str) else button.get("text", "")


def _text_content(text: str) -> dict:
    """A person's text message; Telegram marks a leading /command for the bot."""
    content: dict = {"text": text}
    command = _COMMAND.match(text)
    if command:
        content["entities"] = [
            {"type": "bot_command", "offset": 0, "length": utf16_len(command.group(0))}
        ]
    return content


def _caption(caption: str | None) -> dict:
    return {"caption": caption} if caption else {}


class Chat(MessageReader[BotMessage]):
    """What private chats and forums share: one message_id sequence for people and bot alike,
    every message ever seen (for replies and copies) and a cursor over the bot's messages."""

    def __init__(self, api: LocalBotApi, chat: dict) -> None:
        super().__init__()
        self.id: int = chat["id"]
        self.chat = chat
        self._api = api
        self._history: dict[int, dict] = {}
        self._from_bot: dict[int, BotMessage] = {}
        self._last_message_id = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    @property
    def last(self) -> BotMessage | None:
        return self.messages[-1] if self.messages else None

    # --- the server's side ---

    def compose(
        self,
        sender: dict,
        content: dict,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict:
        """Store a new Message in this chat and return it."""
        replied = self._history.get(reply_to) if reply_to is not None else None
        if reply_to is not None and replied is None:
            raise LookupError(f"no message {reply_to} in chat {self.id}")
        if thread_id is None and replied and replied.get("is_topic_message"):
            thread_id = replied["message_thread_id"]  # a reply lands in the replied topic
        if thread_id is not None and replied is None:
            replied = self._history.get(thread_id)  # in a topic, Telegram replies to its root
        self._last_message_id += 1
        message = {
            "message_id": self._last_message_id,
            "from": sender,
            "date": int(time.time()),
            "chat": self.chat,
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if replied is not None:
            message["reply_to_message"] = {
                key: value for key, value in replied.items() if key != "reply_to_message"
            }
        message.update(content)
        self._history[message["message_id"]] = message
        return message

    def message(self, message_id: object) -> dict | None:
        return self._history.get(message_id)  # type: ignore[arg-type]

    def replace(self, message: dict) -> None:
        self._history[message["message_id"]] = message

    def forget(self, message_id: int) -> bool:
        if self._history.pop(message_id, None) is None:
            return False
        if message_id in self._from_bot:
            self._from_bot[message_id].deleted = True
        return True

    def bot_message(self, message_id: object) -> BotMessage | None:
        return self._from_bot.get(message_id)  # type: ignore[arg-type]

    def add_bot_message(self, message: BotMessage) -> None:
        self.messages.append(message)
        self._from_bot[message.message_id] = message
        self.wake()

    # --- the person's side ---

    def _post(
        self,
        sender: dict,
        content: dict,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict:
        message = self.compose(sender, content, thread_id=thread_id, reply_to=reply_to)
        self._api.push_update({"message": message})
        return message

    def _press(self, presser: FakeUser, button: str | int, message: BotMessage | None) -> dict:
        if message is None:
            message = next(
                (m for m in reversed(self.messages) if m.buttons and not m.deleted), None
            )
            if message is None:
                raise LookupError(f"no bot message with an inline keyboard in {self!r}")
        chosen = _choose(message, button)
        if chosen.callback_data is None:
            raise LookupError(f"button {chosen.text!r} has no callback_data (url={chosen.url})")
        query = {
            "id": f"LOCAL-query-{next(_query_ids)}",
            "from": presser.user,
            "message": message.raw,
            "chat_instance": f"LOCAL-instance-{self.id}",
            "data": chosen.callback_data,
        }
        self._api.push_update({"callback_query": query})
        return query

    def _missing(self, n: int, timeout: float) -> str:
        unread = self.messages[self._cursor :]
        seen = [m.plain for m in self.messages[max(self._cursor - 3, 0) : self._cursor]]
        return (
            f"{self!r}: expected {n} new bot message(s) within {timeout}s, got "
            f"{len(unread)}: {[m.plain for m in unread]}; before them: {seen}"
        )


def _choose(message: BotMessage, button: str | int) -> Button:
    flat = [b for row in message.buttons for b in row]
    if isinstance(button, int):
        if 0 <= button < len(flat):
            return flat[button]
    else:
        exact = [b for b in flat if b.text == button]
        partial = [b for b in flat if button in b.text]
        if exact or partial:
            return (exact or partial)[0]
    raise LookupError(
        f"no button {button!r} on message {message.message_id}; buttons: {message.button_texts}"
    )


class FakeUser(Chat):
    """A worker (or counsellor) and their private chat with the bot; chat id == user id."""

    def __init__(self, api: LocalBotApi, user: dict) -> None:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        chat.update((key, user[key]) for key in ("last_name", "username") if key in user)
        super().__init__(api, chat)
        self.user = user
        self.blocked = False
        self.callback_answers: list[dict] = []

    def send(self, text: str, *, reply_to: int | None = None) -> dict:
        return self._post(self.user, _text_content(text), reply_to=reply_to)

    def send_photo(self, *, caption: str | None = None, file_size: int = 85_000) -> dict:
        photo = self._api.files.new_photo(file_size)
        return self._post(self.user, {"photo": photo, **_caption(caption)})

    def send_document(
        self,
        file_name: str = "contract.pdf",
        *,
        mime_type: str = "application/pdf",
        file_size: int = 120_000,
        caption: str | None = None,
    ) -> dict:
        document = self._api.files.new(
            "document", file_size, file_name=file_name, mime_type=mime_type
        )
        return self._post(self.user, {"document": document, **_caption(caption)})

    def send_voice(self, *, duration: int = 7, file_size: int = 30_000) -> dict:
        voice = self._api.files.new("voice", file_size, duration=duration)
        return self._post(self.user, {"voice": voice})

    def send_video(self, *, duration: int = 12, file_size: int = 2_000_000) -> dict:
        video = self._api.files.new("video", file_size, duration=duration)
        return self._post(self.user, {"video": video})

    def send_sticker(self, emoji: str = "😀") -> dict:
        sticker = self._api.files.new("sticker", 20_000, emoji=emoji)
        return self._post(self.user, {"sticker": sticker})

    def send_location(self, latitude: float, longitude: float) -> dict:
        return self._post(self.user, {"location": {"latitude": latitude, "longitude": longitude}})

    def send_contact(self, phone_number: str) -> dict:
        contact = {
            "phone_number": phone_number,
            "first_name": self.user["first_name"],
            "user_id": self.id,
        }
        return self._post(self.user, {"contact": contact})

    def edit(self, message_id: int, text: str) -> dict:
        original = self._history.get(message_id)
        if original is None or original["from"]["id"] != self.id:
            raise LookupError(f"{self!r} sent no message {message_id}")
        edited = {key: value for key, value in original.items() if key != "entities"}
        edited.update(_text_content(text), edit_date=int(time.time()))
        self.replace(edited)
        self._api.push_update({"edited_message": edited})
        return edited

    def press(self, button: str | int, *, message: BotMessage | None = None) -> dict:
        return self._press(self, button, message)


class FakeForum(Chat):
    """The staff supergroup: forum topics, one per case, where counsellors talk to the bot."""

    def __init__(self, api: LocalBotApi, chat_id: int, title: str) -> None:
        super().__init__(
            api, {"id": chat_id, "type": "supergroup", "title": title, "is_forum": True}
        )
        self.topics: dict[int, dict] = {}

    def open_topic(
        self, sender: dict, name: str, icon_color: int, icon_custom_emoji_id: str | None = None
    ) -> int:
        """Create a topic; its thread id is the id of the service message that created it."""
        created = {"name": name, "icon_color": icon_color}
        if icon_custom_emoji_id:
            created["icon_custom_emoji_id"] = icon_custom_emoji_id
        root = self.compose(sender, {"forum_topic_created": created})
        thread_id = root["message_id"]
        root.update(message_thread_id=thread_id, is_topic_message=True)
        self.topics[thread_id] = {
            "name": name,
            "icon_color": icon_color,
            "closed": False,
            "edits": [],
        }
        return thread_id

    def topic_messages(self, thread_id: int) -> list[BotMessage]:
        return [m for m in self.messages if m.message_thread_id == thread_id]

    def send(
        self,
        member: FakeUser,
        text: str,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict:
        self._check_topic(thread_id)
        return self._post(member.user, _text_content(text), thread_id=thread_id, reply_to=reply_to)

    def send_photo(
        self, member: FakeUser, *, thread_id: int | None = None, caption: str | None = None
    ) -> dict:
        self._check_topic(thread_id)
        photo = self._api.files.new_photo(85_000)
        return self._post(member.user, {"photo": photo, **_caption(caption)}, thread_id=thread_id)

    def press(
        self, member: FakeUser, button: str | int, *, message: BotMessage | None = None
    ) -> dict:
        return self._press(member, button, message)

    def _check_topic(self, thread_id: int | None) -> None:
        if thread_id is not None and thread_id not in self.topics:
            raise LookupError(f"no topic {thread_id} in {self!r}; topics: {list(self.topics)}")
