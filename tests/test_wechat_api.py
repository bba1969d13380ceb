"""WeChat's API client (bot/channels/wechat/api.py) against the local WeChat server: one access
token between processes, kept in the database; a token WeChat refuses refreshed once and the
call made once more; WeChat's refusals as the typed errors the outbox tells apart; media and the
menu; the token never in the log. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from bot.channels.wechat.api import (
    HIDDEN,
    ContentTooLong,
    QuotaSpent,
    TooFrequent,
    Unfollowed,
    WeChatApi,
    WeChatError,
    WeChatUnavailable,
    WindowClosed,
)
from db.migrate import downgrade, upgrade
from db.models import SQLModel, WeChatAccessToken
from db.session import create_engine, session_factory
from local_servers.wechat import LocalWeChat
from local_servers.wechat.server import DEFAULT_APP_ID, DEFAULT_APP_SECRET

pytestmark = pytest.mark.postgres
SEND = "message/custom/send"
TOKEN = "stable_token"
PHOTO = b"\xff\xd8\xff\xe0 a photo of the pay slip"

StartProcess = Callable[..., WeChatApi]


@pytest.fixture
async def wechat() -> AsyncIterator[LocalWeChat]:
    async with LocalWeChat() as server:
        yield server


@pytest.fixture
async def processes(database_url: str, wechat: LocalWeChat) -> AsyncIterator[StartProcess]:
    """Each call is one more hotline process: an engine of its own on the test's database."""
    started = []

    def start(**options: object) -> WeChatApi:
        engine = create_engine(database_url)
        api = WeChatApi(
            wechat.base_url,
            DEFAULT_APP_ID,
            DEFAULT_APP_SECRET,
            session_factory(engine),
            **options,
        )
        started.append((engine, api))
        return api

    yield start
    for engine, api in started:
        await api.close()
        await engine.dispose()


@pytest.fixture
def api(processes: StartProcess) -> WeChatApi:
    return processes()


def worker(wechat: LocalWeChat, openid: str = "oWorker") -> str:
    """A follower who has just written: 5 customer-service messages allowed."""
    wechat.follower(openid)
    wechat.grant_message_quota(openid)
    return openid


def tokens_used(wechat: LocalWeChat, path: str = SEND) -> list[str]:
    return [call.query["access_token"] for call in wechat.calls(path)]


def errcodes(wechat: LocalWeChat, path: str = SEND) -> list[int]:
    return [call.errcode for call in wechat.calls(path)]


async def stored_token(database_url: str) -> WeChatAccessToken | None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return await session.get(WeChatAccessToken, DEFAULT_APP_ID)
    finally:
        await engine.dispose()


async def test_two_processes_fetch_one_token_between_them(
    wechat: LocalWeChat, processes: StartProcess, database_url: str
) -> None:
    first, second = processes(), processes()
    openid = worker(wechat)
    await first.send_text(openid, "您的投诉已收到")
    await second.send_text(openid, "辅导员会联系您")
    assert len(wechat.calls(TOKEN)) == 1, "the second process read the first's token"
    assert errcodes(wechat) == [0, 0] and len(set(tokens_used(wechat))) == 1
    row = await stored_token(database_url)
    assert row is not None and row.token == tokens_used(wechat)[0]
    received = [m.text for m in wechat.follower(openid).messages]
    assert received == ["您的投诉已收到", "辅导员会联系您"]


async def test_two_processes_starting_at_the_same_moment(
    wechat: LocalWeChat, processes: StartProcess, database_url: str
) -> None:
    first, second = processes(), processes()
    openid = worker(wechat)
    await asyncio.gather(first.send_text(openid, "一"), second.send_text(openid, "二"))
    assert errcodes(wechat) == [0, 0] and len(set(tokens_used(wechat))) == 1
    if database_url.startswith("postgresql"):
        # The row lock: the second waited for the first's fetch and took its token.
        assert len(wechat.calls(TOKEN)) == 1
    else:
        # SQLite is one process (the hotline runs one on it): two at once may both fetch, and
        # stable_token's normal mode gives both the same token, neither invalidating the other.
        assert 1 <= len(wechat.calls(TOKEN)) <= 2


