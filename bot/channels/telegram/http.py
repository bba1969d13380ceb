"""python-telegram-bot's HTTP layer on one keep-alive aiohttp session.

PTB's default HTTPXRequest runs every Bot API call through httpx, httpcore, anyio and h11; a
profile of bench/throughput.py put about a fifth of the bot's own CPU time in that stack.
aiohttp, which the project already depends on, does the same work for much less per request.

What stays as HTTPXRequest does it: the timeouts' defaults and how a call's own timeouts
override them (uploads get `media_write_timeout`), the bodies (form-urlencoded fields, or
multipart when files go along), the User-Agent, and the errors: TimedOut for a timeout, with
HTTPXRequest's message when the pool had no free connection, NetworkError naming the failure
otherwise. Every HTTP answer is returned as it came, so BaseRequest turns 4xx/5xx/429 into
PTB's exceptions just as before. Unlike httpx it does not read proxies from the environment.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import aiohttp
import orjson

# PTB's own request classes take their timeouts with these types; python-telegram-bot is
# pinned below 23 in pyproject.toml, so the private module is stable enough here.
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

# HTTPXRequest's words, so logs and handlers read the same whichever class is in use.
POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: All connections in the connection pool are occupied. "
    "Request was *not* sent to Telegram. Consider adjusting the connection "
    "pool size or the pool timeout."
)
FORM_URLENCODED = "application/x-www-form-urlencoded"


class AiohttpRequest(BaseRequest):
    """A BaseRequest for Bot(request=..., get_updates_request=...) or ApplicationBuilder's
    request()/get_updates_request(); one instance per role, as PTB uses HTTPXRequest."""

    __slots__ = (
        "_connect_timeout",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_read_timeout",
        "_session",
        "_slots",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 1,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        # Both belong to the event loop they are made on, so they are made on first use
        # inside it, not here.
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    @staticmethod
    def parse_json_payload(payload: bytes) -> dict:
        """Every answer's JSON, by orjson (several times faster than the json module); what
        orjson cannot read goes to BaseRequest's parser, whose errors PTB expects."""
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            return BaseRequest.parse_json_payload(payload)

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout; Bot.get_updates adds the long-poll timeout to it."""
        return self._read_timeout

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._pool_size)  # keep-alive is its default
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.USER_AGENT},
            # The Bot API sets no cookies; a jar that keeps none saves a lookup per request.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        # aiohttp has no pool timeout of its own (its `connect` timeout lumps the wait for a
        # free connection in with DNS and the TCP handshake), so requests take a slot here
        # first: as many slots as the connector allows connections, so once a slot is held
        # the connector never makes a request wait, and waiting for a slot is the pool wait.
        self._slots = asyncio.Semaphore(self._pool_size)
        return self._session

    async def initialize(self) -> None:
        """See BaseRequest.initialize; opens the session again after a shutdown."""
        if self._session is None or self._session.closed:
            self._open()

    async def shutdown(self) -> None:
        """See BaseRequest.shutdown; closes the session and its connections."""
        if self._session is None or self._session.closed:
            return
        await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """See BaseRequest.do_request."""
        session = self._session
        if session is None:
            # HTTPXRequest works before initialize() (its client exists from construction);
            # so does this. After shutdown() it refuses, as HTTPXRequest does.
            session = self._open()
        elif session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        slots = self._slots
        assert slots is not None  # made together with the session

        uploads = request_data is not None and request_data.contains_files
        if isinstance(read_timeout, DefaultValue):
            read_timeout = self._read_timeout
        if isinstance(connect_timeout, DefaultValue):
            connect_timeout = self._connect_timeout
        if isinstance(pool_timeout, DefaultValue):
            pool_timeout = self._pool_timeout
        if isinstance(write_timeout, DefaultValue):
            write_timeout = self._media_write_timeout if uploads else self._write_timeout

        if slots.locked():
            try:
                async with asyncio.timeout(pool_timeout):
                    await slots.acquire()
            except TimeoutError as err:
                raise TimedOut(message=POOL_TIMEOUT_MESSAGE) from err
        else:
            await slots.acquire()  # returns at once: a slot is free
        try:
            return await self._send(
                session,
                url,
                method,
                request_data,
                uploads=uploads,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    # `connect` also covers DNS and TLS, as httpx's connect timeout does;
                    # no pool wait is left in it (see _open).
                    connect=connect_timeout,
                    sock_connect=connect_timeout,
                    sock_read=read_timeout,
                ),
                upload_deadline=_upload_deadline(
                    uploads, connect_timeout, write_timeout, read_timeout
                ),
            )
        except TimeoutError as err:  # aiohttp's timeouts and the upload deadline
            raise TimedOut from err
        except (aiohttp.ClientError, OSError) as err:
            # The class name tells failures apart when the message is empty.
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
        finally:
            slots.release()

    @staticmethod
    async def _send(
        session: aiohttp.ClientSession,
        url: str,
        method: str,
        request_data: RequestData | None,
        *,
        uploads: bool,
        timeout: aiohttp.ClientTimeout,
        upload_deadline: float | None,
    ) -> tuple[int, bytes]:
        body = _body(request_data, uploads) if request_data is not None else None
        if upload_deadline is None:
            async with session.request(method, url, data=body, timeout=timeout) as response:
                return response.status, await response.read()
        async with asyncio.timeout(upload_deadline):
            response = await session.request(method, url, data=body, timeout=timeout)
        async with response:  # the answer streams in under sock_read alone
            return response.status, await response.read()


def _body(
    request_data: RequestData, uploads: bool
) -> aiohttp.FormData | aiohttp.BytesPayload | None:
    """The fields as HTTPXRequest sends them: form-urlencoded, or multipart with the files;
    no body at all for a call without parameters (getMe), as httpx does with an empty form."""
    fields = request_data.json_parameters
    if not uploads:
        if not fields:
            return None
        # Encoded here rather than through FormData, which builds a MultiDict per field.
        return aiohttp.BytesPayload(urlencode(fields).encode(), content_type=FORM_URLENCODED)
    # quote_fields=False sends a file name's UTF-8 as it is, as httpx does; aiohttp would
    # otherwise percent-encode it and Telegram would show "%E5%90%88..." as the name.
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, mime_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return form


def _upload_deadline(
    uploads: bool,
    connect_timeout: float | None,
    write_timeout: float | None,
    read_timeout: float | None,
) -> float | None:
    """How long an upload may take to send and be answered, or None for no limit.

    aiohttp has no write timeout: its sock_read clock starts once the body is sent. A small
    form body goes straight into the socket buffer, after which sock_read covers a dead
    connection, but a file upload can stall mid-body for good. So an upload gets one deadline
    for connecting, sending and the answer's headers: the three timeouts added up. That is
    looser than httpx's per-write limit for a stall, and tighter for a large file on a slow
    link, which must finish within write_timeout (media_write_timeout by default, 20 s).
    """
    if not uploads or connect_timeout is None or write_timeout is None or read_timeout is None:
        return None
    return connect_timeout + write_timeout + read_timeout
