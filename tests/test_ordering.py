"""One person's messages are handled in the order sent; different people's at the same time."""

from __future__ import annotations

from sqlmodel import select

from db.models import Conversation, Person
from local_servers.telegram import LocalBotApi
from tests.conversation import say

TO_STORY = ("/start", "English", "File a complaint", "I agree", "Other", "Acme", "Yushan", "1 Road")


async def test_bursts_from_two_workers_stay_in_order_and_apart(api: LocalBotApi, hotline) -> None:
    workers = [api.user(901, language_code="en"), api.user(902, language_code="en")]
    for worker in workers:
        for answer in TO_STORY:
            await say(worker, answer)
    for n in range(10):  # interleaved, without waiting for any reply
        for worker in workers:
            worker.send(f"{worker.id} part {n}")
    for worker in workers:
        await worker.next_messages(10, timeout=10)
    async with hotline.sessions() as session:
        for worker in workers:
            person = (
                await session.exec(select(Person).where(Person.external_id == str(worker.id)))
            ).one()
            story = (await session.get(Conversation, person.id)).data["answers"]["story"]
            assert story == [f"{worker.id} part {n}" for n in range(10)]