async def test_an_expired_token_is_refreshed_once_and_the_call_made_again(
    wechat: LocalWeChat, processes: StartProcess
) -> None:
    first, second = processes(), processes()
    openid = worker(wechat)
    await first.send_text(openid, "1")
    await second.send_text(openid, "2")
    wechat.expire_tokens()  # as if two hours had passed on WeChat's side
    await first.send_text(openid, "3")
    await second.send_text(openid, "4")
    # The second process's old token is "not latest" (40001) once the next one is issued.
    assert errcodes(wechat) == [0, 0, 42001, 0, 40001, 0]
    old, new = tokens_used(wechat)[0], tokens_used(wechat)[3]
    assert old != new and tokens_used(wechat)[5] == new, "the second took the first's new token"
    fetches = wechat.calls(TOKEN)
    assert len(fetches) == 2 and "force_refresh" not in fetches[1].json, "expired: normal mode"
    assert [m.text for m in wechat.follower(openid).messages] == ["1", "2", "3", "4"]


async def test_a_token_refused_once_is_refreshed_and_the_call_made_again(
    wechat: LocalWeChat, api: WeChatApi
) -> None:
    openid = worker(wechat)
    wechat.fail(SEND, errcode=40001)
    await api.send_text(openid, "您好")
    assert errcodes(wechat) == [40001, 0]
    refused, used = tokens_used(wechat)
    assert refused != used
    # Normal mode handed back the refused token, so the refresh was forced, once.
    assert [call.json.get("force_refresh") for call in wechat.calls(TOKEN)] == [None, None, True]
    assert wechat.follower(openid).last.text == "您好"


async def test_a_token_refused_twice_raises(wechat: LocalWeChat, api: WeChatApi) -> None:
    openid = worker(wechat)
    wechat.fail(SEND, errcode=40001, times=2)
    with pytest.raises(WeChatError) as refused:
        await api.send_text(openid, "您好")
    assert refused.value.errcode == 40001
    assert errcodes(wechat) == [40001, 40001], "retried once, not again"
    assert wechat.follower(openid).messages == []


async def test_the_sixth_message_within_the_quota_is_quota_spent(
    wechat: LocalWeChat, api: WeChatApi
) -> None:
    openid = worker(wechat)
    for n in range(5):
        await api.send_text(openid, f"第{n + 1}条")
    with pytest.raises(QuotaSpent) as spent:
        await api.send_text(openid, "第6条")
    assert spent.value.errcode == 45047
    assert len(wechat.follower(openid).messages) == 5
    wechat.grant_message_quota(openid)  # the worker writes again
    await api.send_text(openid, "第6条")
    assert wechat.follower(openid).last.text == "第6条"


async def test_a_closed_window_an_unfollowing_worker_and_a_long_text_are_typed(
    wechat: LocalWeChat, api: WeChatApi
) -> None:
    wechat.follower("oSilent")  # follows, but has not written: no window open
    with pytest.raises(WindowClosed):
        await api.send_text("oSilent", "您好")
    wechat.follower("oGone", following=False)
    with pytest.raises(Unfollowed):
        await api.send_text("oGone", "您好")
    openid = worker(wechat)
    with pytest.raises(ContentTooLong):
        await api.send_text(openid, "字" * 683)  # 2049 bytes of UTF-8
    assert errcodes(wechat) == [45015, 43004, 45002]


async def test_too_frequent_and_unavailable_say_when_to_try_again(
    wechat: LocalWeChat, api: WeChatApi
) -> None:
    openid = worker(wechat)
    wechat.fail(SEND, errcode=45009, times=2)
    with pytest.raises(TooFrequent) as first:
        await api.send_text(openid, "1")
    with pytest.raises(TooFrequent) as second:
        await api.send_text(openid, "1")
    assert (first.value.errcode, first.value.retry_after, second.value.retry_after) == (45009, 1, 2)
    wechat.fail(SEND, status=502)
    with pytest.raises(WeChatUnavailable) as outage:
        await api.send_text(openid, "1")
    assert outage.value.errcode is None and outage.value.retry_after == 4, "still backing off"
    wechat.fail(SEND, errcode=-1)  # "system busy"
    with pytest.raises(WeChatUnavailable) as busy:
        await api.send_text(openid, "1")
    assert busy.value.errcode == -1
    await api.send_text(openid, "1")
    wechat.fail(SEND, status=503)
    with pytest.raises(WeChatUnavailable) as again:
        await api.send_text(openid, "1")
    assert again.value.retry_after == 1, "a success ends the back-off"
    assert [m.text for m in wechat.follower(openid).messages] == ["1"]


