"""Run the local Bot API alone, for a bot process started by hand (``--base-url``)."""

import argparse
import asyncio
import contextlib

from local_servers.telegram.limits import TelegramLimits
from local_servers.telegram.server import DEFAULT_TOKEN, LocalBotApi


async def serve(api: LocalBotApi) -> None:
    async with api:
        print(f"Local Bot API at {api.base_url}  (token {api.token})", flush=True)
        print(f"files at {api.base_file_url}; Ctrl-C to stop", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local_servers.telegram", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--bot-username", default="hotline_bot")
    parser.add_argument(
        "--no-limits", action="store_true", help="never answer 429 (Telegram's limits lifted)"
    )
    args = parser.parse_args()
    api = LocalBotApi(
        args.token,
        host=args.host,
        port=args.port,
        bot_username=args.bot_username,
        limits=TelegramLimits.unlimited() if args.no_limits else None,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(api))


if __name__ == "__main__":
    main()
