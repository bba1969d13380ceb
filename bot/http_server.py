"""The hotline's one HTTP listener: `/healthz` for a load balancer, plus whatever receives
over HTTP (Telegram's webhook now; WeChat's callback and the console later).

One server, not one per feature: a deployment opens one port behind one reverse proxy. Each
feature hands in its routes (or a sub-application under a prefix) before the start; this
module knows none of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.settings import HEALTH_PATH, SettingsError
from db.models import InboxStatus, InboxUpdate, utcnow

log = logging.getLogger(__name__)

# An update waiting this long unhandled means the hotline is not keeping up (or is stuck):
# a load balancer should send the traffic elsewhere, a monitor should page someone.
MAX_BACKLOG = timedelta(seconds=300)
HEALTH_TIMEOUT = 5.0  # seconds the database may take to answer before it counts unreachable
SHUTDOWN_SECONDS = 5.0  # a request under way at stop gets this long to finish


class HttpServer:
    """An aiohttp AppRunner on one TCP address. Routes and sub-applications are added
    before `start` (aiohttp freezes its router then)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        routes: Iterable[web.AbstractRouteDef] = (),
        subapps: Mapping[str, web.Application] | None = None,
        shared: bool = False,
    ) -> None:
        self.host = host
        self.shared = shared  # other processes listen on the same port (hotline run --workers)
        self.port = port  # the bound port once started (port 0 picks a free one)
        # The default body limit (1 MiB) for every route; a route that needs less checks it
        # itself (the webhook does), one that needs more is a sub-application of its own.
        self.app = web.Application()
        self.add_routes(routes)
        for prefix, subapp in (subapps or {}).items():
            self.add_subapp(prefix, subapp)
        self._runner: web.AppRunner | None = None

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        self.app.add_routes(list(routes))

    def add_subapp(self, prefix: str, subapp: web.Application) -> None:
        self.app.add_subapp(prefix, subapp)

    async def start(self) -> None:
        # No access log: it would write every caller's address and path at INFO.
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, self.host, self.port, reuse_port=self.shared or None)
            await site.start()
        except OSError as error:  # taken, or not an address of this machine
            await self.stop()
            raise SettingsError(
                f"Cannot listen on {self.host}:{self.port} (HOTLINE_LISTEN):"
                f" {error.strerror or error}."
            ) from None
        address = self._runner.addresses[0]
        self.port = address[1]
        log.info("HTTP server listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stops listening, lets the requests under way finish, then closes."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is over `limit` bytes: refused from its Content-Length at
    once, or as soon as more has arrived (a chunked body has no length). For receivers that
    allow less than the server's 1 MiB (WeChat's callback) or must answer 413 themselves."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class Health:
    """`GET /healthz`: 200 `{"database": "ok", "backlog_seconds": N}` while the database
    answers and the oldest unhandled inbox row is younger than `max_backlog`; 503 with a
    `reason` otherwise. N is whole seconds, 0 when nothing waits."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_backlog: timedelta = MAX_BACKLOG,
        timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        self.sessions = sessions
        self.max_backlog = max_backlog
        self.timeout = timeout

    def routes(self) -> list[web.RouteDef]:
        return [web.get(HEALTH_PATH, self.handle)]

    async def handle(self, _request: web.Request) -> web.Response:
        status, body = await self.check()
        return web.json_response(body, status=status)

    async def check(self) -> tuple[int, dict]:
        try:
            async with asyncio.timeout(self.timeout):
                oldest = await self._oldest_unhandled()
        except TimeoutError:
            return 503, {"database": "unreachable", "reason": f"no answer in {self.timeout:g} s"}
        except Exception as error:  # the check must answer whatever the database did
            log.warning("health check: the database failed (%s)", type(error).__name__)
            return 503, {"database": "unreachable", "reason": type(error).__name__}
        backlog = _age(oldest)
        body = {"database": "ok", "backlog_seconds": int(backlog.total_seconds())}
        if backlog >= self.max_backlog:
            limit = int(self.max_backlog.total_seconds())
            return 503, {**body, "reason": f"an update has waited over {limit} s to be handled"}
        return 200, body

    async def _oldest_unhandled(self) -> datetime | None:
        async with self.sessions() as session:
            connection = await session.connection()
            await connection.exec_driver_sql("SELECT 1")
            result = await session.exec(
                select(func.min(col(InboxUpdate.received_at))).where(
                    InboxUpdate.status == InboxStatus.RECEIVED
                )
            )
            return result.one()


def _age(moment: datetime | None) -> timedelta:
    """How long ago, never negative; the database may hand back a naive UTC time."""
    if moment is None:
        return timedelta()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(utcnow() - moment, timedelta())
