"""WeChat callback benchmark: how long the hotline's `/wechat` takes to answer when many
followers write at once, against WeChat's 5-second deadline.

Run from the repository root:

    .venv/bin/python bench/wechat_callbacks.py [--followers 50] [--messages 15] [--database URL]

What runs: the local WeChat server (local_servers/wechat) in safe mode, whose followers sign
and encrypt every message as WeChat does and send it again when it is not answered within
5 s; and, as the hotline serves it, bot/channels/wechat/callback.py on the hotline's HTTP
server: signatures checked, the Encrypt field's signature checked and decrypted, the XML read
without DTDs, the message stored in the inbox (SQLite in a temporary folder, or a scratch
PostgreSQL database with --database) before the answer. Each follower sends --messages texts
(a complaint's worth), each as soon as the one before was answered.

The reference, measured in the same run with the same followers: an endpoint on the same
kind of server that answers "success" at once, without checking or storing anything. It is
what the harness and aiohttp cost here; the ratio says what the checks and the store add.

Then one signed callback is posted three times at once (WeChat's retries, or one message at two
processes): all three must get 200 and the inbox one row.

What this does not measure yet: a worker's turn (the WeChat channel does not run turns yet,
issue 12), so no passive replies and no customer-service sends. Everything runs in this one
process. Nothing asserts on timings: it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import _percentile  # noqa: E402  (the nearest-rank percentile of every bench)

from bot.channels.wechat.callback import (  # noqa: E402  (bench/ is a folder of scripts)
    CALLBACK_PATH,
    NO_REPLY,
    WeChatAccount,
    WeChatCallback,
)
from bot.http_server import HttpServer  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import InboxUpdate  # noqa: E402
from db.session import create_engine, session_factory  # noqa: E402
from local_servers.wechat import LocalWeChat, random_encoding_aes_key  # noqa: E402
from local_servers.wechat.server import DEFAULT_APP_ID, DEFAULT_TOKEN  # noqa: E402

WECHAT_DEADLINE = 5.0  # seconds: WeChat gives up on an answer and sends the message again
TARGET_P95 = 0.5  # seconds (issue 12's figure for a whole turn; a store alone must meet it)


async def _reference(_request: web.Request) -> web.Response:
    return web.Response(text=NO_REPLY)


async def _walk(wechat: LocalWeChat, followers: int, messages: int) -> dict:
    """Every follower sends its messages one after another, all followers at once."""

    async def follower(n: int) -> list:
        worker = wechat.follower(f"oBench{n:05d}")
        deliveries = []
        for m in range(messages):
            deliveries.append(await worker.send_text(f"老板拖欠工资，第{m + 1}条"))
        return deliveries

    began = time.perf_counter()
    walks = await asyncio.gather(*(follower(n) for n in range(followers)))
    elapsed = time.perf_counter() - began
    deliveries = [d for walk in walks for d in walk]
    first_answers = [d.tries[0].answered_after for d in deliveries]
    answered = sorted(a for a in first_answers if a is not None)
    return {
        "callbacks": len(deliveries),
        "per_second": len(deliveries) / elapsed,
        "p50": statistics.median(answered) if answered else None,
        "p95": _percentile(answered, 95) if answered else None,
        "max": answered[-1] if answered else None,
        "unanswered_first_try": sum(a is None for a in first_answers),
        "tried_again": sum(len(d.tries) > 1 for d in deliveries),
        "failed": sum(d.outcome == "failed" for d in deliveries),
    }


async def _measure(routes, mode_key: str, args) -> dict:
    server = HttpServer("127.0.0.1", 0, routes=routes)
    await server.start()
    try:
        async with LocalWeChat(
            encoding_aes_key=mode_key,
            mode="safe",
            callback_url=f"http://127.0.0.1:{server.port}{CALLBACK_PATH}",
            reply_deadline=WECHAT_DEADLINE,
        ) as wechat:
            return await _walk(wechat, args.followers, args.messages)
    finally:
        await server.stop()


async def _replay(callback: WeChatCallback, key: str, sessions) -> dict:
    """One signed callback three times at once."""
    server = HttpServer("127.0.0.1", 0, routes=callback.routes())
    await server.start()
    try:
        async with LocalWeChat(
            encoding_aes_key=key,
            mode="safe",
            callback_url=f"http://127.0.0.1:{server.port}{CALLBACK_PATH}",
        ) as wechat:
            msg_id = 9_000_000_000_000_000_001
            fields = {
                "ToUserName": wechat.original_id,
                "FromUserName": "oReplayed",
                "CreateTime": int(time.time()),
                "MsgType": "text",
                "Content": "同一条消息",
                "MsgId": msg_id,
            }
            query, body = wechat.callbacks.signed_request(fields)
            answers = await asyncio.gather(
                *(wechat.callbacks.post_raw(query, body) for _ in range(3))
            )
    finally:
        await server.stop()
    async with sessions() as session:
        rows = await session.scalar(
            select(func.count()).select_from(InboxUpdate).where(InboxUpdate.update_id == msg_id)
        )
    return {"answers": [status for status, _ in answers], "rows": rows}


async def _database(url: str | None, folder: str) -> tuple[str, str | None]:
    """The hotline's database URL, and a scratch PostgreSQL database's name to drop after."""
    if url is None:
        return f"sqlite+aiosqlite:///{Path(folder) / 'hotline.db'}", None
    name = f"hotline_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}", name


async def _drop(url: str, name: str) -> None:
    admin = create_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.1f}"


async def run(args) -> int:
    key = random_encoding_aes_key()
    with tempfile.TemporaryDirectory() as folder:
        url, scratch = await _database(args.database, folder)
        engine = create_engine(url)
        try:
            await upgrade(engine)
            sessions = session_factory(engine)
            account = WeChatAccount(
                app_id=DEFAULT_APP_ID, token=DEFAULT_TOKEN, encoding_aes_key=key
            )
            callback = WeChatCallback(account, sessions=sessions)
            reference = await _measure([web.post(CALLBACK_PATH, _reference)], key, args)
            hotline = await _measure(callback.routes(), key, args)
            replay = await _replay(callback, key, sessions)
            async with sessions() as session:
                stored = await session.scalar(select(func.count()).select_from(InboxUpdate))
        finally:
            await engine.dispose()
            if scratch is not None:
                await _drop(args.database, scratch)
    database = "sqlite (temp file)" if args.database is None else "postgresql (scratch database)"
    print(
        f"wechat callbacks: {args.followers} followers x {args.messages} messages, safe mode,"
        f" database {database}"
    )
    print(
        f"{'':12}{'callbacks':>10}{'per s':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
        f"{'retried':>9}{'failed':>8}"
    )
    for name, figures in (("reference", reference), ("hotline", hotline)):
        print(
            f"{name:12}{figures['callbacks']:>10}{figures['per_second']:>9.1f}"
            f"{_ms(figures['p50']):>9}{_ms(figures['p95']):>9}{_ms(figures['max']):>9}"
            f"{figures['tried_again']:>9}{figures['failed']:>8}"
        )
    ratio = hotline["per_second"] / reference["per_second"]
    print(f"ratio hotline/reference (callbacks per second): {ratio:.2f}")
    stored_new = stored - 1  # the replayed message's one row
    print(f"stored: {stored_new} rows for {hotline['callbacks']} callbacks")
    deadline = "met" if (hotline["max"] or 0) < WECHAT_DEADLINE else "MISSED"
    p95 = "met" if (hotline["p95"] or 0) <= TARGET_P95 else "MISSED"
    print(
        f"slowest answer {_ms(hotline['max'])} ms (WeChat's deadline {WECHAT_DEADLINE:g} s:"
        f" {deadline}); p95 {_ms(hotline['p95'])} ms (target <= {1000 * TARGET_P95:g} ms: {p95})"
    )
    print(
        f"replay: one callback three times at once -> answers {replay['answers']},"
        f" {replay['rows']} row(s) in the inbox (target: 200 each, 1 row)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=50, help="followers at once (50)")
    parser.add_argument("--messages", type=int, default=15, help="messages each (15)")
    parser.add_argument(
        "--database",
        default=None,
        help="default a SQLite file in a temp dir; postgresql+asyncpg://USER@HOST:PORT/DB runs"
        " on a scratch database created there and dropped afterwards",
    )
    args = parser.parse_args(argv)
    if args.followers < 1 or args.messages < 1:
        parser.error("--followers and --messages must be >= 1")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
