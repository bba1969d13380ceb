"""Queries about the staff registry."""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import Staff


async def register_staff(
    session: AsyncSession, *, channel: str, external_id: str, role: str, alias: str
) -> tuple[Staff, bool]:
    """Adds a staff member, or changes the role and alias of one already there.
    Returns the row and whether it is new."""
    staff = await find_staff(session, channel=channel, external_id=external_id)
    is_new = staff is None
    if staff is None:
        staff = Staff(channel=channel, external_id=external_id, role=role, alias=alias)
        session.add(staff)
    staff.role, staff.alias = role, alias
    await session.flush()
    return staff, is_new


async def find_staff(session: AsyncSession, *, channel: str, external_id: str) -> Staff | None:
    result = await session.exec(
        select(Staff).where(Staff.channel == channel, Staff.external_id == external_id)
    )
    return result.first()


async def all_staff(session: AsyncSession, *, channel: str) -> list[Staff]:
    result = await session.exec(
        select(Staff).where(Staff.channel == channel).order_by(col(Staff.role), col(Staff.alias))
    )
    return list(result.all())


async def remove_staff(session: AsyncSession, *, channel: str, external_id: str) -> bool:
    result = await session.exec(
        delete(Staff).where(Staff.channel == channel, Staff.external_id == external_id)
    )
    return result.rowcount > 0
