"""`hotline demo`: the real bot against the local Bot API server, chatted with from a terminal.

Nothing leaves this machine: the local server stands in for Telegram, the database is a
SQLite file. Typed lines go to the bot as a worker's messages; a few `:` commands press
buttons or send media, since a terminal has neither.
"""

from __future__ import annotations

import asyncio
import sys

from bot.local_bot_api import BotMessage, LocalBotApi
from bot.service import Hotline
from bot.settings import Settings, load_settings

DEMO_DATABASE = "sqlite+aiosqlite:///hotline-demo.db"
WORKER_ID = 10001
HELP = """\
You are a worker chatting with the hotline. Type answers as you would in Telegram:
a number, the words of a choice, or text. Commands start with "/" (try /help, /menu).
Terminal-only actions:
  :press N     press button N of the last message (buttons are shown as [N])
  :photo       send a photo        :document   send a PDF
  :voice       send a voice note   :sticker    send a sticker
  :quit        leave (your conversation is kept in hotline-demo.db)
"""


async def run_demo(*, database_url: str | None = None) -> int:
    async with LocalBotApi() as server:
        settings = load_settings(
            Settings,
            telegram_bot_token=server.token,
            telegram_api_base_url=server.base_url,
            database_url=database_url or DEMO_DATABASE,
            max_sends_per_second=1000,
        )
        hotline = Hotline(settings, poll_timeout=1)
        await hotline.start()
        try:
            worker = server.user(WORKER_ID, "Demo Worker", language_code="zh-hans")
            print(HELP)
            worker.send("/start")
            _show(await worker.quiet(0.5))
            while True:
                line = await asyncio.to_thread(_read_line)
                if line is None or line.strip() == ":quit":
                    break
                if not _act(worker, line.strip()):
                    continue
                _show(await worker.quiet(0.5))
        finally:
            await hotline.stop()
    return 0


def _read_line() -> str | None:
    try:
        return input("you> ")
    except EOFError:
        return None


def _act(worker, line: str) -> bool:
    """Sends what the line says; False when there was nothing to send."""
    if not line:
        return False
    actions = {":photo": worker.send_photo, ":document": worker.send_document,
               ":voice": worker.send_voice, ":sticker": worker.send_sticker}
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


def _show(messages: list[BotMessage]) -> None:
    for message in messages:
        print()
        for text_line in message.plain.splitlines():
            print(f"  bot| {text_line}")
        number = 0
        for row in message.buttons:
            labels = []
            for button in row:
                number += 1
                labels.append(f"[{number}] {button.text}")
            print("      " + "   ".join(labels))
    print()
    sys.stdout.flush()