async def test_a_call_that_times_out_is_unavailable(
    wechat: LocalWeChat, processes: StartProcess
) -> None:
    api = processes(timeout=0.1)
    openid = worker(wechat)
    await api.send_text(openid, "1")
    wechat.latency = 0.5
    with pytest.raises(WeChatUnavailable, match="timed out") as slow:
        await api.send_text(openid, "2")
    assert slow.value.retry_after == 1


async def test_media_go_up_and_come_down_and_the_menu_keeps_its_chinese(
    wechat: LocalWeChat, api: WeChatApi
) -> None:
    openid = worker(wechat)
    media_id = await api.upload_image(PHOTO, "工资条.jpg")
    assert wechat.media[media_id].data == PHOTO and wechat.media[media_id].type == "image"
    await api.send_image(openid, media_id)
    assert wechat.follower(openid).last.media_id == media_id
    assert await api.download_media(media_id) == PHOTO
    voice = wechat.add_media("voice", b"#!AMR\n a voice note", "voice.amr")  # a worker's
    assert await api.download_media(voice.media_id) == b"#!AMR\n a voice note"
    video = wechat.add_media("video", b"\x00\x00\x00\x18ftypmp4", "video.mp4")
    assert await api.download_media(video.media_id) == b"\x00\x00\x00\x18ftypmp4"
    with pytest.raises(WeChatError) as missing:
        await api.download_media("no-such-media")
    assert missing.value.errcode == 40007
    menu = {
        "button": [
            {"type": "click", "name": "投诉", "key": "complaint"},
            {"type": "click", "name": "我的工单", "key": "my_tickets"},
            {"type": "click", "name": "找人工", "key": "talk"},
        ]
    }
    await api.create_menu(menu)  # \uXXXX escapes would be refused (40033)
    assert wechat.menu == menu


async def test_the_token_and_the_secret_are_never_logged(
    wechat: LocalWeChat, api: WeChatApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    openid = worker(wechat)
    await api.send_text(openid, "1")
    wechat.expire_tokens()
    await api.send_text(openid, "2")
    wechat.fail(SEND, errcode=40001)
    await api.send_text(openid, "3")
    wechat.fail(SEND, status=502)
    with pytest.raises(WeChatUnavailable) as outage:
        await api.send_text(openid, "4")
    await api.upload_image(PHOTO, "photo.jpg")
    tokens = {call.query["access_token"] for call in wechat.requests if call.query}
    assert len(tokens) == 3, "three tokens were used: the first, the refreshed, the forced"
    assert f"access_token={HIDDEN}" in caplog.text, "the calls were logged, their token hidden"
    for secret in (*tokens, DEFAULT_APP_SECRET):
        assert secret not in caplog.text
        assert secret not in str(outage.value)


@asynccontextmanager
async def scratch_database(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own, to migrate by hand."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"hotline_wechat_{uuid.uuid4().hex[:8]}"
    admin = create_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_migration_0009_makes_the_table_the_model_describes(
    database_url: str, tmp_path: Path
) -> None:
    async with scratch_database(database_url, tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0008")
            assert "wechat_access_token" not in await _tables(engine)
            await upgrade(engine)
            async with engine.connect() as connection:
                differences = await connection.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync), SQLModel.metadata
                    )
                )
            assert "wechat_access_token" in await _tables(engine)
            assert [d for d in differences if "wechat_access_token" in repr(d)] == []
            await downgrade(engine, "0008")
            assert "wechat_access_token" not in await _tables(engine)
        finally:
            await engine.dispose()


async def _tables(engine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
