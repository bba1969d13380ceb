"""/broadcast in the staff group: a coordinator composes a notice step by step (its text in
each language, a picture, the audience, a preview as workers will see it, now or at a set
time), then watches its progress message, with pause, resume and cancel buttons.

The staff side keeps no conversation state of its own: the draft broadcast is the state.
Its `step` says what was asked; the coordinator's next message in the same thread (or a
press of the draft's buttons) answers it.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from content.catalog import Catalog, Translator
from db import broadcasts
from db.broadcasts import AUDIENCES, audience_size, text_language
from db.models import Broadcast, BroadcastStatus, StaffRole
from handlers.messages import Choice, InboundKind, Reply
from handlers.notices import footer_length, notice_reply, telegram_units

if TYPE_CHECKING:  # handlers/staff.py imports this module to dispatch /broadcast
    from handlers.staff import StaffTurn

MANAGERS = (StaffRole.COORDINATOR, StaffRole.ADMIN)
TEXT_LIMIT, CAPTION_LIMIT = 4096, 1024  # Telegram's, for a message and a photo's caption
COMPOSE_TAG, PROGRESS_TAG = "bcompose", "broadcast"
TIME_FORMAT = "%Y-%m-%d %H:%M"
BAR_CELLS = 20


def _ask(turn: StaffTurn, key: str, draft: Broadcast, *keys: str, **variables) -> None:
    """A question of the composition, with its buttons (each step's own, then Cancel)."""
    choices = [_choice(turn.t, k) for k in keys] + [_choice(turn.t, "cancel")]
    text = str(turn.t(key, **variables))
    turn.replies.append(Reply(text, choices, choice_tag=f"{COMPOSE_TAG}.{draft.id}"))


def _choice(t: Translator, key: str, label: str | None = None) -> Choice:
    return Choice(key, label or str(t(f"broadcast.choices.{key}")), numbered=False)


async def broadcast_command(turn: StaffTurn) -> None:
    """/broadcast: a new draft (replacing the coordinator's unfinished one), first its text
    in the hotline's first language."""
    if turn.staff.role not in MANAGERS:
        turn.say("broadcast.coordinators_only")
        return
    if turn.ticket is not None:
        turn.say("broadcast.where")
        return
    await broadcasts.drop_drafts(turn.session, staff_id=turn.staff.id)
    first = turn.catalog.languages[0]
    draft = Broadcast(
        created_by=turn.staff.alias,
        staff_id=turn.staff.id,
        thread_id=turn.inbound.thread_id,
        step=f"text:{first}",
        created_at=turn.now,
        updated_at=turn.now,
    )
    turn.session.add(draft)
    await turn.session.flush()
    _ask(turn, "broadcast.ask_text", draft, language=_language_name(turn, first))


async def draft_for(turn: StaffTurn) -> Broadcast | None:
    """The draft this message of a coordinator answers, if any (General or a non-ticket
    topic, where they started it)."""
    if turn.staff is None or turn.staff.role not in MANAGERS or turn.ticket is not None:
        return None
    return await broadcasts.draft_of(
        turn.session, staff_id=turn.staff.id, thread_id=turn.inbound.thread_id
    )


async def compose(turn: StaffTurn, draft: Broadcast) -> None:
    """One answer to the draft's current step."""
    inbound = turn.inbound
    choice = inbound.choice if inbound.kind is InboundKind.CHOICE else None
    if choice == "cancel":
        await turn.session.delete(draft)
        turn.say("broadcast.cancelled")
        return
    step, _, language = (draft.step or "").partition(":")
    draft.updated_at = turn.now
    if step == "text":
        await _text_step(turn, draft, language, choice)
    elif step == "photo":
        await _photo_step(turn, draft, choice)
    elif step == "audience":
        await _audience_step(turn, draft, choice)
    elif step == "segment":
        await _segment_step(turn, draft, choice)
    elif step == "when":
        await _when_step(turn, draft, choice)
    elif step == "time":
        _time_step(turn, draft)
    turn.session.add(draft)


async def _text_step(turn: StaffTurn, draft: Broadcast, language: str, choice: str | None) -> None:
    languages = turn.catalog.languages
    required = language == languages[0]
    if choice == "skip" and not required:
        _next_text(turn, draft, language)
        return
    inbound = turn.inbound
    if inbound.kind not in (InboundKind.TEXT, InboundKind.COMMAND) or inbound.media is not None:
        _ask_text_again(turn, draft, language, "broadcast.not_text")
        return
    text = (inbound.text or "").strip()
    if not text:
        _ask_text_again(turn, draft, language, "broadcast.empty")
        return
    limit = TEXT_LIMIT - footer_length(turn.catalog, language)
    if telegram_units(text) > limit:
        _ask_text_again(
            turn, draft, language, "broadcast.too_long", length=telegram_units(text), limit=limit
        )
        return
    draft.texts = {**draft.texts, language: text}
    _next_text(turn, draft, language)


def _ask_text_again(turn: StaffTurn, draft: Broadcast, language: str, key: str, **values) -> None:
    turn.say(key, **values)
    required = language == turn.catalog.languages[0]
    keys = () if required else ("skip",)
    question = "broadcast.ask_text" if required else "broadcast.ask_translation"
    _ask(turn, question, draft, *keys, language=_language_name(turn, language))


def _next_text(turn: StaffTurn, draft: Broadcast, language: str) -> None:
    languages = turn.catalog.languages
    following = languages[languages.index(language) + 1 :]
    if following:
        draft.step = f"text:{following[0]}"
        _ask(
            turn,
            "broadcast.ask_translation",
            draft,
            "skip",
            language=_language_name(turn, following[0]),
        )
        return
    draft.step = "photo"
    _ask(turn, "broadcast.ask_photo", draft, "no_photo")


async def _photo_step(turn: StaffTurn, draft: Broadcast, choice: str | None) -> None:
    if choice == "no_photo":
        draft.photo = None
        _ask_audience(turn, draft)
        return
    media = turn.inbound.media
    if media is None or media.kind != "photo":
        turn.say("broadcast.not_a_photo")
        _ask(turn, "broadcast.ask_photo", draft, "no_photo")
        return
    for language, text in draft.texts.items():
        limit = CAPTION_LIMIT - footer_length(turn.catalog, language)
        if telegram_units(text) > limit:
            turn.say(
                "broadcast.caption_too_long",
                limit=limit,
                length=telegram_units(text),
                language=_language_name(turn, language),
            )
            _ask(turn, "broadcast.ask_photo", draft, "no_photo")
            return
    draft.photo = media.file_id
    _ask_audience(turn, draft)


def _ask_audience(turn: StaffTurn, draft: Broadcast) -> None:
    draft.step = "audience"
    choices = [Choice(k, str(turn.t(f"broadcast.audiences.{k}"))) for k in AUDIENCES]
    choices.append(_choice(turn.t, "cancel"))
    tag = f"{COMPOSE_TAG}.{draft.id}"
    turn.replies.append(Reply(str(turn.t("broadcast.ask_audience")), choices, choice_tag=tag))


async def _audience_step(turn: StaffTurn, draft: Broadcast, choice: str | None) -> None:
    choice = choice or _typed_number(turn, AUDIENCES)
    if choice not in AUDIENCES:
        _ask_audience(turn, draft)
        return
    if choice in ("language", "district"):
        draft.audience = {"kind": choice, "value": None}
        draft.step = "segment"
        _ask_segment(turn, draft)
        return
    draft.audience = {"kind": choice, "value": None}
    await _preview(turn, draft)


def _segments(turn: StaffTurn, draft: Broadcast) -> list[Choice]:
    catalog = turn.catalog
    if draft.audience["kind"] == "language":
        return [Choice(lang, _language_name(turn, lang)) for lang in catalog.languages]
    return [Choice(d, str(turn.t(f"districts.{d}"))) for d in catalog.districts]


def _ask_segment(turn: StaffTurn, draft: Broadcast) -> None:
    key = f"broadcast.ask_{draft.audience['kind']}"
    choices = [*_segments(turn, draft), _choice(turn.t, "cancel")]
    tag = f"{COMPOSE_TAG}.{draft.id}"
    turn.replies.append(Reply(str(turn.t(key)), choices, choice_tag=tag))


async def _segment_step(turn: StaffTurn, draft: Broadcast, choice: str | None) -> None:
    keys = [c.key for c in _segments(turn, draft)]
    choice = choice or _typed_number(turn, keys)
    if choice not in keys:
        _ask_segment(turn, draft)
        return
    draft.audience = {**draft.audience, "value": choice}
    await _preview(turn, draft)


def _typed_number(turn: StaffTurn, keys) -> str | None:
    """A coordinator may type the number of a choice instead of pressing it."""
    typed = (turn.inbound.text or "").strip()
    if typed.isdigit() and 1 <= int(typed) <= len(keys):
        return list(keys)[int(typed) - 1]
    return None


async def _preview(turn: StaffTurn, draft: Broadcast) -> None:
    """The number of recipients and who gets the Chinese text in place of theirs, then the
    notice in each language written, exactly as workers will get it."""
    size = await audience_size(turn.session, audience=draft.audience)
    if size.total == 0:
        turn.say("broadcast.nobody")
        _ask_audience(turn, draft)
        return
    catalog = turn.catalog
    fallback = catalog.languages[0]
    falling_back = sum(
        n
        for lang, n in size.by_language.items()
        if text_language(draft.texts, lang, fallback=fallback) != (lang or fallback)
    )
    note = str(turn.t("broadcast.fallback", count=falling_back)) if falling_back else ""
    for language in draft.texts:
        turn.say(
            "broadcast.preview",
            count=size.total,
            fallback=note,
            language=_language_name(turn, language),
        )
        turn.replies.append(notice_reply(catalog, draft, language))
    draft.step = "when"
    _ask(turn, "broadcast.ask_when", draft, "send_now", "schedule")


async def _when_step(turn: StaffTurn, draft: Broadcast, choice: str | None) -> None:
    if choice == "send_now":
        draft.status, draft.scheduled_at, draft.step = BroadcastStatus.SCHEDULED, turn.now, None
        turn.say("broadcast.started", id=draft.id)
    elif choice == "schedule":
        draft.step = "time"
        _ask(turn, "broadcast.ask_time", draft, example=_example(turn))
    else:
        _ask(turn, "broadcast.ask_when", draft, "send_now", "schedule")


def _time_step(turn: StaffTurn, draft: Broadcast) -> None:
    zone = turn.catalog.office_hours.timezone
    at = read_send_time(turn.inbound.text or "", zone)
    if at is None:
        turn.say("broadcast.bad_time", example=_example(turn))
        _ask(turn, "broadcast.ask_time", draft, example=_example(turn))
        return
    if at <= turn.now:
        turn.say("broadcast.past_time", example=_example(turn))
        _ask(turn, "broadcast.ask_time", draft, example=_example(turn))
        return
    draft.status, draft.scheduled_at, draft.step = BroadcastStatus.SCHEDULED, at, None
    turn.say(
        "broadcast.scheduled",
        id=draft.id,
        at=at.astimezone(zone).strftime(TIME_FORMAT),
        count="?" if draft.recipients == 0 else draft.recipients,
    )


def _example(turn: StaffTurn) -> str:
    zone = turn.catalog.office_hours.timezone
    tomorrow = (turn.now.astimezone(zone) + timedelta(days=1)).replace(hour=9, minute=0)
    return tomorrow.strftime(TIME_FORMAT)


_TIME = re.compile(
    r"^\s*(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?\s*(\d{1,2})[:：点时](\d{2})?分?\s*$"
)


def read_send_time(text: str, zone: ZoneInfo) -> datetime | None:
    """ "2026-12-05 09:00" (also 2026/12/5 9:00, 2026年12月5日 9点) in the centre's time, as
    an aware datetime; None when it cannot be read or is no real time."""
    found = _TIME.match(text)
    if found is None:
        return None
    year, month, day, hour, minute = (int(part or 0) for part in found.groups())
    try:
        return datetime(year, month, day, hour, minute, tzinfo=zone)
    except ValueError:
        return None


def _language_name(turn: StaffTurn, language: str) -> str:
    return str(turn.catalog.translator(language)("language.name"))


# -- the progress message and its buttons --------------------------------------------------


def progress_reply(
    catalog: Catalog,
    broadcast: Broadcast,
    counts: dict[str, int],
    *,
    rate: float | None,
    now: datetime,
) -> Reply:
    """The progress message: a bar, the counts, the rate and when it should be done; the
    buttons that apply now."""
    t = catalog.translator(catalog.staff_language)
    zone = catalog.office_hours.timezone
    total = broadcast.recipients or sum(counts.values())
    done = sum(counts[s] for s in ("sent", "failed", "blocked", "unknown"))
    share = done / total if total else 1.0
    filled = math.floor(share * BAR_CELLS)
    lines = [
        str(t("broadcast.progress.title", id=broadcast.id, by=broadcast.created_by)),
        str(
            t(
                "broadcast.progress.bar",
                bar="▓" * filled + "░" * (BAR_CELLS - filled),
                percent=math.floor(share * 100),
            )
        ),
        str(
            t(
                "broadcast.progress.counts",
                total=total,
                **{k: counts[k] for k in ("sent", "failed", "blocked", "unknown")},
            )
        ),
    ]
    keys: tuple[str, ...] = ()
    pending = counts["pending"] + counts["sending"]
    status = broadcast.status
    if status == BroadcastStatus.SCHEDULED and broadcast.scheduled_at:
        at = broadcast.scheduled_at.astimezone(zone).strftime(TIME_FORMAT)
        lines.append(str(t("broadcast.progress.waiting", at=at)))
        keys = ("stop",)
    elif status == BroadcastStatus.SENDING:
        if rate and pending:
            eta = (now + timedelta(seconds=pending / rate)).astimezone(zone).strftime("%H:%M:%S")
            lines.append(str(t("broadcast.progress.rate", rate=f"{rate:.1f}", eta=eta)))
        keys = ("pause", "stop")
    elif status == BroadcastStatus.PAUSED:
        lines.append(str(t("broadcast.progress.paused", pending=pending)))
        keys = ("resume", "stop")
    elif status == BroadcastStatus.DONE:
        took = (broadcast.finished_at or now) - (broadcast.started_at or now)
        lines.append(str(t("broadcast.progress.done", took=_took(took))))
    elif status == BroadcastStatus.CANCELLED:
        lines.append(str(t("broadcast.progress.stopped", pending=pending)))
    choices = [_choice(t, key) for key in keys]
    return Reply("\n".join(lines), choices, choice_tag=f"{PROGRESS_TAG}.{broadcast.id}")


def final_reply(catalog: Catalog, broadcast: Broadcast, counts: dict[str, int]) -> Reply:
    t = catalog.translator(catalog.staff_language)
    kept = {k: counts[k] for k in ("sent", "failed", "blocked", "unknown")}
    return Reply(str(t("broadcast.final", id=broadcast.id, **kept)))


def _took(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


PRESSES = {  # button: (new status, from which statuses, what the presser is told)
    "pause": (BroadcastStatus.PAUSED, (BroadcastStatus.SENDING,), "broadcast.buttons.paused"),
    "resume": (BroadcastStatus.SENDING, (BroadcastStatus.PAUSED,), "broadcast.buttons.resumed"),
    "stop": (
        BroadcastStatus.CANCELLED,
        (BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING, BroadcastStatus.PAUSED),
        "broadcast.buttons.stopped",
    ),
}


async def progress_button(turn: StaffTurn) -> None:
    """Pause, resume or cancel from the progress message: coordinators and admins only; the
    message itself is redrawn by the sender within seconds."""
    if turn.staff.role not in MANAGERS:
        turn.alert = str(turn.t("broadcast.coordinators_only"))
        return
    _, _, number = (turn.inbound.choice_tag or "").partition(".")
    press = PRESSES.get(turn.inbound.choice or "")
    if not number.isdigit() or press is None:
        turn.alert = str(turn.t("common.old_button"))
        return
    to, allowed, told = press
    changed = await broadcasts.set_status(
        turn.session, broadcast_id=int(number), to=to, allowed_from=allowed, now=turn.now
    )
    if changed:
        turn.alert = str(turn.t(told))
        return
    broadcast = await turn.session.get(Broadcast, int(number))
    status = turn.t(f"broadcast.statuses.{broadcast.status}") if broadcast else "?"
    turn.alert = str(turn.t("broadcast.buttons.unchanged", status=status))
