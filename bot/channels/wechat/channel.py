"""Receiving and sending on a WeChat Official Account, beside Telegram, through the same engine.

A callback (callback.py) is stored in the inbox before it is answered, then runs in its
worker's lane like a Telegram update (bot/lane_keeping.py). WeChat lets the account answer
in two ways, and this channel uses both:

- The **passive reply**: the callback's own answer, one message, free, but only within the
  5 seconds WeChat waits. The callback waits up to HOTLINE_WECHAT_REPLY_BUDGET (3 s) for the
  worker's turn; when it is done in time, the turn's first replies, joined into one message,
  are taken from the outbox (Sender.reserve/take) and go back in the answer.
- **Customer-service messages** (message/custom/send) for everything else: replies of a turn
  that took longer, the rest of a long answer, a counsellor's reply. WeChat allows 5 of them
  within 48 hours of each message the worker sends. When the quota is spent or the window has
  closed, the row waits in the outbox (Delivered WAITING) until the worker writes again, which
  opens a new window; the waiting rows then go first, in their order.

The staff group stays on Telegram: a WeChat worker's ticket has its topic there, their texts
are posted into it (a copy across platforms is not possible), and counsellors' replies come
back through this channel's carrier.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.wechat import api as wechat_api
from bot.channels.wechat.api import WeChatApi
from bot.channels.wechat.callback import WeChatAccount, WeChatCallback
from bot.channels.wechat.callback_xml import reply_xml
from bot.channels.wechat.inbound import CHANNEL, to_inbound
from bot.channels.wechat.rendering import join_turn, render
from bot.cluster import Cluster, Solo
from bot.delivery import courier
from bot.delivery.courier import Courier
from bot.delivery.items import enqueue, to_outgoing
from bot.delivery.sender import WAITING, Carrier, Delivered, Queued, Sender, calling
from bot.done_marks import DoneMarks
from bot.engine import Engine
from bot.lane_keeping import LaneKeeper
from bot.lanes import Lanes
from bot.log_redaction import person_tag
from content.catalog import Catalog
from db import inbox, media_files, people, tickets
from db.models import Delivery, Pace, TicketMessage, utcnow
from db.outbox import STAFF_CHANNEL, chat_lane
from handlers.messages import Outgoing, Photo, Reply

log = logging.getLogger(__name__)

CONCURRENT_TURNS = 16
MAX_QUEUED_CALLBACKS = 1000  # callbacks stored and waiting for their turn, at most
SEND_ATTEMPTS = 4  # for "try later" (45009, 5xx) and timeouts
RETRY_DELAY = 0.5
EVIDENCE_BATCH = 20  # files fetched for keeping per round
INVALID_MEDIA_ID = 40007  # WeChat's answer for a media id it no longer has


@dataclass
class PassiveReply:
    """A callback's answer with the turn's first replies in it, and what to do once it has
    been written to WeChat (the rows are sent) or could not be (they go as customer-service
    messages instead)."""

    xml: str
    written: Callable[[], None]
    lost: Callable[[], None]


class WeChatChannel:
    def __init__(
        self,
        *,
        account: WeChatAccount,
        api: WeChatApi,
        engine: Engine,
        sessions: async_sessionmaker[AsyncSession],
        sender: Sender,
        courier_: Courier,
        cluster: Cluster | Solo,
        reply_budget: float = 3.0,
        max_queued: int = MAX_QUEUED_CALLBACKS,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self.account = account
        self.api = api
        self.engine = engine
        self.catalog: Catalog = engine.catalog
        self.sessions = sessions
        self.sender = sender
        self.courier = courier_
        self.cluster = cluster
        self.reply_budget = reply_budget
        self.retry_delay = retry_delay
        self.lanes = Lanes(max_running=CONCURRENT_TURNS)
        self.done = DoneMarks(sessions)
        self.callback = WeChatCallback(account, sessions=sessions, on_stored=self._stored)
        self.keeper = LaneKeeper(
            channel=CHANNEL,
            sessions=sessions,
            lanes=self.lanes,
            cluster=cluster,
            max_queued=max_queued,
            lane_of=lambda fields: inbox.person_lane(CHANNEL, fields["FromUserName"].strip()),
            run_row=self._process,
        )
        sender.add_carrier(
            CHANNEL, Carrier(self.carry_out, busy=self._busy, on_blocked=self._unfollowed)
        )
        self._waiting: dict[int, asyncio.Future[PassiveReply | None]] = {}  # by inbox row
        # Workers whose messages wait for them to write (the next says "while you were
        # away"), and those whose counsellors were told in the topic that a message waits.
        self._away: set[str] = set()
        self._told: set[str] = set()
        self._languages: dict[str, str | None] = {}  # by OpenID, see _language
        # The staff's channels' files, by channel: a counsellor's photo, uploaded to WeChat.
        self.media_sources: dict[str, Callable[[str], Awaitable[bytes]]] = {}
        self._answers: set[asyncio.Task[None]] = set()

    def routes(self):
        return self.callback.routes()

    # -- receiving -------------------------------------------------------------------------

    async def resume(self) -> None:
        """What a previous run stored and did not handle (killed between storing and the
        turn), oldest first."""
        after, resumed = None, 0
        while True:
            async with self.sessions() as session:
                rows = await inbox.unfinished_batch(
                    session, channel=CHANNEL, after=after, limit=200
                )
            if not rows:
                break
            after = rows[-1].update_id
            for row in rows:
                self.keeper.queue(row.id, row.payload)
                resumed += 1
        if resumed:
            log.info("wechat: resumed %d stored callback(s)", resumed)

    async def stop(self) -> None:
        await self.keeper.stop()
        await self.lanes.drain()
        for task in list(self._answers):
            task.cancel()
        await asyncio.gather(*self._answers, return_exceptions=True)
        await self.done.flush()

    async def _stored(self, stored) -> PassiveReply | None:
        """The callback stored a new message: its turn runs in the worker's lane, and the
        callback waits for it, within the budget, to answer with its replies."""
        if not stored:  # WeChat's retry of a message stored before: nothing more to do
            return None
        row_id, fields = stored[0]
        # Only a process that sends (the leader) can answer with the rows; with several
        # processes a lane held elsewhere runs there, and its replies go by custom/send.
        lane = self.keeper.lane_of(fields)
        taken = False
        if self.cluster.shared and self.cluster.leading and lane not in self.cluster.held:
            # A free lane is taken here, to answer in time; with the rows it already has
            # (stored by another process just now), in their order, this one among them.
            taken = bool(await self.cluster.take([lane]))
        local = not self.cluster.shared or lane in self.cluster.held
        waiter = None
        if self.reply_budget > 0 and self.cluster.leading and local:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[row_id] = waiter
        if taken:
            await self.keeper.load_lane(lane)
        else:
            await self.keeper.queue_new(stored)
        if waiter is None:
            return None
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=self.reply_budget)
        except TimeoutError:
            pass
        self._waiting.pop(row_id, None)
        if not waiter.done():  # too late for this answer: the turn's rows go by custom/send
            waiter.cancel()
            return None
        return waiter.result()

    async def _process(self, row_id: int, fields: dict) -> None:
        waiter = self._waiting.pop(row_id, None)
        inbound = to_inbound(fields)
        if inbound is None:  # a push that only reports: nothing to answer
            self.done.add(row_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        lane = chat_lane(CHANNEL, inbound.person_id)
        self._told.discard(inbound.person_id)  # what waits now goes; a new wait is told again
        # Reserved before the turn's rows are woken, so that none leaves before it is taken.
        reserved = waiter is not None and not waiter.done() and self.sender.reserve(lane)
        try:
            result = await self.engine.handle(inbound, receipt=row_id)
            if result.language is not None and not result.erased:  # the turn may have changed it
                self._languages[inbound.person_id] = result.language
            else:  # forgotten, or a turn that failed: read again when needed
                self._languages.pop(inbound.person_id, None)
            calls = [courier.unpark(lane)]  # they wrote: WeChat lets the account answer again
            if result.hold is not None:
                if result.hold.until is None:
                    calls.append(courier.release(result.hold.lane))
                else:
                    calls.append(courier.hold(result.hold.lane, result.hold.until))
            if result.erased and result.queued:
                first = min(row.id for row in result.queued)
                calls.append(courier.drop(lane, before=first))
            if result.queued:
                calls.append(courier.wake(result.queued))
            await self.courier.hand(calls)
            if result.erased and not any(row.body.get("erase_after") for row in result.queued):
                await self.engine.erase_traces()
            if reserved and waiter is not None and not waiter.done():
                account = fields.get("ToUserName", "").strip()  # the account's 原始ID
                answer = await self._passive(lane, inbound.person_id, account)
                if waiter.done():  # the callback stopped waiting meanwhile
                    if answer is not None:
                        answer.lost()
                else:
                    waiter.set_result(answer)
            elif waiter is not None and not waiter.done():
                waiter.set_result(None)
        finally:
            if reserved:
                self.sender.unreserve(lane)

    async def _passive(self, lane: str, openid: str, account: str) -> PassiveReply | None:
        """The lane's first replies that fit in one message, taken from the outbox and marked
        "sending" (a crash from here repeats them by custom/send, at most)."""
        away = openid in self._away
        language = await self._language(openid)
        rendered: list[str] = [self._while_away(language)] if away else []

        def pick(rows: list[Queued]) -> int:
            taken = 0
            for row in rows:
                text = self._passive_text(row, language)
                if text is None or len(join_turn([*rendered, text])) > 1:
                    break
                rendered.append(text)
                taken += 1
            return taken

        taken = self.sender.take(lane, pick)
        if not taken:
            return None
        ids = [row.id for row in taken]
        await self.sender.marking_sending(ids)
        xml = self._reply_xml(openid, account, join_turn(rendered)[0])

        def written() -> None:
            self.sender.taken_sent(ids)
            self._away.discard(openid)

        def lost() -> None:
            task = asyncio.ensure_future(self.sender.give_back(taken))
            self._answers.add(task)
            task.add_done_callback(self._answers.discard)

        return PassiveReply(xml, written, lost)

    def _passive_text(self, row: Queued, language: str | None) -> str | None:
        """A reply that can go in a passive text reply: to the worker's chat, due now, text
        only (a photo is uploaded and sent apart), not the last of a forgotten person's."""
        body = row.body
        if body.get("to") != "chat" or body.get("erase_after"):
            return None
        if row.held and row.due > utcnow():
            return None
        reply = Reply.from_dict(body["reply"])
        if reply.photo is not None:
            return None
        text = self._render(reply, language)
        return text or None

    def _reply_xml(self, openid: str, account: str, text: str) -> str:
        """A passive text reply; encrypted and signed with our own timestamp and nonce when
        the account has an EncodingAESKey (safe and compatible modes)."""
        now = int(time.time())
        fields = {
            "ToUserName": openid,
            "FromUserName": account,
            "CreateTime": now,
            "MsgType": "text",
            "Content": text,
        }
        plain = reply_xml(fields)
        crypto = self.callback.crypto
        if crypto is None:
            return plain
        return crypto.encrypt(plain, nonce=secrets.token_hex(8), timestamp=now)

    # -- sending ---------------------------------------------------------------------------

    def _render(self, reply: Reply, language: str | None) -> str:
        t = self.catalog.translator(language)
        return render(reply, type_words=str(t("wechat.type_words")))

    async def carry_out(self, body: dict, pace: str) -> Delivered:
        """One outbox row for a WeChat worker, by customer-service messages: a reply of a
        turn, or a counsellor's message relayed from the staff group."""
        if "outgoing" in body:
            return await self._relay(Outgoing.from_dict(body["outgoing"]))
        if body.get("to") == "mass":
            return await self._mass_send(body)
        openid = body["chat"]
        delivered = await self.send(openid, Reply.from_dict(body["reply"]))
        if delivered.status == WAITING and pace == Pace.BULK:
            # A job alert (or a notice to one follower alone) never waits for the worker to
            # write: WeChat lets the account write only within 48 hours of their message, so
            # it is not delivered (broadcasts to many go by mass send, which needs no window).
            return Delivered("failed", error=f"wechat_{delivered.error}")
        if delivered.status == WAITING:
            self._away.add(openid)
        return delivered

    async def send(self, openid: str, reply: Reply) -> Delivered:
        """A reply as few messages as fit (each counts against the worker's quota), a photo
        first when it is one made here (a chart); a Telegram file id has no meaning here."""
        language = await self._language(openid)
        texts = join_turn([self._render(reply, language)]) if reply.text or reply.choices else []
        if texts and openid in self._away:  # what waited for them comes first: say so
            texts = join_turn([self._while_away(language), *texts])
        try:
            if reply.photo is not None and reply.photo.png is not None:
                media_id = await self._attempt(
                    lambda: self.api.upload_image(reply.photo.png, _image_name(reply.photo.png))
                )
                await self._attempt(lambda: self.api.send_image(openid, media_id))
            for text in texts:
                await self._attempt(lambda text=text: self.api.send_text(openid, text))
        except (wechat_api.QuotaSpent, wechat_api.WindowClosed) as error:
            log.info(
                "wechat: %s cannot be written to until they write (%s)", person_tag(openid), error
            )
            reason = "quota" if isinstance(error, wechat_api.QuotaSpent) else "window"
            return Delivered(WAITING, error=reason)
        except wechat_api.Unfollowed:
            return Delivered("blocked")
        except wechat_api.ContentTooLong as error:
            return Delivered("failed", error=f"too_long: {error}")
        except wechat_api.WeChatError as error:
            log.warning("wechat: could not send to %s: %s", person_tag(openid), error)
            return Delivered("failed", error=str(error))
        self._away.discard(openid)
        return Delivered("sent")

    async def _mass_send(self, body: dict) -> Delivered:
        """A broadcast to a list of followers by mass send (which needs at least two; one
        alone gets a customer-service message, within their window). A long text goes in
        pieces, each a mass message of its own; WeChat refuses a repeat of a piece
        (clientmsgid), so a retry never sends one twice."""
        openids, reply = body["chats"], Reply.from_dict(body["reply"])
        if len(openids) == 1:
            delivered = await self.send(openids[0], reply)
            if delivered.status == WAITING:
                return Delivered("failed", error=f"wechat_{delivered.error}")
            return delivered
        for n, text in enumerate(join_turn([self._render(reply, None)])):
            clientmsgid = f"{body['clientmsgid']}-{n}"
            try:
                await self._attempt(
                    lambda text=text, clientmsgid=clientmsgid: self.api.mass_send(
                        openids, text, clientmsgid=clientmsgid
                    )
                )
            except wechat_api.AlreadySent:
                continue  # an earlier attempt got through
            except wechat_api.WeChatError as error:
                log.warning("wechat: a mass send to %d failed: %s", len(openids), error)
                return Delivered("failed", error=str(error))
        return Delivered("sent")

    async def _attempt(self, call):
        """One API call, again after a pause for "try later" (45009, 5xx) and timeouts."""
        for attempt in range(SEND_ATTEMPTS):
            calling()
            try:
                return await call()
            except wechat_api.RetryLater as error:
                if attempt == SEND_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(min(error.retry_after, self.retry_delay * 2**attempt))
            except (TimeoutError, OSError) as error:
                if attempt == SEND_ATTEMPTS - 1:
                    raise wechat_api.WeChatError(None, f"unreachable: {error}") from None
                await asyncio.sleep(self.retry_delay * 2**attempt)
        raise AssertionError("unreachable")

    async def _relay(self, item: Outgoing) -> Delivered:
        """A counsellor's message to the worker, signed. A photo from the staff group is
        fetched from its channel and uploaded (media/upload), its signed caption after it;
        another kind of file cannot be shown in WeChat, so its caption goes, saying so."""
        reply = item.reply
        if item.action == "copy":
            reply = await self._staff_media(item)
        worker = item.worker or ""
        delivered = await self.send(worker, reply or Reply(""))
        if delivered.status == WAITING:
            self._away.add(worker)
            if worker not in self._told:  # once while the worker is away
                self._told.add(worker)
                t = self.catalog.translator(self.catalog.staff_language)
                await self._post_in_topic(item, Reply(str(t(f"wechat.waits.{delivered.error}"))))
            return delivered
        if item.record is not None:
            status = Delivery.SENT if delivered.status == "sent" else Delivery.FAILED
            async with self.sessions() as session, session.begin():
                await tickets.record_delivery(session, message_id=item.record, status=status)
        if delivered.status != "sent" and item.on_failure is not None:
            await self._post_in_topic(item, item.on_failure)
        return delivered

    async def _staff_media(self, item: Outgoing) -> Reply:
        caption = item.caption or ""
        fetch = self.media_sources.get(STAFF_CHANNEL)
        async with self.sessions() as session:
            message = await session.get(TicketMessage, item.record) if item.record else None
        if fetch is not None and message is not None and message.media_kind == "photo":
            try:
                return Reply(caption, photo=Photo(png=await fetch(message.media_file_id or "")))
            except Exception as error:  # the staff's channel did not give it: say so instead
                log.warning("wechat: could not fetch a counsellor's photo: %s", error)
        t = self.catalog.translator(await self._language(item.worker or ""))
        return Reply(str(t("wechat.staff_media", caption=caption)))

    async def _post_in_topic(self, item: Outgoing, reply: Reply) -> None:
        """A notice for the counsellors in the ticket's topic (the staff group's channel)."""
        notice = Outgoing(
            action="post",
            to="topic",
            ticket_id=item.ticket_id,
            topic_title=item.topic_title,
            topic_id=item.topic_id,
            reply=reply,
        )
        async with self.sessions() as session, session.begin():
            rows = await enqueue(session, to_outgoing([notice]), now=utcnow())
        self.sender.wake(rows)

    def _while_away(self, language: str | None) -> str:
        return str(self.catalog.translator(language)("wechat.while_away"))

    async def _language(self, openid: str) -> str | None:
        """The worker's language, for the words this channel adds: as their last turn left it,
        or read from the database for someone who has not written since this process began."""
        if openid not in self._languages:
            async with self.sessions() as session:
                self._languages[openid] = await people.language_of(
                    session, channel=CHANNEL, external_id=openid
                )
        return self._languages[openid]

    async def keep_evidence(self) -> int:
        """Keeps the bytes of WeChat workers' evidence (photos, voice notes, videos in their
        tickets) that are not kept yet: WeChat deletes them after 3 days. Returns how many."""
        async with self.sessions() as session:
            file_ids = await media_files.evidence_to_keep(
                session, channel=CHANNEL, limit=EVIDENCE_BATCH
            )
        kept = 0
        for file_id in file_ids:
            try:
                content: bytes | None = await self.api.download_media(file_id)
            except wechat_api.WeChatError as error:
                if error.errcode != INVALID_MEDIA_ID:
                    log.warning("wechat: could not fetch evidence (%s); trying again later", error)
                    continue
                content = None  # expired: nothing left to fetch
            async with self.sessions() as session, session.begin():
                await media_files.keep(
                    session, channel=CHANNEL, file_id=file_id, content=content, now=utcnow()
                )
            kept += content is not None
        return kept

    def _busy(self, pace: str) -> bool:
        """Always: a worker's waiting replies go together, since each message counts."""
        return True

    async def _unfollowed(self, lane: str) -> None:
        openid = lane.split(":", 2)[-1]
        async with self.sessions() as session, session.begin():
            await people.mark_blocked(session, channel=CHANNEL, external_id=openid, now=utcnow())


def _image_name(data: bytes) -> str:
    """media/upload goes by the file's name: a chart made here is a PNG, a photo a JPEG."""
    return "image.png" if data.startswith(b"\x89PNG") else "image.jpg"
