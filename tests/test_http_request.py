"""AiohttpRequest, python-telegram-bot's HTTP layer on aiohttp, against real servers.

The local Bot API shows the unmodified Bot working through it; a small recording server
shows what goes over the wire compared with PTB's own HTTPXRequest, and plays the slow,
stalled and busy servers that the timeouts and the pool are for.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import gc
import socket
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut
from telegram.request import HTTPXRequest

from bot.channels.telegram.http import POOL_TIMEOUT_MESSAGE, AiohttpRequest
from local_servers.telegram import LocalBotApi

TOKEN = "123456:recording-server-token"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Hotline", "username": "hotline_bot"}
WORKER_ID = 7001


def keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("紧急 urgent", callback_data="urgency:high"),
                InlineKeyboardButton("Later", callback_data="urgency:low"),
            ]
        ]
    )


@dataclass
class Received:
    """One request as the recording server parsed it."""

    method: str
    content_type: str
    fields: dict[str, str]
    files: dict[str, tuple[str | None, str, bytes]]  # name -> (filename, content type, bytes)
    user_agent: str | None
    client_port: int


@dataclass
class RecordingServer:
    """An aiohttp server that records every Bot API call and answers it like Telegram would,
    after `delay` seconds; while `stalling`, calls never read their body and never answer."""

    base_url: str = ""
    delay: float = 0.0
    stalling: bool = False
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, method: str) -> str:
        return f"{self.base_url}{TOKEN}/{method}"

    def of(self, method: str) -> list[Received]:
        return [call for call in self.received if call.method == method]

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.arrived.set()
        if self.stalling:
            await self.release.wait()
            return web.json_response({"ok": True, "result": True})
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.received.append(await self._parse(method, request))
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return web.json_response({"ok": True, "result": self._result(method)})

    @staticmethod
    async def _parse(method: str, request: web.Request) -> Received:
        fields: dict[str, str] = {}
        files: dict[str, tuple[str | None, str, bytes]] = {}
        if request.body_exists:
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files[name] = (value.filename, value.content_type, value.file.read())
                else:
                    fields[name] = value
        return Received(
            method=method,
            content_type=request.content_type,
            fields=fields,
            files=files,
            user_agent=request.headers.get("User-Agent"),
            client_port=request.transport.get_extra_info("peername")[1],
        )

    @staticmethod
    def _result(method: str) -> object:
        if method == "getMe":
            return BOT_USER
        if method in ("sendMessage", "sendDocument"):
            return {"message_id": 1, "date": 0, "chat": {"id": WORKER_ID, "type": "private"}}
        return True


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingServer]:
    server = RecordingServer()
    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", server.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/bot"
    await web.SockSite(runner, sock).start()
    yield server
    server.release.set()
    await runner.cleanup()


def closed_port() -> int:
    """A port nothing listens on: bound, then let go."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seconds(retry_after: int | dtm.timedelta) -> float:
    """retry_after as a number, whichever type python-telegram-bot is set to give."""
    if isinstance(retry_after, dtm.timedelta):
        return retry_after.total_seconds()
    return float(retry_after)


# --- the Bot on the local Bot API ---


async def test_bot_talks_to_the_local_bot_api_through_aiohttp(api: LocalBotApi):
    worker = api.user(WORKER_ID, "Li")
    request, polling = AiohttpRequest(connection_pool_size=4), AiohttpRequest()
    bot = Bot(
        api.token,
        base_url=api.base_url,
        base_file_url=api.base_file_url,
        request=request,
        get_updates_request=polling,
    )
    async with bot:
        me = await bot.get_me()
        assert (me.id, me.username) == (api.bot_user["id"], "hotline_bot")

        worker.send("你好, my wages are late")
        updates = await bot.get_updates(timeout=1)
        assert [(u.message.from_user.id, u.message.text) for u in updates] == [
            (WORKER_ID, "你好, my wages are late")
        ]

        sent = await bot.send_message(
            WORKER_ID, "<b>Case 12</b> is open", parse_mode="HTML", reply_markup=keyboard()
        )
        assert sent.text == "Case 12 is open" and sent.chat.id == WORKER_ID
        assert [b.callback_data for b in sent.reply_markup.inline_keyboard[0]] == [
            "urgency:high",
            "urgency:low",
        ]
        seen = await worker.next_message()
        assert seen.plain == "Case 12 is open" and seen.parse_mode == "HTML"
        assert [(b.text, b.callback_data) for b in seen.buttons[0]] == [
            ("紧急 urgent", "urgency:high"),
            ("Later", "urgency:low"),
        ]

        # The offset confirms the first update: nothing is left, so this long poll runs its
        # whole second and must not time out.
        assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=1) == ()

    # Leaving the Bot shut both requests down.
    for closed in (request, polling):
        with pytest.raises(NetworkError, match="not initialized"):
            await closed.post(f"{api.base_url}{api.token}/getMe")


