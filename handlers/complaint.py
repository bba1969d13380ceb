"""Complaint intake: consent, then one question at a time, a review, and a ticket reference.

The order of the steps below is the order of the questions; `when` skips the wage questions
for complaints that are not about pay. A worker may go back, leave and come back (the draft
is kept), or change any answer from the review.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from db.models import TicketKind
from db.tickets import count_open_tickets, open_ticket
from handlers.flow import FINISHED, MENU, NEXT, STAY, Flow, Outcome, Turn
from handlers.mediation import post_card
from handlers.messages import Choice
from handlers.office_hours import say_if_after_hours

complaint = Flow("complaint", commands=["complaint"], keeps_draft=True)

EVIDENCE_KINDS = {"photo", "document", "voice", "video", "audio", "video_note"}
CHANGEABLE = (
    "category",
    "employer",
    "district",
    "address",
    "story",
    "amount",
    "months",
    "evidence",
    "phone",
    "identity",
)
PHONE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")


def about_wages(turn: Turn) -> bool:
    category = turn.catalog.category(turn.data.get("category", ""))
    return bool(category and category.about_wages)


def has(key: str):
    return lambda data: key in data


def limit(turn: Turn, name: str) -> int:
    return turn.catalog.limits[name]


@complaint.step(
    "consent",
    expects="choice",
    when=lambda turn: turn.person.consented_at is None,
    options=lambda turn: [turn.option("agree"), turn.option("decline")],
)
async def consent(turn: Turn) -> Outcome:
    """Records consent to store sensitive details, or explains where else to turn."""
    if turn.choice == "decline":
        turn.say("complaint.consent.declined")
        return FINISHED
    turn.person.consented_at = turn.now
    return NEXT


@complaint.step(
    "category",
    expects="choice",
    answered=has("category"),
    options=lambda turn: [
        turn.option(c.key, f"categories.{c.key}") for c in turn.catalog.categories
    ],
)
async def category(turn: Turn) -> Outcome:
    """Stores the kind of problem and asks for the employer."""
    turn.data["category"] = turn.choice
    return NEXT


@complaint.step("employer", max_chars=200, answered=has("employer"))
async def employer(turn: Turn) -> Outcome:
    """Stores the employer's name and asks for the district."""
    turn.data["employer"] = turn.text
    return NEXT


@complaint.step(
    "district",
    expects="choice",
    answered=has("district"),
    options=lambda turn: [turn.option(d, f"districts.{d}") for d in turn.catalog.districts],
)
async def district(turn: Turn) -> Outcome:
    """Stores the district and asks for the workplace address."""
    turn.data["district"] = turn.choice
    return NEXT


@complaint.step("address", max_chars=300, answered=has("address"))
async def address(turn: Turn) -> Outcome:
    """Stores the workplace address and asks what happened."""
    turn.data["address"] = turn.text
    return NEXT


@complaint.step("story", expects="any", extra=("done",), max_chars=8000, answered=has("story"))
async def story(turn: Turn) -> Outcome:
    """Collects what happened, over as many messages as the worker needs, until "done"."""
    parts: list[str] = turn.data.setdefault("story", [])
    if turn.choice == "done":
        if not parts:
            turn.say("complaint.story.empty")
            return STAY
        return NEXT
    media = turn.inbound.media
    if media is not None and media.kind in EVIDENCE_KINDS:
        return _keep_evidence(turn, then="complaint.story.media_kept")
    if turn.text is None:
        turn.say("common.text_expected")
        return STAY
    if sum(len(p) for p in parts) + len(turn.text) > limit(turn, "story_chars"):
        turn.say("complaint.story.full", limit=limit(turn, "story_chars"))
        return STAY
    parts.append(turn.text)
    turn.say("complaint.story.more")
    return STAY


@complaint.step("amount", when=about_wages, max_chars=30, answered=has("amount"))
async def amount(turn: Turn) -> Outcome:
    """Stores the amount owed in yuan and asks which months it covers."""
    value = parse_amount(turn.text or "", maximum=limit(turn, "max_amount"))
    if value is None:
        turn.say("complaint.amount.invalid", maximum=limit(turn, "max_amount"))
        return STAY
    turn.data["amount"] = value
    return NEXT


@complaint.step("months", when=about_wages, max_chars=100, answered=has("months"))
async def months(turn: Turn) -> Outcome:
    """Stores the months the unpaid wages cover and asks for evidence."""
    turn.data["months"] = turn.text
    return NEXT


@complaint.step("evidence", expects="media", extra=("done",), answered=has("evidence"))
async def evidence(turn: Turn) -> Outcome:
    """Keeps photos, documents and voice notes until the worker says done."""
    turn.data.setdefault("evidence", [])
    if turn.choice == "done":
        return NEXT
    if turn.inbound.media is None:
        turn.say("complaint.evidence.how")
        return STAY
    return _keep_evidence(turn, then="complaint.evidence.received")


