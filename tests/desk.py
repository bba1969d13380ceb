"""The staff side most tests need: a forum the hotline takes as its staff group, and who is on
the staff, put there as `hotline staff add` does. One roster, so that every test speaks of the
same counsellors (the ids staff press buttons as, the aliases workers read) and a test sets up
its desk in one line instead of a block of its own."""

from __future__ import annotations

from bot.service import Hotline
from db.staff import register_staff
from local_servers.telegram import FakeForum, LocalBotApi

STAFF_CHAT = -1001234567

Member = tuple[int, str, str]  # Telegram user id, role, the alias workers see
COUNSELLOR_LI: Member = (771, "counsellor", "Counsellor Li")
COUNSELLOR_ZHOU: Member = (772, "counsellor", "Counsellor Zhou")
COORDINATOR_WU: Member = (778, "coordinator", "Coordinator Wu")
ADMIN_WU: Member = (779, "admin", "Admin Wu")


async def register(hotline: Hotline, *members: Member) -> None:
    """Puts each member on the staff (or changes their role and alias), in one transaction."""
    async with hotline.sessions() as session, session.begin():
        for user_id, role, alias in members:
            await register_staff(
                session, channel="telegram", external_id=str(user_id), role=role, alias=alias
            )


async def start_desk(
    api: LocalBotApi, start_hotline, *members: Member, staff_chat: int = STAFF_CHAT, **settings
) -> tuple[Hotline, FakeForum]:
    """A staff forum, the hotline started with it as its staff group (and any other settings
    given), and the members on the staff."""
    forum = api.forum(staff_chat, "Hotline staff")
    hotline = await start_hotline(staff_chat_id=staff_chat, **settings)
    if members:  # with none, the caller has the hotline straight after its start
        await register(hotline, *members)
    return hotline, forum
