"""The tables. Every change here needs a numbered migration in db/migrations/versions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, LargeBinary, Text, UniqueConstraint, false
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Aware UTC; SQLModel stores it as UTC on SQLite and PostgreSQL alike."""
    return datetime.now(UTC)


class TicketStatus(StrEnum):
    NEW = "new"
    CLAIMED = "claimed"
    WAITING = "waiting"
    RESOLVED = "resolved"
    REFERRED = "referred"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


OPEN_STATUSES = (TicketStatus.NEW, TicketStatus.CLAIMED, TicketStatus.WAITING)


class TicketKind(StrEnum):
    COMPLAINT = "complaint"
    TALK = "talk"  # "talk to a person" from the main menu
    LEGAL_AID = "legal_aid"  # "ask a lawyer to call me back" at the end of /legalaid


class Direction(StrEnum):
    FROM_WORKER = "from_worker"
    TO_WORKER = "to_worker"
    NOTE = "note"


class Delivery(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"  # the worker blocked the bot


class InboxStatus(StrEnum):
    RECEIVED = "received"  # stored, not yet handled
    HANDLED = "handled"  # effects committed, replies not all delivered
    DONE = "done"  # replies delivered (or given up on)
    FAILED = "failed"  # handling raised every attempt: kept for an operator to look at


class Person(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=64)
    language: str | None = Field(default=None, max_length=8)
    display_name: str | None = Field(default=None, max_length=200)
    username: str | None = Field(default=None, max_length=64)
    consented_at: datetime | None = None
    forgotten_at: datetime | None = None
    blocked_at: datetime | None = None  # the channel said they blocked the bot: send nothing
    # Notices (broadcasts): everyone is subscribed from their first /start; /stop sets this,
    # /start clears it.
    notices_off_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Conversation(SQLModel, table=True):
    """Where a person is in a flow; written as each turn ends."""

    person_id: int = Field(foreign_key="person.id", primary_key=True)
    flow: str = Field(max_length=32)
    step: str = Field(max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    history: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class Ticket(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=32, unique=True)
    kind: str = Field(max_length=16)
    category: str | None = Field(default=None, max_length=32)
    status: str = Field(default=TicketStatus.NEW, max_length=16, index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    language: str = Field(max_length=8)
    employer: str | None = Field(default=None, max_length=200)
    district: str | None = Field(default=None, max_length=32)
    address: str | None = Field(default=None, max_length=300)
    story: str | None = Field(default=None, sa_column=Column(Text))
    amount_owed: int | None = None
    wage_months: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=20)
    share_identity: bool = False
    topic_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, index=True)
    )  # staff group
    assignee_id: int | None = Field(default=None, foreign_key="staff.id")
    urgent: bool = False
    referred_to: str | None = Field(default=None, max_length=32)
    solved: bool | None = None
    rating: int | None = None
    reminded_at: datetime | None = None  # the last unclaimed-ticket reminder
    # Set just before asking Telegram for a topic: a topic the answer never reached us for
    # is claimed from its service message (forum_topic_created) by its title, not opened twice.
    topic_requested_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # `hotline purge` erased its personal details and evidence (db/retention.py); a ticket
    # written to after it (updated_at later) is purged again once it has ended again.
    purged_at: datetime | None = None


class TicketMessage(SQLModel, table=True):
    __tablename__ = "ticket_message"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    direction: str = Field(max_length=16)
    author: str = Field(max_length=100)
    text: str | None = Field(default=None, sa_column=Column(Text))
    media_kind: str | None = Field(default=None, max_length=16)
    media_file_id: str | None = Field(default=None, max_length=200)
    delivery_status: str | None = Field(default=None, max_length=16)
    # The same message on both sides, so a reply to it stays a reply across the relay.
    worker_message_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    staff_message_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime = Field(default_factory=utcnow)


class TicketEvent(SQLModel, table=True):
    """The audit trail: one row per status change, who made it and when."""

    __tablename__ = "ticket_event"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    actor: str = Field(max_length=100)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


class TicketCounter(SQLModel, table=True):
    """One row per year, so references read HL-2026-000001 and never repeat."""

    __tablename__ = "ticket_counter"

    year: int = Field(primary_key=True)
    last: int = 0


class StaffRole(StrEnum):
    COUNSELLOR = "counsellor"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


class Staff(SQLModel, table=True):
    """Volunteer counsellors, coordinators and admins: only they may act on tickets."""

    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=64)
    role: str = Field(max_length=16)
    alias: str = Field(max_length=100)  # how workers see them: "Counsellor Li"
    created_at: datetime = Field(default_factory=utcnow)


