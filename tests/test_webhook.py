"""Webhook mode and the HTTP server: Telegram (the local Bot API server) POSTs updates to the
hotline, which answers 200 only once an update is stored; a forged or missing secret, an
oversized body or a body that is no update is refused with nothing stored; a repeat has one
effect; a kill -9 between the store and the 200 loses nothing. And /healthz."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp import ClientSession, web
from sqlalchemy import func
from sqlmodel import select

from bot.channels.telegram.webhook import MAX_BODY, SECRET_HEADER
from bot.cli import _run_settings, main
from bot.http_server import Health, HttpServer
from bot.service import Hotline
from db import inbox
from db.models import InboxStatus, InboxUpdate, utcnow
from db.session import create_engine, session_factory
from local_servers.telegram import FakeUser, LocalBotApi
from local_servers.telegram.server import DEFAULT_TOKEN
from tests.conversation import replies, say, texts
from tests.processes import hotline_process, killed_after

PATH = "/telegram/updates"


def free_port() -> int:
    """A port nothing listens on now: the webhook's address must be known before the start
    (setWebhook names it), so port 0 will not do there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def webhook_settings(port: int) -> dict[str, str]:
    return {"webhook_url": f"http://127.0.0.1:{port}{PATH}", "listen": f"127.0.0.1:{port}"}


@pytest.fixture
async def webhook_hotline(start_hotline) -> Hotline:
    return await start_hotline(**webhook_settings(free_port()))


@pytest.fixture
async def client() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


def secret_of(api: LocalBotApi) -> str:
    """The secret the hotline registered: what Telegram sends in the header."""
    return api.calls("setWebhook")[-1]["secret_token"]


def command(worker: FakeUser, text: str) -> dict:
    """An update of the worker's, as Telegram would POST it (a /command with its entity)."""
    entities = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"message": worker.compose(worker.user, {"text": text, "entities": entities})}


async def inbox_rows(hotline: Hotline, update_id: int | None = None) -> int:
    query = select(func.count()).select_from(InboxUpdate)
    if update_id is not None:
        query = query.where(InboxUpdate.update_id == update_id)
    async with hotline.sessions() as session:
        return (await session.exec(query)).one()


async def post(
    client: ClientSession, hotline: Hotline, body: bytes, *, secret: str | None
) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    async with client.post(hotline.webhook.url, data=body, headers=headers) as response:
        return response.status, await response.text()


async def until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


# --- the hotline by webhook ---


async def test_a_conversation_runs_over_the_webhook(api: LocalBotApi, webhook_hotline) -> None:
    worker = api.user(801, language_code="en")
    assert "Choose a language" in texts(await say(worker, "/start"))
    assert "How can we help?" in texts(await say(worker, "English"))

    [registered] = api.calls("setWebhook")
    assert registered["url"] == webhook_hotline.webhook.url
    assert 43 <= len(registered["secret_token"]) <= 256
    assert set(registered["allowed_updates"]) == {"message", "edited_message", "callback_query"}
    assert registered["max_connections"] == 40
    assert api.calls("getUpdates") == [] and api.calls("deleteWebhook") == []
    assert [a.status for a in api.webhook_attempts] == [200, 200]
    assert api.pending_updates == 0


@pytest.mark.parametrize("secret", [None, "", "forged-secret-of-the-right-shape_0123456789"])
async def test_a_forged_or_missing_secret_gets_403_and_nothing_is_stored(
    api: LocalBotApi, webhook_hotline, client, secret
) -> None:
    worker = api.user(802, language_code="en")
    body = json.dumps({"update_id": 5001, **command(worker, "/start")}).encode()
    assert (await post(client, webhook_hotline, body, secret=secret))[0] == 403
    # The right secret with one character more or less is forged too.
    real = secret_of(api)
    for wrong in (real + "x", real[:-1]):
        assert (await post(client, webhook_hotline, body, secret=wrong))[0] == 403
    assert await inbox_rows(webhook_hotline) == 0
    assert await worker.quiet(0.3) == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_oversized_body_gets_413_and_nothing_is_stored(
    api: LocalBotApi, webhook_hotline, client, chunked
) -> None:
    worker = api.user(803, language_code="en")
    update = {"update_id": 5002, **command(worker, "/start")}
    update["message"]["text"] += " " + "x" * MAX_BODY
    body = json.dumps(update).encode()
    headers = {SECRET_HEADER: secret_of(api), "Content-Type": "application/json"}

    async def pieces() -> AsyncIterator[bytes]:  # no Content-Length: read until the cap
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    data = pieces() if chunked else body
    async with client.post(webhook_hotline.webhook.url, data=data, headers=headers) as response:
        assert response.status == 413
    assert await inbox_rows(webhook_hotline) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"update_id": "7", "message": {}}',
        b'{"update_id": 7}',
    ],
    ids=["not-json", "not-utf8", "a-list", "id-not-a-number", "no-content"],
)
async def test_a_body_that_is_no_update_gets_400_and_nothing_is_stored(
    api: LocalBotApi, webhook_hotline, client, body
) -> None:
    status, _ = await post(client, webhook_hotline, body, secret=secret_of(api))
    assert status == 400
    assert await inbox_rows(webhook_hotline) == 0


