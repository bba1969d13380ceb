"""`hotline demo`: the real bot against the local Bot API server, chatted with from a terminal.

Nothing leaves this machine: the local server stands in for Telegram, the database is a
SQLite file. Typed lines go to the bot as a worker's messages; a few `:` commands press
buttons or send media, since a terminal has neither. With `--wechat` the worker writes on a
WeChat account instead (the local WeChat server, safe mode, the customer-service quota
enforced), and the staff are still in the Telegram group.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from bot.channels.wechat.callback import CALLBACK_PATH
from bot.jobs_admin import import_csv
from bot.jobs_import import decode
from bot.service import Hotline
from bot.settings import Settings, load_settings
from content.catalog import PACKAGED
from db.models import InboxUpdate, utcnow
from db.staff import register_staff
from local_servers.telegram import BotMessage, LocalBotApi
from local_servers.wechat import FakeFollower, LocalWeChat
from local_servers.wechat.callbacks import SeenMessage

DEMO_DATABASE = "sqlite+aiosqlite:///hotline-demo.db"
WORKER_ID = 10001
COUNSELLOR_ID = 20001
STAFF_CHAT_ID = -1000000000001
WECHAT_OPENID = "oDemoWorker0000000000000001"
DEMO_AES_KEY = "DemoKeyForTheLocalWeChatServerOnlyAbcdefgh1"  # 43 characters; nothing real
HELP = """\
You are a worker chatting with the hotline. Type answers as you would in Telegram:
a number, the words of a choice, or text. Commands start with "/" (try /help, /menu).
Terminal-only actions:
  :press N     press button N of the last message (buttons are shown as [N])
  :photo       send a photo        :document   send a PDF
  :voice       send a voice note   :sticker    send a sticker
  :staff       switch between the worker and Counsellor Li in the staff group; as the
               counsellor you write in the newest ticket's topic (start with ! for a note)
               and :press presses the newest card's buttons
  :quit        leave (your conversation is kept in hotline-demo.db)
"""
WECHAT_HELP = """\
You are a worker writing to the centre's WeChat account (a local stand-in: nothing leaves
this machine). Type answers as you would in WeChat: a number, the words of a choice, or text.
Terminal-only actions:
  :press N     tap choice N of the last message (shown as [N])
  :photo       send a photo        :voice      send a voice note (with WeChat's transcript)
  :staff       switch between the worker and Counsellor Li in the Telegram staff group; as
               the counsellor you write in the newest ticket's topic (! for a note) and
               :press presses the newest card's buttons
  :quit        leave (your conversation is kept in hotline-demo.db)
"""


async def run_demo(*, database_url: str | None = None, wechat: bool = False) -> int:
    async with (
        LocalBotApi() as server,
        LocalWeChat(encoding_aes_key=DEMO_AES_KEY, mode="safe") as account,
    ):
        account_settings = (
            {
                "wechat_app_id": account.app_id,
                "wechat_app_secret": account.app_secret,
                "wechat_token": account.token,
                "wechat_encoding_aes_key": DEMO_AES_KEY,
                "wechat_api_base_url": account.base_url,
                "listen": "127.0.0.1:0",
            }
            if wechat
            else {}
        )
        settings = load_settings(
            Settings,
            telegram_bot_token=server.token,
            telegram_api_base_url=server.base_url,
            database_url=database_url or DEMO_DATABASE,
            max_sends_per_second=1000,
            staff_chat_id=STAFF_CHAT_ID,
            **account_settings,
        )
        forum = server.forum(STAFF_CHAT_ID, "Hotline staff")
        hotline = Hotline(settings, poll_timeout=1)
        server.number_updates_after(await _last_update_id(hotline))
        await hotline.start()
        if wechat:
            account.callback_url = f"http://127.0.0.1:{hotline.http.port}{CALLBACK_PATH}"
        try:
            async with hotline.sessions() as session, session.begin():
                await register_staff(
                    session,
                    channel="telegram",
                    external_id=str(COUNSELLOR_ID),
                    role="counsellor",
                    alias="Counsellor Li",
                )
            await _sample_jobs(hotline)
            desk = _Desk(server.user(COUNSELLOR_ID, "Li"), forum)
            if wechat:
                worker = _WeChatWorker(account.follower(WECHAT_OPENID))
                print(WECHAT_HELP)
                worker.follow()
            else:
                worker = server.user(WORKER_ID, "Demo Worker", language_code="zh-hans")
                print(HELP)
                worker.send("/start")
            await _show_all(worker, desk, answer_expected=True)
            while True:
                line = await asyncio.to_thread(_read_line, desk.active)
                if line is None:  # the end of piped input: what is still coming, then leave
                    await _show_all(worker, desk)
                    break
                if line.strip() == ":quit":
                    break
                line = line.strip()
                if line == ":staff":
                    desk.active = not desk.active
                    print(
                        "  (you are now "
                        + ("Counsellor Li in the staff group" if desk.active else "the worker")
                        + ")"
                    )
                    continue
                acted = desk.act(line) if desk.active else _act(worker, line)
                if acted:
                    await _show_all(worker, desk, answer_expected=not desk.active)
        finally:
            await hotline.stop()
    return 0


class _WeChatWorker:
    """The demo's worker on WeChat: what they type is sent as WeChat sends it (signed and
    encrypted callbacks), what the account sends back is shown however it came."""

    def __init__(self, follower: FakeFollower) -> None:
        self.follower = follower
        self._sending: set[asyncio.Task] = set()

    def _later(self, call) -> None:
        task = asyncio.get_running_loop().create_task(call)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def follow(self) -> None:
        self._later(self.follower.subscribe())

    def send(self, text: str) -> None:
        self._later(self.follower.send_text(text))

    def send_photo(self) -> None:
        self._later(self.follower.send_image())

    def send_voice(self) -> None:
        self._later(self.follower.send_voice(recognition="老板拖欠了三个月工资"))

    def press(self, index: int) -> None:
        """Taps choice `index` of the newest message that has choices (LookupError if none)."""
        message = next((m for m in reversed(self.follower.messages) if m.choices), None)
        if message is None or not 0 <= index < len(message.choices):
            raise LookupError(index)
        self._later(self.follower.tap(index, message=message))

    async def next_message(self, timeout: float) -> BotMessage:
        return await self.follower.next_message(timeout=timeout)

    async def quiet(self, seconds: float) -> list:
        return await self.follower.quiet(seconds)


class _Desk:
    """The counsellor's side of the demo: the newest topic and the newest card."""

    def __init__(self, counsellor, forum) -> None:
        self.counsellor, self.forum, self.active, self.seen = counsellor, forum, False, 0

    def act(self, line: str) -> bool:
        if not self.forum.topics:
            print("  (no ticket yet: file a complaint or talk to a person as the worker first)")
            return False
        topic = max(self.forum.topics)
        if line.startswith(":press"):
            cards = [m for m in self.forum.topic_messages(topic) if m.buttons]
            try:
                self.forum.press(self.counsellor, int(line.split()[1]) - 1, message=cards[-1])
            except (IndexError, ValueError, LookupError):
                print("  (no such button on the newest card)")
                return False
            return True
        if line.startswith(":") or not line:
            print(HELP)
            return False
        self.forum.send(self.counsellor, line, thread_id=topic)
        return True

    def new_messages(self) -> list[BotMessage]:
        fresh = self.forum.messages[self.seen :]
        self.seen = len(self.forum.messages)
        return fresh


