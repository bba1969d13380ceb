"""Builds a running hotline from the settings and starts and stops it as one piece."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.broadcasts import Broadcaster
from bot.channels.telegram import CHANNEL, TelegramChannel, build_application, build_pacer
from bot.channels.telegram.webhook import TelegramWebhook
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.callback import WeChatAccount
from bot.channels.wechat.channel import WeChatChannel
from bot.cluster import cluster_for
from bot.delivery.courier import Courier
from bot.delivery.sender import Delivered, Sender
from bot.desk import StaffDesk
from bot.engine import Engine
from bot.failed_turns import FailureAlerts
from bot.flood import FloodGate
from bot.http_server import Health, HttpServer
from bot.periodic import Periodic
from bot.reminders import SlaReminders
from bot.settings import Settings, SettingsError
from content.catalog import Catalog
from db import inbox, migrate
from db.models import utcnow
from db.session import create_engine, session_factory
from handlers import all_buttons, all_flows
from handlers.crisis import respond_to_crisis

log = logging.getLogger(__name__)
REMINDER_CHECK_SECONDS = 60
INBOX_PRUNE_SECONDS = 3600  # dedup keys past their window are deleted this often
FAILURE_ALERT_SECONDS = 10  # given-up turns are looked for (and alerted) this often
OUTBOX_REFRESH_SECONDS = 5  # rows other processes wrote (imports, broadcasts) are read this often
BROADCAST_SECONDS = 1  # broadcasts are started, fed to the outbox and their progress drawn
EVIDENCE_SECONDS = 60  # WeChat workers' evidence is fetched and kept this often
LEAD_RETRY_SECONDS = 1.0  # a follower asks this often whether the leader is gone


class Hotline:
    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        clock: Callable[[], datetime] = utcnow,
        poll_timeout: int = 30,
        retry_delay: float = 0.5,
    ) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings.content_dir)
        self.database = create_engine(settings.database_url)
        self.sessions = session_factory(self.database)
        self.engine = Engine(
            sessions=self.sessions,
            catalog=self.catalog,
            flows=all_flows(),
            clock=clock,
            flood=FloodGate(max_messages=settings.flood_messages, seconds=settings.flood_seconds),
            buttons=all_buttons(),
            desk=StaffDesk(
                sessions=self.sessions,
                catalog=self.catalog,
                clock=clock,
                paces=build_pacer(settings).paces,
                sla=timedelta(minutes=settings.sla_minutes),
            ),
            on_crisis=respond_to_crisis,
        )
        settings.check_channels()
        self.cluster = cluster_for(settings.database_url)
        self.periodic = Periodic()
        # Telegram when its token is set (and with it the staff group); a WeChat account alone
        # otherwise. The outbox's sender is the Telegram channel's, or one of its own.
        self.application = build_application(settings) if settings.telegram_bot_token else None
        self.telegram = (
            TelegramChannel(
                application=self.application,
                engine=self.engine,
                sessions=self.sessions,
                staff_chat_id=settings.staff_chat_id,
                poll_timeout=poll_timeout,
                retry_delay=retry_delay,
                pacer=build_pacer(settings),
                cluster=self.cluster,
            )
            if self.application is not None
            else None
        )
        if self.telegram is not None:
            self.sender, self.courier = self.telegram.sender, self.telegram.courier
        else:
            self.sender = Sender(
                sessions=self.sessions,
                carry_out=_no_staff_group,
                after_erasure=self.engine.erase_traces,
            )
            self.courier = Courier(self.sender, self.cluster)
        self.reminders = SlaReminders(
            sessions=self.sessions,
            catalog=self.catalog,
            clock=clock,
            sla=timedelta(minutes=settings.sla_minutes),
        )
        self.failures = FailureAlerts(sessions=self.sessions, catalog=self.catalog, clock=clock)
        self.broadcaster = Broadcaster(
            sessions=self.sessions,
            catalog=self.catalog,
            sender=self.sender,
            channel=CHANNEL,
            per_second=settings.broadcast_per_second,
            staff_group=self.telegram is not None and settings.staff_chat_id is not None,
            clock=clock,
        )
        # Updates come by webhook when an address is set, else by polling; the HTTP server
        # runs when it has something to serve (the webhook, or /healthz alone with a listen
        # address). Other features add their routes to it here.
        self.webhook = (
            TelegramWebhook(
                self.telegram,
                settings.webhook_url,
                secret=settings.webhook_secret.get_secret_value()
                if settings.webhook_secret
                else None,
            )
            if settings.webhook_url and self.telegram is not None
            else None
        )
        self.health = Health(self.sessions)
        address = settings.listen_address
        self.http = (
            HttpServer(*address, routes=self.health.routes(), shared=settings.listen_shared)
            if address
            else None
        )
        if self.http is not None and self.webhook is not None:
            self.http.add_routes(self.webhook.routes())
        self.wechat = self._wechat_channel(settings, clock) if settings.wechat else None
        if self.wechat is not None:
            if self.telegram is not None:  # files across: evidence, a counsellor's photo
                self.telegram.media_sources["wechat"] = self.wechat.api.download_media
                self.wechat.media_sources["telegram"] = self.telegram.download
            if self.http is not None:
                self.http.add_routes(self.wechat.routes())
        self._poller: asyncio.Task[None] | None = None  # receiving: the poller or the webhook's
        self._broadcasting: asyncio.Task[None] | None = None
        self._keeping: asyncio.Task[None] | None = None

    def _wechat_channel(self, settings: Settings, clock: Callable[[], datetime]) -> WeChatChannel:
        """The WeChat account beside Telegram, sending through the same outbox."""
        settings.check_wechat()
        assert settings.wechat_app_id and settings.wechat_app_secret and settings.wechat_token
        key = settings.wechat_encoding_aes_key
        return WeChatChannel(
            account=WeChatAccount(
                app_id=settings.wechat_app_id,
                token=settings.wechat_token.get_secret_value(),
                encoding_aes_key=key.get_secret_value() if key else None,
            ),
            api=WeChatApi(
                settings.wechat_api_base_url,
                settings.wechat_app_id,
                settings.wechat_app_secret.get_secret_value(),
                self.sessions,
                clock=clock,
            ),
            engine=self.engine,
            sessions=self.sessions,
            sender=self.sender,
            courier_=self.courier,
            cluster=self.cluster,
            reply_budget=settings.wechat_reply_budget,
        )

    async def start(self) -> None:
        if self.database.dialect.name == "sqlite":
            await migrate.upgrade(self.database)
        elif not await migrate.is_current(self.database):
            raise SettingsError(
                "The database is not at the newest schema: run `hotline db upgrade` first."
            )
        if self.application is not None:
            await self.application.initialize()
            await self.application.start()
        if self.telegram is None:
            log.warning("no TELEGRAM_BOT_TOKEN: WeChat alone, and no staff group for tickets")
        elif self.settings.staff_chat_id is None:
            log.warning("HOTLINE_STAFF_CHAT_ID is not set: tickets get no topics in a staff group")
        await self.cluster.open()
        if self.webhook is not None:
            await self.webhook.register()
        if self.wechat is not None and not self.cluster.shared:
            await self.wechat.resume()  # a dead run's stored callbacks, before new ones come
        if self.http is not None:
            await self.http.start()
        self._poller = asyncio.create_task(self._receive(), name="telegram-receiving")
        if self.cluster.shared:
            self._keeping = asyncio.create_task(self._keep_lanes(), name="lanes")

    async def _keep_lanes(self) -> None:
        channels = [channel for channel in (self.telegram, self.wechat) if channel is not None]
        keepers = [channel.keeper for channel in channels]
        await asyncio.gather(*(keeper.keep_lanes() for keeper in keepers))

    async def _receive(self) -> None:
        """Leads, or waits to: only the leader polls, sends and runs the periodic jobs
        (bot/cluster.py); a follower handles the lanes it holds meanwhile, and with a webhook
        it stores what Telegram posts to it."""
        if not await self.cluster.lead():
            log.info("another process leads: this one handles its share of the people")
            if self.webhook is not None:
                self.webhook.open_to_updates()
            while not await self.cluster.lead():
                await asyncio.sleep(LEAD_RETRY_SECONDS)
            log.info("this process leads now")
        self._start_leading()
        if self.webhook is not None:  # no poller: the channel's start runs in the webhook's
            await self.webhook.run()
        elif self.telegram is not None:
            await self.telegram.run()
        else:  # WeChat alone: callbacks come to the HTTP server; the outbox is sent from here
            await self.sender.start()
            self.courier.start_applying()
            if self.cluster.shared and self.wechat is not None:
                await self.wechat.keeper.keep_lanes_once(stray_seconds=0)
            await asyncio.Event().wait()

    def _start_leading(self) -> None:
        if self.telegram is not None and self.settings.staff_chat_id is not None:
            self.periodic.every(REMINDER_CHECK_SECONDS, self.remind_unclaimed, name="sla-reminders")
            self.periodic.every(FAILURE_ALERT_SECONDS, self.alert_failures, name="failure-alerts")
        self.periodic.every(INBOX_PRUNE_SECONDS, self._prune_inbox, name="inbox-prune", first=1)
        self.periodic.every(OUTBOX_REFRESH_SECONDS, self._refresh_outbox, name="outbox-refresh")
        if self.wechat is not None:  # before WeChat deletes them, 3 days after they came
            self.periodic.every(EVIDENCE_SECONDS, self.wechat.keep_evidence, name="wechat-evidence")
        # A loop of its own: a round that starts a large broadcast may take longer than the
        # interval, and the next simply waits for it.
        self._broadcasting = asyncio.create_task(self._broadcast(), name="broadcasts")

    async def remind_unclaimed(self) -> int:
        """Queues the reminders due now; returns how many."""
        due = await self.reminders.check()
        self.sender.wake(due)
        return len(due)

    async def alert_failures(self) -> int:
        """Queues an alert in the staff group's General topic for each given-up turn not yet
        alerted; returns how many."""
        if self.settings.staff_chat_id is None:
            return 0
        queued = await self.failures.queue(CHANNEL)
        self.sender.wake(queued)
        return len(queued)

    async def prune_inbox(self) -> int:
        """Deletes the inbox's dedup keys past their window; returns how many."""
        async with self.sessions() as session, session.begin():
            return await inbox.prune(session, now=utcnow())

    async def _prune_inbox(self) -> None:
        try:
            pruned = await self.prune_inbox()
        except Exception:  # the next round tries again
            log.exception("pruning the inbox failed")
            return
        if pruned:
            log.info("inbox: %d old update key(s) deleted", pruned)

    async def _refresh_outbox(self) -> None:
        if self.sender.started:
            await self.sender.refresh()

    async def _broadcast(self) -> None:
        while True:
            await asyncio.sleep(BROADCAST_SECONDS)
            try:
                if self.sender.started:  # what the last run left goes first
                    await self.broadcaster.tick()
            except Exception:  # the next round tries again
                log.exception("sending broadcasts failed")

    async def stop(self) -> None:
        """Stops receiving (polling confirms nothing more; the webhook's requests under way
        finish, a new one is refused and retried by Telegram), finishes the turns under way,
        closes. The webhook stays registered (see TelegramWebhook.run)."""
        for task in (self._broadcasting, self._poller, self._keeping):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.http is not None:
            await self.http.stop()
        if self.wechat is not None:
            await self.wechat.stop()
        await self.periodic.stop()
        if self.telegram is not None:
            await self.telegram.stop()  # the outbox's sender with it: WeChat's rows too
        else:
            await self.courier.stop()
            await self.sender.stop()
        if self.wechat is not None:
            await self.wechat.api.close()
        await self.cluster.close()  # the lanes' locks go with it, once their turns are done
        if self.application is not None:
            if self.application.running:
                await self.application.stop()
            await self.application.shutdown()
        await self.database.dispose()

    async def run_until_signalled(self) -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for name in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(name, stopping.set)
        try:
            await self.start()
        except BaseException:  # e.g. Telegram refused the webhook: what started is closed
            await self.stop()
            raise
        log.info("the hotline is running; Ctrl-C stops it")
        waiter = asyncio.create_task(stopping.wait())
        await asyncio.wait([waiter, self._poller], return_when=asyncio.FIRST_COMPLETED)
        await self.stop()


async def _no_staff_group(body: dict, pace: str) -> Delivered:
    """Without Telegram there is no staff group: what turns post for the staff (ticket
    topics, alerts) is done with at once, as with Telegram and no HOTLINE_STAFF_CHAT_ID."""
    return Delivered("sent")
