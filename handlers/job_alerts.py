"""Job alerts: when listings are added, each worker whose alert matches some of them gets one
message with all of them (not one each), in their language, queued in the outbox as bulk
(it goes behind conversation replies) and recorded so that no listing is sent to them twice.
The "stop" button under an alert works whatever the worker is doing at the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from content.catalog import Catalog, Translator
from db import jobs, outbox
from db.jobs import Alert
from db.models import JobListing, Pace
from db.outbox import NewItem, chat_lane
from handlers.flow import Turn
from handlers.messages import Choice, Reply

ALERT_TAG = "jobalert"  # the button's tag: jobalert.<subscription ids joined by "-">, or .all
SHOWN_PER_ALERT = 8  # listings written out in one alert; the rest are counted, and in /jobs
CALLBACK_ROOM = 64 - len("|stop")  # Telegram's 64 bytes of callback data, less the key


async def queue_job_alerts(
    session: AsyncSession, *, catalog: Catalog, listing_ids: Sequence[int], now: datetime
) -> int:
    """Queues the alerts for these new listings and records them, in the caller's
    transaction (the one that added the listings); returns how many workers get one."""
    alerts = await jobs.alerts_for_new_listings(session, listing_ids=listing_ids)
    items = [_item(catalog, alert) for alert in alerts]
    await outbox.add_items(session, items=items, now=now)
    await jobs.record_alerts(session, alerts=alerts, now=now)
    return len(items)


def _item(catalog: Catalog, alert: Alert) -> NewItem:
    person = alert.person
    reply = alert_reply(catalog.translator(person.language), alert)
    return NewItem(
        channel=person.channel,
        pace=Pace.BULK,
        lane=chat_lane(person.channel, person.external_id),
        body={"to": "chat", "chat": person.external_id, "reply": reply.to_dict()},
    )


def alert_reply(t: Translator, alert: Alert) -> Reply:
    shown = alert.listings[:SHOWN_PER_ALERT]
    lines = [str(t("jobs.alert.title", count=len(alert.listings)))]
    lines += [_line(t, listing) for listing in shown]
    if len(alert.listings) > len(shown):
        lines.append(str(t("jobs.alert.more", count=len(alert.listings) - len(shown))))
    stop = Choice("stop", str(t("jobs.choices.stop_alert")), numbered=False)
    return Reply("\n".join(lines), [stop], choice_tag=_tag(alert.subscription_ids))


def _line(t: Translator, listing: JobListing) -> str:
    return str(
        t(
            "jobs.alert.line",
            title=listing.title,
            employer=listing.employer,
            district=t(f"districts.{listing.district}"),
            pay_min=listing.pay_min,
            pay_max=listing.pay_max,
            contact=listing.contact,
        )
    )


def _tag(subscription_ids: Sequence[int]) -> str:
    tag = f"{ALERT_TAG}." + "-".join(str(i) for i in subscription_ids)
    return tag if len(tag.encode()) <= CALLBACK_ROOM else f"{ALERT_TAG}.all"


async def stop_alerts(turn: Turn) -> None:
    """The alert's "stop" button: the alerts that sent it stop (only the worker's own)."""
    _, _, ids = (turn.inbound.choice_tag or "").partition(".")
    if turn.inbound.choice != "stop":
        turn.say("common.old_button")
        return
    chosen = None if ids == "all" else [int(i) for i in ids.split("-") if i.isdigit()]
    stopped = await jobs.unsubscribe(
        turn.session, person_id=turn.person.id, subscription_ids=chosen
    )
    turn.say("jobs.alert.stopped" if stopped else "jobs.alert.already_stopped")


BUTTONS = {ALERT_TAG: stop_alerts}