async def test_an_update_posted_twice_is_stored_once_and_answered_once(
    api: LocalBotApi, webhook_hotline, client
) -> None:
    """Telegram retries an update whose 200 it did not get: the repeat is a 200 and nothing."""
    worker = api.user(804, language_code="en")
    body = json.dumps({"update_id": 5004, **command(worker, "/start")}).encode()
    assert (await post(client, webhook_hotline, body, secret=secret_of(api)))[0] == 200
    assert await inbox_rows(webhook_hotline, 5004) == 1  # stored before the 200
    assert "Choose a language" in texts(await replies(worker))
    assert (await post(client, webhook_hotline, body, secret=secret_of(api)))[0] == 200
    assert await worker.quiet(0.5) == []
    assert await inbox_rows(webhook_hotline, 5004) == 1


async def test_a_store_that_fails_gets_500_and_telegram_s_retry_is_answered(
    api: LocalBotApi, webhook_hotline, monkeypatch
) -> None:
    channel = webhook_hotline.telegram
    accept, failures = channel.accept, []

    async def failing_once(updates) -> None:
        if not failures:
            failures.append(updates)
            raise OSError("the database went away")
        await accept(updates)

    monkeypatch.setattr(channel, "accept", failing_once)
    worker = api.user(805, language_code="en")
    assert "Choose a language" in texts(await say(worker, "/start"))
    assert [a.status for a in api.webhook_attempts] == [500, 200]
    assert await worker.quiet(0.3) == []


@pytest.mark.slow
async def test_kill_9_between_the_store_and_the_200_loses_nothing(
    api: LocalBotApi, database_url
) -> None:
    """The process stores the update and dies before answering; Telegram (the local server)
    retries, the restarted hotline handles the stored row once and the retry is a repeat."""
    port = free_port()
    settings = webhook_settings(port)
    env = {"HOTLINE_WEBHOOK_URL": settings["webhook_url"], "HOTLINE_LISTEN": settings["listen"]}
    worker = api.user(806, language_code="en")
    dying = hotline_process(api, database_url, **env, HOTLINE_TEST_DIE_AFTER_STORE="1")
    with killed_after(dying):
        update_id = api.push_update(command(worker, "/start"))
        await until(lambda: dying.poll() is not None, timeout=60)
    assert dying.returncode == -signal.SIGKILL
    assert api.pending_updates == 1, "unanswered: Telegram still holds the update"
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            [row] = (await session.exec(select(InboxUpdate))).all()
        assert (row.update_id, row.status) == (update_id, InboxStatus.RECEIVED)

        restarted = hotline_process(api, database_url, **env)
        try:
            assert "Choose a language" in texts(await replies(worker, timeout=60))
            await until(lambda: api.pending_updates == 0, timeout=30)
            assert await worker.quiet(1.0) == []
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(20) == 0, restarted.stderr.read()
        async with session_factory(engine)() as session:
            count = select(func.count()).select_from(InboxUpdate)
            assert (await session.exec(count)).one() == 1
    finally:
        await engine.dispose()
    statuses = [a.status for a in api.webhook_attempts if a.update_id == update_id]
    assert statuses[0] is None and statuses[-1] == 200  # the kill, then retries until the 200
    assert len(api.calls("setWebhook")) == 2 and api.calls("deleteWebhook") == []


# --- /healthz ---


async def test_healthz_while_polling_reports_the_database_and_the_backlog(
    api: LocalBotApi, start_hotline, client
) -> None:
    """--listen without --webhook: the HTTP server with /healthz, updates still by polling."""
    hotline = await start_hotline(listen="127.0.0.1:0")
    address = f"http://127.0.0.1:{hotline.http.port}/healthz"
    async with client.get(address) as response:
        assert response.status == 200
        assert await response.json() == {"database": "ok", "backlog_seconds": 0}

    worker = api.user(807, language_code="en")
    assert "Choose a language" in texts(await say(worker, "/start"))
    assert api.calls("getUpdates") and api.calls("setWebhook") == []

    # An update stored ten minutes ago and never handled: the hotline is not keeping up.
    async with hotline.sessions() as session, session.begin():
        await inbox.store_updates(
            session,
            channel="telegram",
            updates=[(99_001, "telegram:99001", {"update_id": 99_001, "message": {}})],
            now=utcnow() - timedelta(minutes=10),
        )
    async with client.get(address) as response:
        assert response.status == 503
        body = await response.json()
    assert body["database"] == "ok" and body["backlog_seconds"] >= 600
    assert "300 s" in body["reason"]