async def test_long_poll_may_outlast_the_read_timeout(api: LocalBotApi):
    """Bot.get_updates adds its timeout to the request's read_timeout property."""
    polling = AiohttpRequest(read_timeout=0.3)
    async with Bot(api.token, base_url=api.base_url, get_updates_request=polling) as bot:
        started = time.monotonic()
        assert await bot.get_updates(timeout=1) == ()
        assert time.monotonic() - started >= 0.9


async def test_document_upload_arrives_whole_and_downloads_again(api: LocalBotApi):
    api.user(WORKER_ID, "Li")
    content = b"%PDF-1.4 payslip for March\x00\xff" * 100
    bot = Bot(
        api.token,
        base_url=api.base_url,
        base_file_url=api.base_file_url,
        request=AiohttpRequest(),
    )
    async with bot:
        sent = await bot.send_document(
            WORKER_ID, document=content, filename="工资单 March.pdf", caption="your payslip"
        )
        assert sent.document.file_name == "工资单 March.pdf"
        assert sent.document.mime_type == "application/pdf"
        assert sent.caption == "your payslip"
        assert api.files.content(sent.document.file_id) == content

        file = await bot.get_file(sent.document.file_id)
        assert bytes(await file.download_as_bytearray()) == content  # a GET, no body


async def test_telegram_errors_become_ptbs_exceptions(api: LocalBotApi):
    api.user(WORKER_ID, "Li")
    async with Bot(api.token, base_url=api.base_url, request=AiohttpRequest()) as bot:
        api.fail("sendMessage", status=500)
        with pytest.raises(NetworkError, match="Internal Server Error") as failed:
            await bot.send_message(WORKER_ID, "hello")
        assert not isinstance(failed.value, TimedOut | RetryAfter)

        api.fail("sendMessage", status=429, retry_after=7)
        with warnings.catch_warnings():  # an int retry_after is deprecated in PTB 22
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(RetryAfter) as limited:
                await bot.send_message(WORKER_ID, "hello")
            assert seconds(limited.value.retry_after) == 7

        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(999, "hello")

        # After all that the same session still works.
        assert (await bot.send_message(WORKER_ID, "hello")).text == "hello"


# --- on the wire, compared with HTTPXRequest ---


async def _send_both_ways(server: RecordingServer, request) -> None:
    async with Bot(TOKEN, base_url=server.base_url, request=request) as bot:
        await bot.send_message(
            WORKER_ID, "<b>工资</b> & overtime = 100%", parse_mode="HTML", reply_markup=keyboard()
        )
        await bot.send_document(
            WORKER_ID,
            document=b"contract bytes \x00\x01\x02",
            filename="合同 v2.pdf",
            caption="signed",
        )


async def test_requests_carry_what_httpx_sends(recorder: RecordingServer):
    await _send_both_ways(recorder, HTTPXRequest())
    await _send_both_ways(recorder, AiohttpRequest())
    by_httpx, by_aiohttp = recorder.received[:3], recorder.received[3:]
    assert [call.method for call in by_aiohttp] == ["getMe", "sendMessage", "sendDocument"]

    for theirs, ours in zip(by_httpx, by_aiohttp, strict=True):
        assert ours.method == theirs.method
        assert ours.content_type == theirs.content_type
        assert ours.fields == theirs.fields
        assert ours.files == theirs.files
        assert ours.user_agent == theirs.user_agent

    message, document = by_aiohttp[1], by_aiohttp[2]
    assert message.content_type == "application/x-www-form-urlencoded"
    assert message.fields["text"] == "<b>工资</b> & overtime = 100%"
    assert message.fields["chat_id"] == str(WORKER_ID)
    assert '"callback_data": "urgency:high"' in message.fields["reply_markup"]
    assert document.content_type == "multipart/form-data"
    assert document.fields == {"chat_id": str(WORKER_ID), "caption": "signed"}
    assert document.files == {
        "document": ("合同 v2.pdf", "application/pdf", b"contract bytes \x00\x01\x02")
    }
    assert by_aiohttp[0].user_agent.startswith("python-telegram-bot")


# --- timeouts, failures and the pool ---


async def test_a_slow_answer_times_out_after_read_timeout(recorder: RecordingServer):
    recorder.delay = 2.0
    async with AiohttpRequest(read_timeout=0.2) as request:
        started = time.monotonic()
        with pytest.raises(TimedOut) as timed_out:
            await request.post(recorder.url("getMe"))
        assert time.monotonic() - started < 1.5
        assert "Pool timeout" not in timed_out.value.message


