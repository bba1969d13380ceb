"""Run the local WeChat server alone, for a bot process started by hand (WECHAT_API_BASE_URL)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from local_servers.wechat.callbacks import MODES
from local_servers.wechat.server import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_TOKEN,
    LocalWeChat,
)


async def serve(wechat: LocalWeChat) -> None:
    async with wechat:
        print(f"Local WeChat at {wechat.base_url}", flush=True)
        print(f"AppID {wechat.app_id}  AppSecret {wechat.app_secret}", flush=True)
        print(f"Token {wechat.token}  mode {wechat.mode}", flush=True)
        if wechat.encoding_aes_key:
            print(f"EncodingAESKey {wechat.encoding_aes_key}", flush=True)
        if wechat.callback_url:
            print(f"callbacks to {wechat.callback_url}", flush=True)
        print("Ctrl-C to stop", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local_servers.wechat", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--app-id", default=DEFAULT_APP_ID)
    parser.add_argument("--app-secret", default=DEFAULT_APP_SECRET)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the server configuration's Token")
    parser.add_argument("--encoding-aes-key", default=None, help="43 characters")
    parser.add_argument("--mode", choices=MODES, default="plaintext")
    parser.add_argument("--callback-url", default="", help="the bot's /wechat URL")
    args = parser.parse_args()
    wechat = LocalWeChat(
        args.app_id,
        args.app_secret,
        token=args.token,
        encoding_aes_key=args.encoding_aes_key,
        mode=args.mode,
        callback_url=args.callback_url,
        host=args.host,
        port=args.port,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(wechat))


if __name__ == "__main__":
    main()
