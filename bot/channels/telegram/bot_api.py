"""Bot API calls on the hot path, answered as plain JSON instead of python-telegram-bot objects.

python-telegram-bot builds an `Update` for every update fetched and a `Message` for every
message sent: a few hundred attribute sets each, a sixth of the hotline's time in
bench/throughput.py, for answers of which the hotline reads an update's few fields and a sent
message's id. getUpdates, sendMessage and answerCallbackQuery therefore go through the same
request object the `Bot` uses (`BaseRequest.post`, which turns Telegram's errors into the same
exceptions: RetryAfter, Forbidden, BadRequest, NetworkError, TimedOut), with the parameters
encoded once and the answer left as JSON. Everything else still goes through `Bot`'s methods.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from telegram import InlineKeyboardMarkup
from telegram.request import BaseRequest, RequestData

# Not exported, but RequestData is built of these; python-telegram-bot is pinned below 23.
from telegram.request._requestparameter import RequestParameter

# python-telegram-bot logs every call and its answer at DEBUG; so do these, the same way
# (README, "DEBUG": what people wrote is in them).
log = logging.getLogger(__name__)


class BotApi:
    def __init__(self, *, base_url: str, calls: BaseRequest, updates: BaseRequest) -> None:
        self.base_url = base_url  # ends with the bot token: "https://api.telegram.org/bot<token>"
        self.calls = calls  # the Bot's general request object
        self.updates = updates  # the one long polls use, as Bot.get_updates does

    async def get_updates(
        self, *, offset: int | None, timeout: int, limit: int, allowed_updates: list[str]
    ) -> list[dict[str, Any]]:
        fields = {"timeout": timeout, "limit": limit, "allowed_updates": allowed_updates}
        if offset is not None:
            fields["offset"] = offset
        # As Bot.get_updates: the long poll's own timeout on top of the read timeout.
        read_timeout = (self.updates.read_timeout or 0) + timeout
        return await self._post(self.updates, "getUpdates", fields, read_timeout=read_timeout)

    async def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: InlineKeyboardMarkup | None = None,
        message_thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> int:
        """The sent message's id."""
        fields: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if parse_mode is not None:
            fields["parse_mode"] = parse_mode
        if reply_markup is not None:
            fields["reply_markup"] = reply_markup.to_dict()
        if message_thread_id is not None:
            fields["message_thread_id"] = message_thread_id
        if reply_to is not None:
            fields["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        message = await self._post(self.calls, "sendMessage", fields)
        return message["message_id"]

    async def answer_callback_query(self, query_id: str, text: str | None = None) -> None:
        fields: dict[str, Any] = {"callback_query_id": query_id}
        if text is not None:
            fields.update(text=text, show_alert=True)
        await self._post(self.calls, "answerCallbackQuery", fields)

    async def _post(
        self, request: BaseRequest, method: str, fields: dict[str, Any], **timeouts: float
    ) -> Any:
        # Values are sent as form fields, each a string: JSON for lists and objects, as
        # RequestParameter.json_value would write them, but by orjson.
        parameters = [
            RequestParameter(name, value if isinstance(value, str) else _json(value), None)
            for name, value in fields.items()
        ]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("Calling Bot API endpoint `%s` with parameters `%s`", method, fields)
        result = await request.post(
            f"{self.base_url}/{method}", request_data=RequestData(parameters), **timeouts
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "Call to Bot API endpoint `%s` finished with return value `%s`", method, result
            )
        return result


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