class InboxUpdate(SQLModel, table=True):
    """Every update as it arrived, stored before the channel is told it was received."""

    __tablename__ = "inbox_update"
    __table_args__ = (UniqueConstraint("channel", "update_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    update_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    person_key: str = Field(max_length=64)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default=InboxStatus.RECEIVED, max_length=16, index=True)
    replies: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    outgoing: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    received_at: datetime = Field(default_factory=utcnow)
    handled_at: datetime | None = None
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # that raised
    alerted_at: datetime | None = None  # when the staff group was told it failed for good


class OutboxStatus(StrEnum):
    PENDING = "pending"  # waiting for its turn (its lane, its destination's pace)
    SENDING = "sending"  # handed to the channel: the only state a crash may repeat
    SENT = "sent"
    FAILED = "failed"  # refused, or still failing after every attempt
    BLOCKED = "blocked"  # the person blocked the bot
    UNKNOWN = "unknown"  # a row sent only once (a broadcast's) was being sent at a crash


class Pace(StrEnum):
    """Destination classes: each has its own queue and pace, so one never waits on another."""

    PRIVATE = "private"  # a worker's chat: short bursts, about one a second sustained
    GROUP = "group"  # the staff group: 20 messages a minute, all its topics together
    BULK = "bulk"  # broadcasts and alerts to many: whatever the bot's overall rate leaves


class OutboxItem(SQLModel, table=True):
    """One thing to send, written in the transaction of the turn that decided it and carried
    out after the commit; kept in order per lane (a chat, or a ticket's topic)."""

    __tablename__ = "outbox"
    # Ids never come back (SQLite would reuse a deleted row's): the sender knows rows by id.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    pace: str = Field(max_length=16)
    lane: str = Field(max_length=64, index=True)  # the order key: chat:<id>, topic:<ticket id>
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    held: bool = False  # a flood's reply: waits until next_attempt_at, then goes gathered
    status: str = Field(default=OutboxStatus.PENDING, max_length=16, index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    sent_ids: list[int] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # A broadcast's copy: left "sending" by a dead run it is not sent again (a notice twice
    # is worse than one that may not have arrived); it ends "unknown".
    once: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class JobListing(SQLModel, table=True):
    """A job a coordinator imported (`hotline jobs import`); shown until it expires."""

    __tablename__ = "job_listing"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=100)
    employer: str = Field(max_length=100)
    district: str = Field(max_length=32, index=True)
    trade: str = Field(max_length=32, index=True)
    pay_min: int  # yuan a month
    pay_max: int
    hours: str = Field(max_length=100)
    housing: bool = False
    contact: str = Field(max_length=200)
    posted_at: datetime = Field(default_factory=utcnow)
    expires_on: date = Field(index=True)  # the last day it is shown (the centre's local date)
    expired_at: datetime | None = None  # `hotline jobs expire`: taken down before that day
    # A digest of the row as imported: the same row imported again is recognised, not doubled.
    source_key: str = Field(max_length=64, unique=True)


class JobSubscription(SQLModel, table=True):
    """A worker's "tell me about new jobs like this": the filters they browsed with (None:
    any). A worker may keep a few (content/jobs.yaml subscriptions_per_person)."""

    __tablename__ = "job_subscription"

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    district: str | None = Field(default=None, max_length=32)
    trade: str | None = Field(default=None, max_length=32)
    pay_min: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class JobAlertSent(SQLModel, table=True):
    """One row per listing a worker was alerted to: never the same listing twice."""

    __tablename__ = "job_alert_sent"
    __table_args__ = (UniqueConstraint("person_id", "listing_id"),)

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    listing_id: int = Field(foreign_key="job_listing.id")
    sent_at: datetime = Field(default_factory=utcnow)


class BroadcastStatus(StrEnum):
    DRAFT = "draft"  # a coordinator is composing it in the staff group
    SCHEDULED = "scheduled"  # waits for its time
    SENDING = "sending"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


class Broadcast(SQLModel, table=True):
    """A notice to the workers who subscribed: composed in the staff group (/broadcast) or
    with `hotline broadcast send`, then sent to its audience through the outbox's bulk class.
    While a draft, `step` is where its composition stands (the staff side's conversation)."""

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default=BroadcastStatus.DRAFT, max_length=16, index=True)
    created_by: str = Field(max_length=100)  # the coordinator's alias, or "command line"
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    texts: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    photo: str | None = Field(default=None, max_length=200)  # the channel's file id
    # {"kind": "all" | "language" | "district" | "jobs" | "open_ticket", "value": str | None}
    audience: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    step: str | None = Field(default=None, max_length=32)
    thread_id: int | None = Field(default=None, sa_column=Column(BigInteger))  # composed in
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    recipients: int = 0  # delivery rows written when sending started
    progress_message_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    progress_outbox_id: int | None = None  # the outbox row that posts the progress message
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # not yet handed to the outbox
    SENDING = "sending"  # in the outbox
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"  # was being sent when the hotline died: not sent again


class BroadcastDelivery(SQLModel, table=True):
    """One row per recipient, written before the first is sent: the broadcast's durable list
    of who still gets it, so that a restart resumes where it stopped and sends nobody two."""

    __tablename__ = "broadcast_delivery"
    __table_args__ = (UniqueConstraint("broadcast_id", "person_id"),)

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcast.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    language: str = Field(max_length=8)  # the text's language they get (after fallback)
    status: str = Field(default=DeliveryStatus.PENDING, max_length=16, index=True)
    outbox_id: int | None = Field(default=None, index=True)
    sent_at: datetime | None = None


class MediaFile(SQLModel, table=True):
    """A file kept here because the channel's own copy expires (WeChat keeps a worker's
    photo, voice note or video 3 days): the evidence a counsellor opens later. `content`
    None: the channel no longer had it when it was asked for."""

    __tablename__ = "media_file"

    channel: str = Field(primary_key=True, max_length=16)
    file_id: str = Field(primary_key=True, max_length=200)
    content: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    size: int = 0
    fetched_at: datetime = Field(default_factory=utcnow)


class WeChatAccessToken(SQLModel, table=True):
    """WeChat's access token, one row per account: every process uses the one stored here
    instead of fetching its own, and refreshes it with the row locked (db/wechat_tokens.py)."""

    __tablename__ = "wechat_access_token"

    app_id: str = Field(primary_key=True, max_length=32)
    # getStableAccessToken: "access_token 的存储空间至少要保留 512 个字符".
    token: str = Field(max_length=512)
    expires_at: datetime
    refreshed_at: datetime = Field(default_factory=utcnow)