async def test_a_call_s_own_read_timeout_overrides_the_default(recorder: RecordingServer):
    recorder.delay = 0.5
    async with AiohttpRequest(read_timeout=0.1) as request:
        assert (await request.post(recorder.url("getMe"), read_timeout=3))["id"] == BOT_USER["id"]
    async with AiohttpRequest(read_timeout=5) as request:
        with pytest.raises(TimedOut):
            await request.post(recorder.url("getMe"), read_timeout=0.1)


# aiohttp advises a file object for bodies over 1 MB; PTB hands it bytes, which is what counts.
@pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")
async def test_a_stalled_upload_times_out(recorder: RecordingServer):
    """The server never reads the body: only the upload deadline can end the request."""
    request = AiohttpRequest(connect_timeout=0.3, read_timeout=0.3, media_write_timeout=0.3)
    async with Bot(TOKEN, base_url=recorder.base_url, request=request) as bot:
        recorder.stalling = True
        recorder.arrived.clear()
        started = time.monotonic()
        with pytest.raises(TimedOut):
            # More than the socket buffers hold, so sending blocks once they are full.
            await bot.send_document(WORKER_ID, document=b"\x00" * 32_000_000, filename="big.bin")
        assert recorder.arrived.is_set()
        assert time.monotonic() - started < 3


async def test_a_refused_connection_is_a_network_error():
    async with AiohttpRequest() as request:
        with pytest.raises(NetworkError) as refused:
            await request.post(f"http://127.0.0.1:{closed_port()}/bot{TOKEN}/getMe")
    assert not isinstance(refused.value, TimedOut)
    assert refused.value.message.startswith("aiohttp.ClientConnectorError: ")


async def test_a_busy_pool_times_out_with_httpxs_message(recorder: RecordingServer):
    recorder.delay = 1.0
    async with AiohttpRequest(connection_pool_size=1, pool_timeout=0.1) as request:
        first = asyncio.create_task(request.post(recorder.url("getMe")))
        await recorder.arrived.wait()
        started = time.monotonic()
        with pytest.raises(TimedOut) as waited:
            await request.post(recorder.url("getMe"))
        assert time.monotonic() - started < 0.8
        assert waited.value.message == POOL_TIMEOUT_MESSAGE
        assert (await first)["id"] == BOT_USER["id"]  # the request holding the pool is fine
    assert len(recorder.received) == 1  # the refused one was never sent


async def test_many_concurrent_requests_share_a_pool_of_two(recorder: RecordingServer):
    recorder.delay = 0.02
    async with AiohttpRequest(connection_pool_size=2, pool_timeout=10) as request:
        answers = await asyncio.gather(*(request.post(recorder.url("getMe")) for _ in range(40)))
    assert [answer["id"] for answer in answers] == [BOT_USER["id"]] * 40
    assert len(recorder.received) == 40
    assert recorder.most_in_flight == 2
    # Keep-alive: two connections carried all forty requests.
    assert len({call.client_port for call in recorder.received}) == 2


# --- lifecycle ---


@contextmanager
def resource_warnings() -> Iterator[list[str]]:
    """The ResourceWarnings raised inside the block, which should drop the last reference to
    a request: aiohttp warns of an unclosed session when it is collected."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
        # A warning keeps its source alive (the session, and through it the connector, which
        # warns in turn), so collect again until nothing more is found.
        while gc.collect() or caught:
            found.extend(str(w.message) for w in caught if issubclass(w.category, ResourceWarning))
            caught.clear()


async def test_shutdown_closes_the_session(recorder: RecordingServer):
    request = AiohttpRequest()
    await request.initialize()
    assert (await request.post(recorder.url("getMe")))["id"] == BOT_USER["id"]
    await request.shutdown()
    with pytest.raises(NetworkError, match="not initialized"):
        await request.post(recorder.url("getMe"))

    await request.initialize()  # as HTTPXRequest: a shut-down request can start again
    assert (await request.post(recorder.url("getMe")))["id"] == BOT_USER["id"]
    await request.shutdown()
    await request.shutdown()  # a second shutdown is harmless

    with resource_warnings() as leaked:
        del request
    assert leaked == []


async def test_an_unclosed_request_is_noticed(recorder: RecordingServer):
    """The check above can fail: without shutdown aiohttp warns of the unclosed session."""
    request = AiohttpRequest()
    await request.post(recorder.url("getMe"))  # opens the session without initialize()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: None)  # aiohttp reports it there too
    try:
        with resource_warnings() as leaked:
            del request
    finally:
        loop.set_exception_handler(None)
    assert any("Unclosed client session" in message for message in leaked)
