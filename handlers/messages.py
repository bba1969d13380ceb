"""The channel-free shapes that cross the seam: what a channel hands the engine (`Inbound`),
what a turn answers (`Reply`, with its `Choice`s) and sends beyond (`Outgoing`).

A channel turns its updates into `Inbound` and renders `Reply`; nothing past this seam knows
whether the person is on Telegram, WeChat or a web chat. They live here, beside the handlers
that read and make them, so that handlers need nothing from bot/.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from enum import StrEnum


class InboundKind(StrEnum):
    TEXT = "text"
    COMMAND = "command"
    CHOICE = "choice"  # a button press
    MEDIA = "media"
    LOCATION = "location"
    EDIT = "edit"  # an edited message: its new text is not an answer
    OTHER = "other"  # stickers, contacts, polls and whatever the channel adds next


@dataclass(frozen=True, slots=True)
class Media:
    kind: str  # photo, document, voice, video, audio, sticker, video_note, animation
    file_id: str
    file_size: int | None = None
    mime_type: str | None = None
    file_name: str | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    channel: str
    person_id: str
    kind: InboundKind
    text: str | None = None  # typed text, a caption, or a command's arguments
    command: str | None = None  # without the slash, lower case
    choice: str | None = None  # the key of the pressed button
    choice_tag: str | None = None  # which question the pressed button belonged to
    media: Media | None = None
    display_name: str | None = None
    username: str | None = None
    language_hint: str | None = None
    origin: str = "worker"  # or "staff": someone writing in the staff group
    message_id: int | None = None  # the message in its chat, for copies and replies
    thread_id: int | None = None  # the staff group's topic it was written in
    reply_to: int | None = None  # the message it answers, in the same chat


@dataclass(frozen=True, slots=True)
class Choice:
    """An answer offered as a button.

    Numbered choices are also listed in the text as 1., 2., … so typing the number works;
    the others (back, cancel, skip, done) are buttons and words only, so that a typed "1"
    on a question that wants a number or a name is never taken for one of them.
    `words` are the label in every language, so a bilingual worker may type either.
    """

    key: str
    label: str
    numbered: bool = True
    words: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Place:
    """A map pin sent after a reply's text (on Telegram a venue): where a worker can go.
    Title and address are plain text, not HTML: a map shows them as they are."""

    latitude: float
    longitude: float
    title: str
    address: str


@dataclass(frozen=True, slots=True)
class Photo:
    """A picture before a reply's text (which becomes its caption when short enough): one the
    channel already holds (`file_id`, a coordinator's photo), or one made here (`png`, a chart)."""

    file_id: str | None = None
    png: bytes | None = None

    def to_list(self) -> list:
        return [self.file_id, base64.b64encode(self.png).decode() if self.png else None]

    @classmethod
    def from_list(cls, data: list) -> Photo:
        file_id, png = data
        return cls(file_id, base64.b64decode(png) if png else None)


@dataclass(slots=True)
class Reply:
    """One message to the person: HTML text (user input already escaped) and its choices."""

    text: str
    choices: list[Choice] = field(default_factory=list)
    choice_tag: str | None = None  # which question the buttons answer, to spot old keyboards
    urgent: bool = False  # sent even while a flood holds the other replies back (crisis)
    place: Place | None = None  # a map pin after the text (which may then be empty)
    photo: Photo | None = None  # a picture, the text its caption (or after it, if long)

    def to_dict(self) -> dict:
        data = {
            "text": self.text,
            "choices": [[c.key, c.label, c.numbered] for c in self.choices],
            "choice_tag": self.choice_tag,
            "urgent": self.urgent,
        }
        if self.place is not None:  # rows without one stay as they were
            place = self.place
            data["place"] = [place.latitude, place.longitude, place.title, place.address]
        if self.photo is not None:
            data["photo"] = self.photo.to_list()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Reply:
        place = data.get("place")
        return cls(
            text=data["text"],
            choices=[Choice(key, label, numbered) for key, label, numbered in data["choices"]],
            choice_tag=data["choice_tag"],
            urgent=data.get("urgent", False),
            place=Place(*place) if place else None,
            photo=Photo.from_list(data["photo"]) if data.get("photo") else None,
        )


@dataclass(slots=True)
class Outgoing:
    """What a turn sends beyond its replies to the person who wrote: into a ticket's topic in
    the staff group, or to a worker on a counsellor's behalf. Everything is resolved when the
    turn commits (texts rendered, ids mapped); the channel only carries it out.

    - `post`: send `reply`; `copy`: copy message `copy_of` from the other side's chat.
    - `to`: "topic" (the ticket's topic, opened with `topic_title` if it has none yet) or
      "worker" (the ticket's worker, `worker`, on `worker_channel`: the worker may be on
      another channel than the staff, and a copy from them may need to become a post).
    - `record`: the ticket message whose delivery status and new message id to store.
    - `on_failure`: posted into the topic when a delivery to the worker fails.
    - `topic_state`: "close", "reopen" or "delete" the ticket's topic (no message).
    """

    action: str
    to: str
    ticket_id: int
    topic_title: str
    worker: str | None = None
    reply: Reply | None = None
    copy_of: int | None = None
    caption: str | None = None
    reply_to: int | None = None
    record: int | None = None
    on_failure: Reply | None = None
    topic_state: str | None = None
    topic_id: int | None = None  # the ticket's topic when the turn knew it (saves a look-up)
    as_text: Reply | None = None  # a copied text, as it reads merged into one post with others
    worker_channel: str | None = None  # the channel `worker` is on (None: the staff's own)

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in self.__slots__}
        for name in ("reply", "on_failure", "as_text"):
            data[name] = getattr(self, name).to_dict() if getattr(self, name) else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Outgoing:
        values = dict(data)  # rows written before worker_channel have none: the staff's own
        for name in ("reply", "on_failure", "as_text"):
            values[name] = Reply.from_dict(values[name]) if values.get(name) else None
        return cls(**values)
