"""The channel-free shapes that cross the seam between a channel adapter and the engine.

A channel turns its updates into `Inbound` and renders `Reply`; nothing past this seam knows
whether the person is on Telegram, WeChat or a web chat.
"""

from __future__ import annotations

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


@dataclass(slots=True)
class Reply:
    """One message to the person: HTML text (user input already escaped) and its choices."""

    text: str
    choices: list[Choice] = field(default_factory=list)
    choice_tag: str | None = None  # which question the buttons answer, to spot old keyboards

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "choices": [[c.key, c.label, c.numbered] for c in self.choices],
            "choice_tag": self.choice_tag,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Reply:
        return cls(
            text=data["text"],
            choices=[Choice(key, label, numbered) for key, label, numbered in data["choices"]],
            choice_tag=data["choice_tag"],
        )


@dataclass(slots=True)
class TurnResult:
    replies: list[Reply]
    catch_up_after: float | None = None  # replies were held back (flood): ask again after this
