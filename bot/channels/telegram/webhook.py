"""Receiving Telegram's updates by webhook instead of polling (`hotline run --webhook URL`).

Telegram POSTs each update to the registered address and retries it until it gets a 200, so
the guarantee polling gets from confirming with the *next* getUpdates comes here from the
answer: 200 is sent only once the update is stored in the inbox (and queued in its person's
lane). A crash before that answer loses nothing: Telegram sends the update again, and the
inbox's key (channel, update_id) makes the repeat a 200 with no second effect.

Only Telegram may post: a random secret is registered with setWebhook at every start and
compared, in constant time, with the X-Telegram-Bot-Api-Secret-Token header of each request;
anything else gets 403 and nothing is read further. A body over `MAX_BODY` gets 413, a body
that is not an update 400 (nothing stored), a database failure 500 (Telegram retries).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import signal
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from telegram.error import BadRequest, TelegramError

from bot.channels.telegram.channel import ALLOWED_UPDATES, TelegramChannel
from bot.http_server import read_capped
from bot.settings import SettingsError

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024  # one update is a few kilobytes; Telegram sends one per request
# Requests Telegram may have under way at once (its default). Each only stores its update,
# one short transaction, while the turns run in the lanes.
MAX_CONNECTIONS = 40
# A request that comes while the start is still resuming the last run's work waits this long
# for it (new updates must queue after the old ones), then gets 503 and Telegram retries.
READY_SECONDS = 20.0
# While the lanes hold max_queued updates a request waits this long for room, then 503: as
# polling stops fetching, Telegram keeps what it cannot deliver (bot/lanes.py, backpressure).
ROOM_SECONDS = 20.0
# How often Telegram is asked whether it still holds updates (getWebhookInfo), which tells a
# topic opening whose answer was lost that its service message would have been stored by now
# (staff_group.py, _until_polled); and how its delivery errors reach this log.
WATCH_SECONDS = 5.0
# For tests only (tests/test_webhook.py): die with SIGKILL right after an update is stored
# and before its 200, the moment a crash must lose nothing. Never set it in production.
DIE_AFTER_STORE = "HOTLINE_TEST_DIE_AFTER_STORE"


class TelegramWebhook:
    """The webhook's route, its registration with Telegram, and the start it waits for."""

    def __init__(
        self,
        channel: TelegramChannel,
        url: str,
        *,
        max_connections: int = MAX_CONNECTIONS,
        secret: str | None = None,
    ) -> None:
        self.channel = channel
        self.url = url
        self.path = urlsplit(url).path or "/"
        self.max_connections = max_connections
        # Fresh at every start: one that leaked stops working at the next. 32 bytes make 43
        # characters of A-Za-z0-9_-, the alphabet Telegram allows (1 to 256 of them).
        # Several processes behind one address share one (HOTLINE_WEBHOOK_SECRET).
        self.secret = secret or secrets.token_urlsafe(32)
        self._ready = asyncio.Event()
        self._die_after_store = os.environ.get(DIE_AFTER_STORE) == "1"
        if self._die_after_store:
            log.warning("%s is set: this process kills itself once it stores", DIE_AFTER_STORE)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.path, self.receive)]

    async def register(self) -> None:
        """setWebhook with this start's secret. What Telegram holds is kept for it (no
        drop_pending_updates): updates that came while the hotline was down arrive now."""
        try:
            await self.channel.bot.set_webhook(
                self.url,
                secret_token=self.secret,
                allowed_updates=ALLOWED_UPDATES,
                max_connections=self.max_connections,
                drop_pending_updates=False,
            )
        except BadRequest as error:
            raise SettingsError(f"Telegram refused the webhook {self.url}: {error}.") from None
        log.info("receiving updates by webhook at %s", self.url)

    async def run(self) -> None:
        """Until cancelled: the channel's start (the outbox, the last run's work), then
        updates are taken, and Telegram's view of the delivery watched.

        Stopping does not delete the webhook: Telegram then keeps what comes meanwhile and
        delivers it to the next start, as it keeps unconfirmed updates for a poller. Deleting
        it would make Telegram hold updates for getUpdates instead, and a restart in webhook
        mode would get them only after its own setWebhook anyway."""
        await self.channel.prepare(drain=False)
        self.open_to_updates()
        await self._watch()

    def open_to_updates(self) -> None:
        """Requests are answered from now on: after the leader's start, or at once in a
        process that does not lead (bot/cluster.py), which has no outbox of its own to start."""
        self._ready.set()

    async def _watch(self) -> None:
        reported = None
        while True:
            asked = time.monotonic()
            try:
                info = await self.channel.bot.get_webhook_info()
            except TelegramError as error:
                log.info("getWebhookInfo failed (%s)", error)
            else:
                if info.pending_update_count == 0:  # all it held has been answered 200
                    self.channel.polls.caught_up(asked)
                if info.last_error_date is not None and info.last_error_date != reported:
                    reported = info.last_error_date
                    log.warning(
                        "Telegram could not deliver to the webhook: %s (%d update(s) waiting)",
                        info.last_error_message,
                        info.pending_update_count,
                    )
            await asyncio.sleep(WATCH_SECONDS)

    async def receive(self, request: web.Request) -> web.Response:
        """One POST from Telegram: 200 once its update is stored, or why not."""
        if not self._authentic(request.headers.get(SECRET_HEADER)):
            return web.Response(status=403, text="Forbidden")
        body = await read_capped(request, MAX_BODY)
        if body is None:
            log.warning("webhook: a body over %d bytes refused", MAX_BODY)
            return web.Response(status=413, text="Payload Too Large")
        payload = _update_of(body)
        if payload is None:
            log.warning("webhook: a body that is no update refused (%d bytes)", len(body))
            return web.Response(status=400, text="Bad Request: not an update")
        try:
            async with asyncio.timeout(READY_SECONDS):
                await self._ready.wait()
            async with asyncio.timeout(ROOM_SECONDS):
                await self.channel.lanes.room(self.channel.max_queued)
        except TimeoutError:
            return web.Response(status=503, text="Busy: try again")
        try:
            await _store(self.channel, payload)
        except Exception:  # the database, most likely: nothing stored, so Telegram retries
            log.exception("webhook: could not store update %s", payload["update_id"])
            return web.Response(status=500, text="Internal Server Error")
        if self._die_after_store:
            os.kill(os.getpid(), signal.SIGKILL)
        return web.Response(status=200)

    def _authentic(self, given: str | None) -> bool:
        if given is None:
            return False
        # Bytes, so that a header with characters beyond ASCII is simply unequal (comparing
        # str needs ASCII); compare_digest takes as long wherever the first difference is.
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.secret.encode())


async def _store(channel: TelegramChannel, payload: dict[str, Any]) -> None:
    """Stores one update and queues it in its lane if it is new; a repeat does nothing.
    The one place that knows what the channel's accept takes (the Bot API's JSON, as
    getUpdates brings it)."""
    await channel.accept([payload])


def _update_of(body: bytes) -> dict[str, Any] | None:
    """The JSON object of one update (an integer update_id and its content), else None."""
    try:
        payload = orjson.loads(body)  # as every Bot API answer (http.py)
    except ValueError:  # not JSON, or not UTF-8
        return None
    if not isinstance(payload, dict) or len(payload) < 2:
        return None
    update_id = payload.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return None
    if not all(isinstance(value, dict) for key, value in payload.items() if key != "update_id"):
        return None
    return payload
