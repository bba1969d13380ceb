"""WeChat's access token in the database, so that every process uses one token and one of them
fetches it: a token fetched per process would be a call per process and, from /cgi-bin/token,
would invalidate the others' (bot/channels/wechat/api.py fetches it).

A refresh is taken alone with `hold_refresh`: on PostgreSQL the account's row is locked until
the refreshing transaction ends, so a second process waits there and then reads the first's
new token. SQLite is one process (the hotline runs one on it), whose own lock is enough.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import WeChatAccessToken

# getStableAccessToken: in normal mode WeChat issues the next token in the last 5 minutes of
# the current one ("平台会提前5分钟更新access_token"), both valid meanwhile; a token with
# less left is replaced rather than used.
REFRESH_AHEAD = timedelta(seconds=300)


async def current_token(
    session: AsyncSession, *, app_id: str, now: datetime
) -> WeChatAccessToken | None:
    """The stored token (its row, for its expiry) if it is valid for at least REFRESH_AHEAD."""
    row = await session.get(WeChatAccessToken, app_id, populate_existing=True)
    if row is None or not row.token or row.expires_at <= now + REFRESH_AHEAD:
        return None
    return row


async def store_token(
    session: AsyncSession, *, app_id: str, token: str, expires_at: datetime, now: datetime
) -> None:
    values = {"app_id": app_id, "token": token, "expires_at": expires_at, "refreshed_at": now}
    statement = _insert(session)(WeChatAccessToken).values(**values)
    await session.exec(
        statement.on_conflict_do_update(
            index_elements=["app_id"],
            set_={key: value for key, value in values.items() if key != "app_id"},
        )
    )


async def hold_refresh(session: AsyncSession, *, app_id: str, now: datetime) -> bool:
    """Takes the refresh of the account's token for this transaction. Returns whether other
    processes now wait for it (PostgreSQL): if not (SQLite), the caller's own lock is the
    only one, and the fetch had better not hold SQLite's one connection meanwhile."""
    if session.bind.dialect.name != "postgresql":
        return False
    # The row must exist to be locked: an empty, expired one is written first (a second
    # process's insert waits for the first's to commit, then does nothing).
    await session.exec(
        pg_insert(WeChatAccessToken)
        .values(app_id=app_id, token="", expires_at=now, refreshed_at=now)
        .on_conflict_do_nothing(index_elements=["app_id"])
    )
    await session.exec(
        select(WeChatAccessToken.app_id).where(WeChatAccessToken.app_id == app_id).with_for_update()
    )
    return True


def _insert(session: AsyncSession):
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
