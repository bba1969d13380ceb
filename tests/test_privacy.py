"""A worker sees only their own tickets, and /forget erases what identifies them."""

from __future__ import annotations

from sqlmodel import select

from db.models import Conversation, InboxUpdate, Person, Ticket, TicketMessage
from local_servers.telegram import LocalBotApi
from tests import conversation
from tests.conversation import replies, say, texts


async def file_complaint(worker) -> str:
    return await conversation.file_complaint(worker, photo="", phone="13812345678", anonymous=False)


async def test_a_worker_sees_only_their_own_tickets(api: LocalBotApi, hotline) -> None:
    li, wang = api.user(801, "Li", language_code="en"), api.user(802, "Wang", language_code="en")
    assert (await file_complaint(li)).startswith("HL-")
    await say(wang, "/start")
    await say(wang, "English")
    assert "You have no complaints yet." in texts(await say(wang, "/mytickets"))
    # A forged button naming Li's ticket is refused like any button not on offer.
    await say(wang, "/mytickets")
    api.push_update(
        {
            "callback_query": {
                "id": "forged-1",
                "from": wang.user,
                "chat_instance": "x",
                "data": "tickets.list|1",
                "message": wang.last.raw,
            }
        }
    )
    got = texts(await replies(wang))
    assert "HL-" not in got and "Sunrise" not in got


async def test_forget_erases_personal_details_and_keeps_anonymous_figures(
    api: LocalBotApi, hotline
) -> None:
    worker = api.user(803, "Zhao", username="zhao88", language_code="en")
    await file_complaint(worker)
    assert "Do you really want to delete your personal details?" in texts(
        await say(worker, "/forget")
    )
    assert "Your personal details are deleted." in texts(await say(worker, "Yes, delete"))
    async with hotline.sessions() as session:
        person = (await session.exec(select(Person).where(Person.forgotten_at.is_not(None)))).one()
        ticket = (await session.exec(select(Ticket))).one()
        messages = (await session.exec(select(TicketMessage))).all()
        conversation = await session.get(Conversation, person.id)
    assert person.external_id != "803" and person.display_name is None and person.username is None
    assert (ticket.employer, ticket.address, ticket.story, ticket.phone) == (None, None, None, None)
    assert (ticket.category, ticket.district, ticket.amount_owed) == (
        "unpaid_wages",
        "yushan",
        8500,
    )
    assert messages == [] and conversation is None
    async with hotline.sessions() as session:
        kept = (await session.exec(select(InboxUpdate))).all()
    assert all("Sunrise" not in str(row.payload) for row in kept), "the typed updates are erased"
    assert all(row.payload == {} for row in kept), "only the ids are kept, to spot repeats"
    assert "Choose a language" in texts(await say(worker, "hello"))


async def test_forget_can_be_declined(api: LocalBotApi, hotline) -> None:
    worker = api.user(804, language_code="en")
    await say(worker, "/start")
    await say(worker, "English")
    await say(worker, "/forget")
    got = texts(await say(worker, "No, keep my details"))
    assert "nothing was deleted" in got and "How can we help?" in got


async def test_names_are_stored_only_once_consent_covers_them(api: LocalBotApi, hotline) -> None:
    worker = api.user(805, "Sun Li", username="sunli_88", language_code="en")
    for answer in ("/start", "English", "File a complaint"):
        await say(worker, answer)

    async def stored_names():
        async with hotline.sessions() as session:
            person = (await session.exec(select(Person).where(Person.external_id == "805"))).one()
        return person.display_name, person.username

    assert await stored_names() == (None, None)  # the consent notice is on screen, unanswered
    await say(worker, "I agree")
    assert await stored_names() == ("Sun Li", "sunli_88")