ANSWER_WAIT = 10.0  # seconds the demo waits for the bot's answer before the next line
# ...and then for the turn's other messages: a private chat is paced at one a second after
# a burst of five (Telegram's limit, kept in the demo), so a turn's third message may come a
# second after its second.
QUIET_AFTER = 1.2


async def _show_all(worker, desk: _Desk, *, answer_expected: bool = False) -> None:
    """Shows what the bot said; when the worker is owed an answer, waits for it first, so
    that input piped in faster than a person types is answered line by line."""
    fresh = []
    if answer_expected:
        with contextlib.suppress(TimeoutError):
            fresh.append(await worker.next_message(timeout=ANSWER_WAIT))
    _show(fresh + await worker.quiet(QUIET_AFTER))
    _show(desk.new_messages(), prefix="staff")


async def _last_update_id(hotline: Hotline) -> int:
    """The highest update the demo's database has stored (0 for a new file)."""
    try:
        async with hotline.sessions() as session:
            return (await session.exec(select(func.max(InboxUpdate.update_id)))).one() or 0
    except DBAPIError:  # a new file: no tables until the hotline starts
        return 0


async def _sample_jobs(hotline: Hotline) -> None:
    """The template's sample listings, so that "find a job" shows something (once: importing
    the same file again adds nothing)."""
    template = Path(hotline.settings.content_dir or PACKAGED) / "jobs_template.csv"
    if template.exists():
        await import_csv(
            hotline.sessions,
            catalog=hotline.catalog,
            text=decode(template.read_bytes()),
            now=utcnow(),
        )


def _read_line(as_staff: bool = False) -> str | None:
    try:
        return input("counsellor> " if as_staff else "you> ")
    except EOFError:
        return None


def _act(worker, line: str) -> bool:
    """Sends what the line says; False when there was nothing to send."""
    if not line:
        return False
    names = (":photo", ":document", ":voice", ":sticker")
    actions = {
        name: getattr(worker, "send_" + name[1:])
        for name in names
        if hasattr(worker, "send_" + name[1:])
    }
    if line in actions:
        actions[line]()
    elif line.startswith(":press"):
        try:
            worker.press(int(line.split()[1]) - 1)
        except (IndexError, ValueError, LookupError):
            print("  (no such button: use :press N with N from the [N] shown)")
            return False
    elif line.startswith(":"):
        print(HELP)
        return False
    else:
        worker.send(line)
    return True


def _show(messages: list, prefix: str = "bot") -> None:
    for message in messages:
        if isinstance(message, SeenMessage):  # from the WeChat account
            _show_wechat(message)
            continue
        print()
        where = f"{prefix}#{message.message_thread_id}" if message.message_thread_id else prefix
        body = message.plain or f"({message.kind})"
        for text_line in body.splitlines():
            print(f"  {where}| {text_line}")
        number = 0
        for row in message.buttons:
            labels = []
            for button in row:
                number += 1
                labels.append(f"[{number}] {button.text}")
            print("      " + "   ".join(labels))
    print()
    sys.stdout.flush()


def _show_wechat(message: SeenMessage) -> None:
    """A WeChat message as the worker reads it: its tappable choices are lines of its text
    already, shown with the [N] that `:press N` taps; how it came (in the callback's answer,
    or as a customer-service message) after it."""
    print()
    tapped = {choice.content: n for n, choice in enumerate(message.choices, start=1)}
    for text_line in (message.text or f"({message.msgtype})").splitlines():
        number = tapped.get(text_line.strip())
        print(f"  wechat| {text_line}" + (f"   [{number}]" if number else ""))
    print(
        f"        ({'passive reply' if message.via == 'passive' else 'customer-service message'})"
    )
    print()
    sys.stdout.flush()
