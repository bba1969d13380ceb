"""Notices from the centre, as a worker has them: subscribed from their first visit (the
welcome says so and how to leave), /stop to leave, /start to come back; each notice in their
language, with the way out under it."""

from __future__ import annotations

from markupsafe import escape

from content.catalog import Catalog
from db.models import Broadcast
from handlers.flow import MENU, Flow, Outcome, Turn
from handlers.messages import Photo, Reply

notices = Flow("notices", commands=["stop"])


async def _stop(turn: Turn) -> Outcome:
    if turn.person.notices_off_at is None:
        turn.person.notices_off_at = turn.now
        turn.say("notices.stopped")
    else:
        turn.say("notices.already_stopped")
    return MENU


@notices.step("stop", ask=_stop)
async def stop(turn: Turn) -> Outcome:  # never asked: _stop leaves for the menu
    return MENU


def rejoin(turn: Turn, welcome: str) -> None:
    """/start: says the welcome (the text `welcome`), and to a worker who had stopped the
    notices that they will get them again, in the same message."""
    text = str(turn.t(welcome))
    if turn.person.notices_off_at is not None:
        turn.person.notices_off_at = None
        text = f"{turn.t('notices.rejoined')}\n\n{text}"
    turn.replies.append(Reply(text))


def notice_reply(
    catalog: Catalog, broadcast: Broadcast, language: str, reads: str | None = None
) -> Reply:
    """The notice as the worker sees it: the coordinator's text in `language` as typed (never
    markup), the picture if there is one, and how to stop notices in their own language."""
    t = catalog.translator(reads or language)
    text = f"{escape(broadcast.texts[language])}\n\n{t('notices.footer')}"
    return Reply(text, photo=Photo(file_id=broadcast.photo) if broadcast.photo else None)


def footer_length(catalog: Catalog, language: str) -> int:
    """What the way out adds to a notice, in Telegram's count (UTF-16 units)."""
    return telegram_units(f"\n\n{catalog.translator(language)('notices.footer')}")


def telegram_units(text: str) -> int:
    """Telegram measures a text in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2