@complaint.step("phone", max_chars=30, extra=("skip",), answered=has("phone"))
async def phone(turn: Turn) -> Outcome:
    """Stores an optional mobile number, checked, and asks about anonymity."""
    if turn.choice == "skip":
        turn.data["phone"] = None
        return NEXT
    digits = re.sub(r"[\s\-()]", "", turn.text or "")
    found = PHONE.match(digits)
    if found is None:
        turn.say("complaint.phone.invalid")
        return STAY
    turn.data["phone"] = found.group(1)
    return NEXT


@complaint.step(
    "identity",
    expects="choice",
    answered=has("identity"),
    options=lambda turn: [turn.option("share_identity"), turn.option("anonymous")],
)
async def identity(turn: Turn) -> Outcome:
    """Stores whether counsellors may see the worker's Telegram name, and shows the review."""
    turn.data["identity"] = turn.choice
    return NEXT


async def ask_review(turn: Turn) -> None:
    turn.show("complaint_summary.html.j2", **summary(turn))


@complaint.step(
    "review",
    expects="choice",
    ask=ask_review,
    options=lambda turn: [turn.option("confirm"), turn.option("change")],
)
async def review(turn: Turn) -> Outcome:
    """Opens the ticket on confirmation, or lets the worker pick an answer to change."""
    if turn.choice == "change":
        return "change"
    cap = turn.catalog.open_tickets_per_person
    if await count_open_tickets(turn.session, person_id=turn.person.id) >= cap:
        turn.say("complaint.too_many_open", limit=cap)
        return MENU  # the draft is kept: submitting works again once one is withdrawn or ends
    ticket, evidence = await open_ticket(
        turn.session,
        person_id=turn.person.id,
        kind=TicketKind.COMPLAINT,
        language=turn.t.language,
        prefix=turn.catalog.ticket_prefix,
        now=turn.now,
        fields=ticket_fields(turn),
        evidence=turn.data.get("evidence", []),
        author="worker",
    )
    post_card(turn, ticket, turn.person, evidence)
    turn.say("complaint.submitted", reference=ticket.reference)
    say_if_after_hours(turn)
    return FINISHED


def change_options(turn: Turn) -> list[Choice]:
    return [
        turn.option(field, f"fields.{field}")
        for field in CHANGEABLE
        if field not in ("amount", "months") or about_wages(turn)
    ]


@complaint.step("change", expects="choice", options=change_options)
async def change(turn: Turn) -> Outcome:
    """Goes to the chosen question; after it, straight back to the review."""
    turn.editing = True
    return turn.choice


def _keep_evidence(turn: Turn, *, then: str) -> Outcome:
    media = turn.inbound.media
    items: list[dict] = turn.data.setdefault("evidence", [])
    if media.kind not in EVIDENCE_KINDS:
        turn.say("complaint.evidence.unsupported")
    elif media.file_size and media.file_size > limit(turn, "evidence_bytes"):
        turn.say(
            "complaint.evidence.too_big",
            size_mb=round(media.file_size / 1e6, 1),
            limit_mb=limit(turn, "evidence_bytes") // 1_000_000,
        )
    elif len(items) >= limit(turn, "evidence_items"):
        turn.say("complaint.evidence.too_many", limit=limit(turn, "evidence_items"))
    else:
        items.append(
            {
                "kind": media.kind,
                "file_id": media.file_id,
                "size": media.file_size,
                "caption": turn.inbound.text,
                "message_id": turn.inbound.message_id,
            }
        )
        turn.say(then, count=len(items))
    return STAY


def parse_amount(text: str, *, maximum: int) -> int | None:
    """Yuan as people write them: 8500, 8,500, 8500元, ¥8500.50. Whole yuan, 1 to maximum."""
    cleaned = re.sub(r"[\s,，元块¥￥]|rmb|yuan|cny", "", text.strip().lower())
    if not re.fullmatch(r"\d+(\.\d{1,2})?", cleaned):
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    whole = int(value.to_integral_value())
    return whole if 1 <= whole <= maximum else None


def summary(turn: Turn) -> dict:
    data = turn.data
    return {
        "category": turn.t(f"categories.{data['category']}"),
        "employer": data["employer"],
        "district": turn.t(f"districts.{data['district']}"),
        "address": data["address"],
        "story": "\n".join(data["story"]),
        "wages": about_wages(turn),
        "amount": data.get("amount"),
        "months": data.get("months"),
        "evidence": len(data.get("evidence", [])),
        "phone": data.get("phone"),
        "anonymous": data["identity"] == "anonymous",
    }


def ticket_fields(turn: Turn) -> dict:
    data = turn.data
    wages = about_wages(turn)
    return {
        "category": data["category"],
        "employer": data["employer"],
        "district": data["district"],
        "address": data["address"],
        "story": "\n\n".join(data["story"]),
        "amount_owed": data.get("amount") if wages else None,
        "wage_months": data.get("months") if wages else None,
        "phone": data.get("phone"),
        "share_identity": data["identity"] == "share_identity",
    }