@pytest.mark.parametrize(
    "database_url",
    ["postgresql+asyncpg://nobody@127.0.0.1:1/none", "sqlite+aiosqlite:////no/such/dir/x.db"],
    ids=["postgresql-refused", "sqlite-unopenable"],
)
async def test_healthz_is_503_when_the_database_is_unreachable(client, database_url) -> None:
    engine = create_engine(database_url)
    server = HttpServer("127.0.0.1", 0, routes=Health(session_factory(engine)).routes())
    await server.start()
    try:
        async with client.get(f"http://127.0.0.1:{server.port}/healthz") as response:
            assert response.status == 503
            body = await response.json()
        assert body["database"] == "unreachable" and body["reason"]
    finally:
        await server.stop()
        await engine.dispose()


# --- the local Bot API server's side ---


async def test_the_local_server_delivers_in_order_and_retries_until_200(client) -> None:
    """Telegram's part, against a stand-in bot that fails once: one update at a time, the
    same again after a non-200, the secret in its header; getWebhookInfo tells the error;
    getUpdates is refused meanwhile; deleteWebhook stops the deliveries."""
    answers, received = [500], []

    async def bot(request: web.Request) -> web.Response:
        received.append((request.headers.get(SECRET_HEADER), await request.json()))
        return web.Response(status=answers.pop(0) if answers else 200)

    stand_in = HttpServer("127.0.0.1", 0, routes=[web.post("/hook", bot)])
    await stand_in.start()
    async with LocalBotApi() as api:
        call = f"{api.base_url}{DEFAULT_TOKEN}"

        async def telegram(method: str, **params) -> dict:
            async with client.post(f"{call}/{method}", json=params) as response:
                return await response.json()

        try:
            refused = await telegram("setWebhook", url="http://127.0.0.1:1/x", secret_token="no!")
            assert refused["ok"] is False and refused["error_code"] == 400
            worker = api.user(808)
            worker.send("first")
            url = f"http://127.0.0.1:{stand_in.port}/hook"
            assert (await telegram("setWebhook", url=url, secret_token="s3cret_-"))["ok"]
            worker.send("second")
            await until(lambda: len(received) == 3)
            assert [(secret, u["message"]["text"]) for secret, u in received] == [
                ("s3cret_-", "first"),
                ("s3cret_-", "first"),
                ("s3cret_-", "second"),
            ]
            assert [a.status for a in api.webhook_attempts] == [500, 200, 200]
            info = (await telegram("getWebhookInfo"))["result"]
            assert info["url"] == url and info["pending_update_count"] == 0
            assert (
                info["last_error_message"]
                == "Wrong response from the webhook: 500 Internal Server Error"
            )
            assert (await telegram("getUpdates"))["error_code"] == 409

            assert (await telegram("deleteWebhook"))["ok"]
            worker.send("third")
            await asyncio.sleep(0.2)
            assert len(received) == 3 and api.pending_updates == 1
            [third] = (await telegram("getUpdates"))["result"]
            assert third["message"]["text"] == "third"
        finally:
            await stand_in.stop()


# --- the settings ---


def test_run_s_flags_override_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("HOTLINE_WEBHOOK_URL", "https://env.example.org/telegram")
    monkeypatch.setenv("HOTLINE_LISTEN", "127.0.0.1:9000")
    from_env = _run_settings(argparse.Namespace(webhook=None, listen=None))
    assert from_env.webhook_url == "https://env.example.org/telegram"
    assert from_env.listen_address == ("127.0.0.1", 9000)
    flags = argparse.Namespace(webhook="https://flag.example.org/t", listen="[::]:8443")
    from_flags = _run_settings(flags)
    assert from_flags.webhook_url == "https://flag.example.org/t"
    assert from_flags.listen_address == ("::", 8443)
    monkeypatch.delenv("HOTLINE_LISTEN")
    assert _run_settings(argparse.Namespace(webhook=None, listen=None)).listen_address == (
        "0.0.0.0",
        8443,
    )
    monkeypatch.delenv("HOTLINE_WEBHOOK_URL")
    polling = _run_settings(argparse.Namespace(webhook=None, listen=None))
    assert polling.webhook_url is None and polling.listen_address is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--webhook", "http://example.org/t"], "must be https (http only for 127.0.0.1"),
        (["--webhook", "https://example.org/healthz"], "must not be /healthz"),
        (["--listen", "8443"], "must be HOST:PORT"),
    ],
)
def test_a_bad_flag_is_named(capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", *argv])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {argv[0]}" in error and message in error


def test_a_bad_webhook_setting_is_named_in_one_sentence(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("HOTLINE_WEBHOOK_URL", "http://hotline.example.org/telegram")
    assert main(["run"]) == 2
    assert capsys.readouterr().err.strip() == (
        "hotline: The setting HOTLINE_WEBHOOK_URL is malformed:"
        " must be https (http only for 127.0.0.1 or localhost)."
    )
