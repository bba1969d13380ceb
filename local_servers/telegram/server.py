"""The HTTP side of the local Bot API: routes, parameters, Telegram's methods and errors."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Self

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from local_servers.listening import listen
from local_servers.telegram.chats import BotMessage, Chat, FakeForum, FakeUser
from local_servers.telegram.formatting import HtmlParseError, parse_html, strip_text, utf16_len
from local_servers.telegram.limits import (
    RateLimited,
    SendingQuotas,
    TelegramLimits,
    makes_a_message,
)
from local_servers.telegram.media import FakeFile, FileStore

CallListener = Callable[[dict, "dict | None"], None]

DEFAULT_TOKEN = "123456789:LOCAL-test-token-abcdefghijklmnopqrstuv"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
DOWNLOAD_LIMIT = 20 * 1024 * 1024
DEFAULT_TOPIC_COLOR = 7322096
BLOCKED = "Forbidden: bot was blocked by the user"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply "
    "markup are exactly the same as a current content and reply markup of the message"
)
# What a message can carry over into a copy or a forward.
CONTENT_KEYS = (
    "text",
    "entities",
    "caption",
    "caption_entities",
    "photo",
    "document",
    "voice",
    "video",
    "audio",
    "animation",
    "sticker",
    "location",
    "contact",
    "venue",
)
# python-telegram-bot JSON-encodes every non-string parameter but sends strings as they are, so
# a text like "42" or "true" must not be decoded.
STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "name",
        "callback_query_id",
        "file_id",
        "photo",
        "document",
        "voice",
        "video",
        "sticker",
        "url",
        "description",
        "short_description",
        "emoji",
        "title",
        "address",
        "action",
        "icon_custom_emoji_id",
        "secret_token",
        "inline_message_id",
        "query",
        "phone_number",
        "first_name",
        "last_name",
        "language_code",
        "ip_address",
    }
)
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # setWebhook's secret_token, Telegram's rule
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass
class RecordedRequest:
    method: str
    params: dict
    status: int
    at: float  # time.monotonic() when the request arrived


@dataclass
class WebhookAttempt:
    """One POST of an update to the bot's webhook, as Telegram makes them."""

    update_id: int
    status: int | None  # the HTTP status the bot answered; None: no answer (refused, timeout)
    error: str | None  # what getWebhookInfo's last_error_message says of it; None for a 200
    at: float  # time.monotonic() when it was sent


class ApiError(Exception):
    """A Telegram error envelope; raising it anywhere in a method answers the request."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def response(self) -> web.Response:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(body, status=self.status)


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


@dataclass
class _Fault:
    error: ApiError
    times: int
    chat_id: int | None


@dataclass(slots=True)
class _Queued:
    update_id: int
    update: dict
    kind: str  # "message", "callback_query", ...
    redelivered: bool = False  # must reach the bot once more, whatever offset it confirms


def _update_kind(update: dict) -> str:
    """ "message", "callback_query", ... the one field of an update besides update_id."""
    kind = next((key for key in update if key != "update_id"), None)
    if kind is None:
        raise ValueError(f"an update needs a message, callback_query, ...: {update!r}")
    return kind


def _chat_id(value: object) -> int | None:
    """A chat_id parameter as an int; JSON bodies may carry ids as strings."""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value if isinstance(value, int) else None


def _decode(name: str, value: str) -> object:
    if name in STRING_PARAMS or not value or value[0] not in '{["-0123456789tfn':
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


class LocalBotApi:
    """A Telegram Bot API server on localhost, for the real python-telegram-bot to talk to.

    Tests, the terminal demo and the benchmarks drive the unmodified bot through it: people
    are FakeUser and FakeForum objects, every API call is recorded, and faults (flood limits,
    outages, blocked users, a call stalled mid-flight) can be scripted per method. Telegram's
    sending limits (`limits`, local_servers/telegram/limits.py) answer 429 as Telegram would;
    `rate_limited` and `sent_at` show what they refused and let through. After setWebhook the
    updates are POSTed to the bot instead, one at a time and retried until it answers 200;
    `webhook_attempts` records every POST.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "hotline_bot",
        latency: float = 0.0,
        limits: TelegramLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        # Telegram's sending limits, Telegram's own numbers unless told otherwise; a test may
        # change them while the server runs. The clock (monotonic seconds) is injectable so a
        # test of the windows can move time by hand instead of sleeping.
        self.limits = limits if limits is not None else TelegramLimits()
        self.rate_limited: list[RateLimited] = []  # every call refused with 429 by a limit
        self._quotas = SendingQuotas(clock)
        # Seconds each call waits before it is answered: the round trip to Telegram's servers,
        # which loopback does not have (benchmarks compare bots under a realistic network).
        self.latency = latency
        self.host = host
        self.port = port
        self.bot_user: dict = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": "Hotline",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.files = FileStore()
        self.requests: list[RecordedRequest] = []
        self._calls: dict[str, list[dict]] = {}
        self._listeners: dict[str, list[CallListener]] = {}
        self._chats: dict[int, Chat] = {}
        self._users: dict[int, FakeUser] = {}
        self._pending: list[_Queued] = []
        self._last_update_id = 0
        self._poll: asyncio.Future[str] | None = None
        self._open_queries: dict[str, int] = {}  # callback query id -> who pressed
        self._faults: dict[str, list[_Fault]] = {}
        self._holds: dict[str, asyncio.Event] = {}
        self._stalled: dict[str, list[dict]] = {}
        self._stall_waiter: asyncio.Future[None] | None = None
        self._webhook_url = ""
        self._webhook_secret = ""
        self._webhook_allowed: set[str] = set()
        self._webhook_max_connections = 40
        self._webhook_error: tuple[int, str] | None = None  # (unix time, message) of the last
        self._webhook_news = asyncio.Event()  # an update was queued: the deliverer looks again
        self._deliverer: asyncio.Task[None] | None = None
        self.webhook_attempts: list[WebhookAttempt] = []
        # Telegram retries a failed delivery after a while, longer each time; here a short
        # while, doubling up to a second, so that a test waits out a restart quickly.
        self.webhook_retry_delay = 0.05
        self.webhook_max_retry_delay = 1.0
        self.webhook_timeout = 10.0  # seconds an answer may take before the POST counts failed
        self._commands: dict[tuple[str, str], list[dict]] = {}
        self._runner: web.AppRunner | None = None
        methods: dict[str, Callable[[dict], Awaitable[object]]] = {
            "getMe": self._get_me,
            "logOut": self._ok,
            "close": self._ok,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getUpdates": self._get_updates,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "copyMessage": self._copy_message,
            "forwardMessage": self._forward_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "sendVoice": self._send_voice,
            "sendVideo": self._send_video,
            "sendVenue": self._send_venue,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
            "getChat": self._get_chat,
            "createForumTopic": self._create_forum_topic,
            "editForumTopic": self._edit_forum_topic,
            "closeForumTopic": self._close_forum_topic,
            "reopenForumTopic": self._reopen_forum_topic,
            "deleteForumTopic": self._delete_forum_topic,
        }
        self._methods = {name.lower(): (name, handler) for name, handler in methods.items()}

    # --- lifecycle ---

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_call)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_download)
        self._runner, self.port = await listen(app, self.host, self.port)

    async def stop(self) -> None:
        """Stop serving; long polls and held calls end first so shutdown does not wait."""
        if self._poll is not None and not self._poll.done():
            self._poll.set_result("stopped")
        await self._stop_delivering()
        for method in list(self._holds):
            self.release(method)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- people and chats ---

    def user(
        self,
        user_id: int,
        first_name: str = "Worker",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh-hans",
    ) -> FakeUser:
        if user_id in self._users:
            return self._users[user_id]
        user = {"id": user_id, "is_bot": False, "first_name": first_name}
        for key, value in (
            ("last_name", last_name),
            ("username", username),
            ("language_code", language_code),
        ):
            if value is not None:
                user[key] = value
        person = self._users[user_id] = FakeUser(self, user)
        self._chats[user_id] = person
        return person

    def forum(self, chat_id: int, title: str = "Staff") -> FakeForum:
        existing = self._chats.get(chat_id)
        if isinstance(existing, FakeForum):
            return existing
        forum = FakeForum(self, chat_id, title)
        self._chats[chat_id] = forum
        return forum

    # --- updates ---

    def number_updates_after(self, update_id: int) -> None:
        """Telegram numbers a bot's updates on across its restarts; a fresh server starts at 1.
        A bot that kept its database (the demo's) has this server continue after what it
        stored, or it would take the new updates for ones it has handled."""
        self._last_update_id = max(self._last_update_id, update_id)

    def push_update(self, update: dict) -> int:
        """Queue an update for the bot's next getUpdates, as Telegram does when someone acts."""
        kind = _update_kind(update)
        if "update_id" not in update:
            self._last_update_id += 1
            update["update_id"] = self._last_update_id
        else:
            self._last_update_id = max(self._last_update_id, update["update_id"])
        if kind == "callback_query":
            self._open_queries[update[kind]["id"]] = update[kind]["from"]["id"]
        self._pending.append(_Queued(update["update_id"], update, kind))
        self._wake_poll("update")
        self._webhook_news.set()
        return update["update_id"]

    def redeliver(self, update: dict) -> None:
        """Queue an update again under its old update_id, as Telegram does when unsure the bot
        got it; it reaches the bot once even if the bot has already confirmed past it."""
        entry = _Queued(update["update_id"], update, _update_kind(update), redelivered=True)
        bisect.insort(self._pending, entry, key=lambda queued: queued.update_id)
        self._wake_poll("update")
        self._webhook_news.set()

    @property
    def sent_at(self) -> dict[int, list[float]]:
        """Per chat id, the clock's time of every message the limits let through, in order:
        enough to check "never more than 20 in any 60 s" or to compute the rate achieved."""
        return self._quotas.sent_at

    @property
    def pending_updates(self) -> int:
        return len(self._pending)

    @property
    def polling(self) -> bool:
        """Whether a getUpdates long poll is waiting, i.e. the bot has caught up and is idle."""
        return self._poll is not None and not self._poll.done()

    def _wake_poll(self, reason: str) -> None:
        if self._poll is not None and not self._poll.done():
            self._poll.set_result(reason)

    def _confirm(self, offset: object) -> None:
        if not isinstance(offset, int) or offset == 0:
            return
        if offset < 0:
            del self._pending[: max(len(self._pending) + offset, 0)]
            return
        confirmed = 0
        kept = []
        for queued in self._pending:
            if queued.update_id >= offset:
                break
            confirmed += 1
            if queued.redelivered:
                kept.append(queued)
        self._pending[:confirmed] = kept

    def _take(self, limit: int, allowed: set[str]) -> list[dict]:
        batch = []
        for queued in self._pending:
            if len(batch) == limit:
                break
            if not allowed or queued.kind in allowed:
                queued.redelivered = False
                batch.append(queued.update)
        return batch

    # --- recording ---

    def calls(self, method: str) -> list[dict]:
        return list(self._calls.get(method.lower(), ()))

    def on_call(self, method: str, callback: CallListener) -> None:
        """Run `callback(params, result)` after each successful call of `method` ("*": all), so
        benchmarks react to replies without polling. Its exceptions fail that HTTP request."""
        self._listeners.setdefault(method.lower(), []).append(callback)

    def _record(self, method: str, params: dict, status: int, at: float) -> None:
        self.requests.append(RecordedRequest(method, params, status, at))
        self._calls.setdefault(method.lower(), []).append(params)

    # --- scripted faults ---

    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next `times` calls of `method` (to `chat_id` only, if given) get Telegram's
        error instead of running: flood limits, outages and refusals the bot must survive."""
        if status == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            if status == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            elif status == 403:
                description = BLOCKED
            else:
                description = HTTPStatus(status).phrase
        error = ApiError(status, description, retry_after)
        self._faults.setdefault(method.lower(), []).append(_Fault(error, times, chat_id))

    def hold(self, method: str) -> None:
        """Stall every call of `method` until release(): freezes the bot mid-conversation so a
        test can act at that exact moment (a second message, a restart, a timeout)."""
        self._holds.setdefault(method.lower(), asyncio.Event())

    def release(self, method: str) -> None:
        gate = self._holds.pop(method.lower(), None)
        if gate is not None:
            gate.set()

    def held(self, method: str) -> list[dict]:
        """Params of the calls of `method` stalled by hold() right now."""
        return list(self._stalled.get(method.lower(), ()))

    async def until_held(self, method: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
        """Wait until `count` calls of a held method are stalled: the bot is frozen there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._stalled.get(method.lower(), ())) < count:
            if self._stall_waiter is None:
                self._stall_waiter = loop.create_future()
            done, _ = await asyncio.wait({self._stall_waiter}, timeout=deadline - loop.time())
            if not done:
                raise TimeoutError(
                    f"{self.held(method)!r}: fewer than {count} held {method} "
                    f"call(s) after {timeout}s"
                )
        return self.held(method)

    async def _pass_gate(self, key: str, params: dict) -> None:
        gate = self._holds.get(key)
        if gate is None:
            return
        stalled = self._stalled.setdefault(key, [])
        stalled.append(params)
        if self._stall_waiter is not None:
            self._stall_waiter.set_result(None)
            self._stall_waiter = None
        try:
            await gate.wait()
        finally:
            stalled.remove(params)

    def _scripted_fault(self, key: str, params: dict) -> ApiError | None:
        for fault in self._faults.get(key, ()):
            if fault.chat_id is None or fault.chat_id == params.get("chat_id"):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults[key].remove(fault)
                return fault.error
        return None

    # --- sending limits ---

    async def _within_limits(
        self, method: str, params: dict, handler: Callable[[dict], Awaitable[object]]
    ) -> object:
        """Run a call that posts a message only if Telegram's limits let it through now;
        otherwise answer 429 as Telegram does, having created nothing."""
        chat = self._chats.get(_chat_id(params.get("chat_id")))  # type: ignore[arg-type]
        if chat is None or not makes_a_message(method):
            return await handler(params)  # an unknown chat gets its 400 from the method
        private = chat.chat["type"] == "private"
        refused = self._quotas.take(self.limits, chat.id, private)
        if refused is not None:
            rule, retry_after = refused
            self.rate_limited.append(RateLimited(method, chat.id, rule, retry_after))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        try:
            return await handler(params)
        except Exception:
            self._quotas.give_back(self.limits, chat.id, private)  # refused otherwise: not sent
            raise

    # --- HTTP ---

    async def _handle_call(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        name = request.match_info["method"]
        params = await self._read_params(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        entry = self._methods.get(name.lower())
        if request.match_info["token"] != self.token:
            error = ApiError(401, "Unauthorized")
        elif entry is None:
            error = ApiError(404, "Not Found")
        else:
            method, handler = entry
            try:
                await self._pass_gate(name.lower(), params)
                fault = self._scripted_fault(name.lower(), params)
                if fault is not None:
                    raise fault
                result = await self._within_limits(method, params, handler)
            except ApiError as exc:
                error = exc
            else:
                self._record(method, params, 200, arrived)
                self._notify(method, params, result)
                return web.json_response({"ok": True, "result": result})
        self._record(entry[0] if entry else name, params, error.status, arrived)
        return error.response()

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        file = self.files.at(request.match_info["path"])
        if request.match_info["token"] != self.token or file is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=file.read(), content_type="application/octet-stream")

    async def _read_params(self, request: web.Request) -> dict:
        """Parameters as the Bot API accepts them: query string, form, multipart or JSON."""
        params: dict = {key: _decode(key, value) for key, value in request.query.items()}
        if not request.body_exists:
            return params
        if request.content_type == "application/json":
            params.update(await request.json())
            return params
        uploads: dict[str, FakeFile] = {}
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                uploads[key] = self.files.upload(
                    value.file.read(), value.filename, value.content_type
                )
                params.setdefault(key, uploads[key].file_id)
            else:
                params[key] = _decode(key, value)
        for key, value in params.items():  # files sent as "attach://<part name>"
            if isinstance(value, str) and value.startswith("attach://"):
                attached = uploads.get(value.removeprefix("attach://"))
                if attached is not None:
                    params[key] = attached.file_id
        return params

    def _notify(self, method: str, params: dict, result: object) -> None:
        if not self._listeners:
            return
        for key in (method.lower(), "*"):
            for listener in self._listeners.get(key, ()):
                listener(params, result if isinstance(result, dict) else None)

    # --- shared checks ---

    def _chat(self, chat_id: object) -> Chat:
        if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
            chat_id = int(chat_id)  # JSON bodies may carry ids as strings
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def _writable(self, chat_id: object) -> Chat:
        chat = self._chat(chat_id)
        if isinstance(chat, FakeUser) and chat.blocked:
            raise ApiError(403, BLOCKED)
        return chat

    def _destination(self, params: dict) -> tuple[Chat, int | None]:
        """The chat and forum topic a new message goes to."""
        if params.get("chat_id") in (None, ""):
            raise bad_request("chat_id is empty")
        chat = self._writable(params["chat_id"])
        thread_id = params.get("message_thread_id")
        if not isinstance(chat, FakeForum) or not thread_id:
            return chat, None
        topic = chat.topics.get(thread_id)
        if topic is None:
            raise bad_request("message thread not found")
        if topic["closed"]:
            raise bad_request("TOPIC_CLOSED")
        return chat, thread_id

    @staticmethod
    def _reply_to(chat: Chat, params: dict) -> int | None:
        reply = params.get("reply_parameters") or {}
        if not reply and params.get("reply_to_message_id"):
            reply = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply"),
            }
        if reply.get("message_id") is None or reply.get("chat_id") not in (None, chat.id):
            return None
        if chat.message(reply["message_id"]) is None:
            if reply.get("allow_sending_without_reply"):
                return None
            raise bad_request("message to be replied not found")
        return reply["message_id"]

    @staticmethod
    def _formatted(params: dict, key: str, limit: int) -> tuple[str, list[dict]]:
        """Text or caption as Telegram stores it: parsed, trimmed and length-checked."""
        raw = params.get(key)
        if raw is None:
            return "", []
        raw = str(raw)
        mode = (params.get("parse_mode") or "").lower()
        if mode == "html":
            try:
                plain, entities = parse_html(raw)
            except HtmlParseError as exc:
                raise bad_request(f"can't parse entities: {exc}") from None
        elif mode in ("", "markdown", "markdownv2"):  # Markdown is passed through unchecked
            entities_key = "entities" if key == "text" else "caption_entities"
            plain, entities = raw, list(params.get(entities_key) or [])
        else:
            raise bad_request("unsupported parse_mode")
        plain, entities = strip_text(plain, entities)
        # Telegram counts what is left after parsing, in UTF-16 code units like its entities
        # (an emoji outside the BMP counts two).
        if utf16_len(plain) > limit:
            raise bad_request(
                "message is too long" if key == "text" else "message caption is too long"
            )
        return plain, entities

    def _text(self, params: dict) -> dict:
        text, entities = self._formatted(params, "text", TEXT_LIMIT)
        if not text:
            raise bad_request("message text is empty")
        return {"text": text, "entities": entities} if entities else {"text": text}

    def _caption(self, params: dict) -> dict:
        caption, entities = self._formatted(params, "caption", CAPTION_LIMIT)
        content: dict = {"caption": caption} if caption else {}
        if caption and entities:
            content["caption_entities"] = entities
        return content

    @staticmethod
    def _markup(params: dict) -> dict | None:
        """The reply_markup, checked like Telegram checks inline keyboards."""
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard") or ():
            for button in row:
                if not button.get("text"):
                    raise bad_request("BUTTON_TEXT_INVALID")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")
                if set(button) == {"text"}:
                    raise bad_request(
                        "can't parse inline keyboard button: Text buttons are "
                        "unallowed in the inline keyboard"
                    )
        return markup

    def _post(
        self,
        chat: Chat,
        thread_id: int | None,
        params: dict,
        content: dict,
        *,
        text: str | None,
        parse_mode: str | None,
        copied_from: tuple[int, int] | None = None,
    ) -> dict:
        """Deliver a bot message: what all sending methods share once the content is checked."""
        markup = self._markup(params)
        reply_to = self._reply_to(chat, params)
        if markup and "inline_keyboard" in markup:
            content["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        message = chat.compose(self.bot_user, content, thread_id=thread_id, reply_to=reply_to)
        chat.add_bot_message(BotMessage.of(message, text, parse_mode, markup, copied_from))
        return message

    def _media(self, kind: str, params: dict) -> object:
        """The media object for a file the bot sends by file_id, URL or upload."""
        value = params.get(kind)
        if not value:
            raise bad_request(f"there is no {kind} in the request")
        if str(value).startswith(("http://", "https://")):
            file = self.files.from_url()
        else:
            file = self.files.get(str(value))
        if file is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        if file.kind is None:
            self.files.assign(file, kind, duration=params.get("duration"))
        elif file.kind != kind:
            raise bad_request(f"can't use file of type {file.kind.title()} as {kind.title()}")
        return [file.meta] if kind == "photo" else file.meta

    def _find_bot_message(self, params: dict) -> tuple[Chat, BotMessage]:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the local Bot API")
        chat = self._writable(params.get("chat_id"))
        found = chat.bot_message(params.get("message_id"))
        if found is None or found.deleted:
            if chat.message(params.get("message_id")) is not None:
                raise bad_request("message can't be edited")
            raise bad_request("message to edit not found")
        return chat, found

    def _edit(
        self,
        chat: Chat,
        found: BotMessage,
        changes: dict,
        markup: dict | None,
        text: str | None,
        parse_mode: str | None,
    ) -> dict:
        """Telegram drops an inline keyboard that an edit does not repeat."""
        edited = {
            key: value
            for key, value in found.raw.items()
            if key not in changes and key != "reply_markup"
        }
        edited.update((key, value) for key, value in changes.items() if value)
        if markup and "inline_keyboard" in markup:
            edited["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
        if all(
            edited.get(key) == found.raw.get(key) for key in ("text", "entities", "reply_markup")
        ):
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        edited["edit_date"] = int(time.time())
        chat.replace(edited)
        found.apply_edit(edited, text, parse_mode)
        chat.wake()
        return edited

    def _forum_topic(self, params: dict) -> tuple[FakeForum, int, dict]:
        chat = self._chat(params.get("chat_id"))
        if not isinstance(chat, FakeForum):
            raise bad_request("the chat is not a forum")
        thread_id = params.get("message_thread_id")
        topic = chat.topics.get(thread_id)  # type: ignore[arg-type]
        if topic is None:
            raise bad_request("TOPIC_ID_INVALID")
        return chat, thread_id, topic  # type: ignore[return-value]

    # --- the methods ---

    async def _ok(self, params: dict) -> bool:
        return True

    async def _get_me(self, params: dict) -> dict:
        return self.bot_user

    async def _set_webhook(self, params: dict) -> bool:
        """Telegram's checks, then delivery by POST starts (or goes on, to the new address
        with the new secret: what waits is kept unless drop_pending_updates). The local Bot
        API server takes http too, and any port; Telegram itself wants https on 443, 80, 88
        or 8443."""
        url = str(params.get("url") or "")
        if not url:
            return await self._delete_webhook(params)
        if not url.startswith(("https://", "http://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = str(params.get("secret_token") or "")
        if secret and not _SECRET_TOKEN.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        connections = params.get("max_connections") or 40
        if not isinstance(connections, int) or not 1 <= connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        if params.get("drop_pending_updates"):
            self._pending.clear()
        if url != self._webhook_url:
            self._webhook_error = None
        self._webhook_url, self._webhook_secret = url, secret
        self._webhook_max_connections = connections
        if "allowed_updates" in params:  # not given: the previous setting stays (Telegram's)
            self._webhook_allowed = set(params.get("allowed_updates") or ())
        if self._deliverer is None or self._deliverer.done():
            self._deliverer = asyncio.create_task(self._deliver(), name="webhook-delivery")
        self._webhook_news.set()
        return True

    async def _delete_webhook(self, params: dict) -> bool:
        """Delivery stops after the POST under way; getUpdates works again."""
        self._webhook_url = self._webhook_secret = ""
        self._webhook_error = None
        self._webhook_news.set()  # the deliverer sees there is no address and ends
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _get_webhook_info(self, params: dict) -> dict:
        info: dict[str, Any] = {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self._webhook_url:
            info["max_connections"] = self._webhook_max_connections
            if self._webhook_allowed:
                info["allowed_updates"] = sorted(self._webhook_allowed)
        if self._webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    @property
    def webhook_url(self) -> str:
        """The address updates are POSTed to ("" while the bot polls)."""
        return self._webhook_url

    async def _deliver(self) -> None:
        """POSTs the waiting updates to the webhook in order, one at a time, as Telegram does
        for a bot (roughly: it may run up to max_connections at once; one keeps a test's
        order plain). An update leaves the queue only when the bot answered 200; anything
        else (another status, a refused connection, a timeout) is retried after a back-off
        that doubles, and nothing after it goes first."""
        failures = 0
        async with ClientSession(timeout=ClientTimeout(total=self.webhook_timeout)) as client:
            while self._webhook_url:
                queued = self._next_for_webhook()
                if queued is None:
                    self._webhook_news.clear()
                    await self._webhook_news.wait()
                    continue
                attempt = await self._post_update(client, queued)
                self.webhook_attempts.append(attempt)
                if attempt.status == 200:
                    failures = 0
                    self._drop_queued(queued)
                    continue
                failures += 1
                self._webhook_error = (int(time.time()), attempt.error or "")
                delay = self.webhook_retry_delay * 2 ** min(failures - 1, 10)
                self._webhook_news.clear()
                with contextlib.suppress(TimeoutError):  # a setWebhook cuts the wait short
                    await asyncio.wait_for(
                        self._webhook_news.wait(), min(delay, self.webhook_max_retry_delay)
                    )

    def _next_for_webhook(self) -> _Queued | None:
        """The oldest waiting update. Kinds the bot did not ask for are dropped: Telegram
        does not keep them for a webhook."""
        while self._pending:
            queued = self._pending[0]
            if not self._webhook_allowed or queued.kind in self._webhook_allowed:
                return queued
            del self._pending[0]
        return None

    def _drop_queued(self, queued: _Queued) -> None:
        """Removes this very entry (a deleteWebhook may have emptied the queue meanwhile)."""
        for index, entry in enumerate(self._pending):
            if entry is queued:
                del self._pending[index]
                return

    async def _post_update(self, client: ClientSession, queued: _Queued) -> WebhookAttempt:
        headers = {"Content-Type": "application/json"}
        if self._webhook_secret:
            headers[SECRET_HEADER] = self._webhook_secret
        sent = time.monotonic()
        queued.redelivered = False
        try:
            async with client.post(
                self._webhook_url, data=json.dumps(queued.update), headers=headers
            ) as response:
                await response.read()
                status = response.status
        except (ClientError, TimeoutError, OSError) as error:
            message = str(error) or type(error).__name__
            return WebhookAttempt(queued.update_id, None, message, sent)
        if status == 200:
            return WebhookAttempt(queued.update_id, 200, None, sent)
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        error = f"Wrong response from the webhook: {status} {reason}".rstrip()
        return WebhookAttempt(queued.update_id, status, error, sent)

    async def _stop_delivering(self) -> None:
        if self._deliverer is not None and not self._deliverer.done():
            self._deliverer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._deliverer
        self._deliverer = None

    async def _get_updates(self, params: dict) -> list[dict]:
        self._wake_poll("conflict")  # Telegram ends an older long poll when a new one comes
        if self._webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        self._confirm(params.get("offset"))
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        allowed = set(params.get("allowed_updates") or ())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(params.get("timeout") or 0)
        while True:
            batch = self._take(limit, allowed)
            remaining = deadline - loop.time()
            if batch or remaining <= 0:
                return batch
            poll = self._poll = loop.create_future()
            done, _ = await asyncio.wait({poll}, timeout=remaining)
            if self._poll is poll:
                self._poll = None
            if done and poll.result() == "conflict":
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure "
                    "that only one bot instance is running",
                )
            if done and poll.result() == "stopped":
                return []

    async def _set_my_commands(self, params: dict) -> bool:
        commands = params.get("commands") or []
        for command in commands:
            if not _COMMAND_NAME.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("command description must be non-empty")
        self._commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: dict) -> list[dict]:
        return self._commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: dict) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    @staticmethod
    def _commands_key(params: dict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _send_message(self, params: dict) -> dict:
        chat, thread_id = self._destination(params)
        return self._post(
            chat,
            thread_id,
            params,
            self._text(params),
            text=str(params["text"]),
            parse_mode=params.get("parse_mode"),
        )

    async def _send_media(self, kind: str, params: dict) -> dict:
        chat, thread_id = self._destination(params)
        content = {kind: self._media(kind, params), **self._caption(params)}
        return self._post(
            chat,
            thread_id,
            params,
            content,
            text=params.get("caption"),
            parse_mode=params.get("parse_mode"),
        )

    async def _send_photo(self, params: dict) -> dict:
        return await self._send_media("photo", params)

    async def _send_document(self, params: dict) -> dict:
        return await self._send_media("document", params)

    async def _send_voice(self, params: dict) -> dict:
        return await self._send_media("voice", params)

    async def _send_video(self, params: dict) -> dict:
        return await self._send_media("video", params)

    async def _send_venue(self, params: dict) -> dict:
        """A map pin with a title and an address; Telegram's Message carries it as both a
        venue and its location."""
        chat, thread_id = self._destination(params)
        try:
            latitude, longitude = float(params["latitude"]), float(params["longitude"])
        except (KeyError, TypeError, ValueError):
            raise bad_request("wrong latitude or longitude specified") from None
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise bad_request("wrong latitude or longitude specified")
        for name in ("title", "address"):
            if not str(params.get(name) or "").strip():
                raise bad_request(f"venue {name} is empty")
        location = {"latitude": latitude, "longitude": longitude}
        venue = {"location": location, "title": params["title"], "address": params["address"]}
        content = {"venue": venue, "location": location}
        return self._post(chat, thread_id, params, content, text=None, parse_mode=None)

    async def _send_chat_action(self, params: dict) -> bool:
        self._destination(params)
        return True

    async def _edit_message_text(self, params: dict) -> dict:
        chat, found = self._find_bot_message(params)
        if "text" not in found.raw:
            raise bad_request("there is no text in the message to edit")
        content = self._text(params)
        changes = {"text": content["text"], "entities": content.get("entities")}
        return self._edit(
            chat,
            found,
            changes,
            self._markup(params),
            str(params["text"]),
            params.get("parse_mode"),
        )

    async def _edit_message_reply_markup(self, params: dict) -> dict:
        chat, found = self._find_bot_message(params)
        return self._edit(chat, found, {}, self._markup(params), found.text, found.parse_mode)

    async def _delete_message(self, params: dict) -> bool:
        chat = self._chat(params.get("chat_id"))
        if not chat.forget(params.get("message_id")):  # type: ignore[arg-type]
            raise bad_request("message to delete not found")
        return True

    async def _answer_callback_query(self, params: dict) -> bool:
        presser = self._open_queries.pop(str(params.get("callback_query_id")), None)
        if presser is None:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if presser in self._users:
            self._users[presser].callback_answers.append(params)
        return True

    def _original(self, params: dict, verb: str) -> tuple[tuple[int, int], dict, dict]:
        """The message to copy or forward: its (chat_id, message_id), itself, its content."""
        chat = self._chat(params.get("from_chat_id"))
        message = chat.message(params.get("message_id"))
        if message is None:
            raise bad_request(f"message to {verb} not found")
        content = {key: message[key] for key in CONTENT_KEYS if key in message}
        if not content:
            raise bad_request(
                "message can't be copied" if verb == "copy" else "message can't be forwarded"
            )
        return (chat.id, message["message_id"]), message, content

    async def _copy_message(self, params: dict) -> dict:
        source, _, content = self._original(params, "copy")
        chat, thread_id = self._destination(params)
        text, parse_mode = content.get("text", content.get("caption")), None
        if "caption" in params and "text" not in content:
            content.pop("caption", None)
            content.pop("caption_entities", None)
            content.update(self._caption(params))
            text, parse_mode = params["caption"], params.get("parse_mode")
        message = self._post(
            chat, thread_id, params, content, text=text, parse_mode=parse_mode, copied_from=source
        )
        return {"message_id": message["message_id"]}

    async def _forward_message(self, params: dict) -> dict:
        source, original, content = self._original(params, "forward")
        chat, thread_id = self._destination(params)
        content["forward_origin"] = {
            "type": "user",
            "date": original["date"],
            "sender_user": original["from"],
        }
        text = content.get("text", content.get("caption"))
        return self._post(
            chat, thread_id, params, content, text=text, parse_mode=None, copied_from=source
        )

    async def _get_file(self, params: dict) -> dict:
        file = self.files.get(str(params.get("file_id")))
        if file is None or file.kind is None:
            raise bad_request("wrong file_id or the file is temporarily unavailable")
        if file.size > DOWNLOAD_LIMIT:
            raise bad_request("file is too big")
        return {
            "file_id": file.file_id,
            "file_unique_id": file.file_unique_id,
            "file_size": file.size,
            "file_path": file.path,
        }

    async def _get_chat(self, params: dict) -> dict:
        chat = self._chat(params.get("chat_id"))
        gifts = dict.fromkeys(
            (
                "unlimited_gifts",
                "limited_gifts",
                "unique_gifts",
                "premium_subscription",
                "gifts_from_channels",
            ),
            False,
        )
        return {
            **chat.chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": gifts,
        }

    async def _create_forum_topic(self, params: dict) -> dict:
        chat = self._chat(params.get("chat_id"))
        if not isinstance(chat, FakeForum):
            raise bad_request("the chat is not a forum")
        name = str(params.get("name") or "")
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_NAME_INVALID")
        color = params.get("icon_color") or DEFAULT_TOPIC_COLOR
        emoji = params.get("icon_custom_emoji_id")
        thread_id = chat.open_topic(self.bot_user, name, color, emoji)
        # The service message reaches the bot as an update, though the bot sent it: the Bot
        # API skips a bot's own messages except a few service messages, topic creation among
        # them (telegram-bot-api, Client::need_skip_update_message).
        self.push_update({"message": dict(chat.message(thread_id))})
        topic = {"message_thread_id": thread_id, "name": name, "icon_color": color}
        if emoji:
            topic["icon_custom_emoji_id"] = emoji
        return topic

    async def _edit_forum_topic(self, params: dict) -> bool:
        _, _, topic = self._forum_topic(params)
        changes = {
            key: params[key]
            for key in ("name", "icon_custom_emoji_id")
            if params.get(key) is not None and params[key] != topic.get(key)
        }
        if not changes:
            raise bad_request("TOPIC_NOT_MODIFIED")
        if not 1 <= len(str(changes.get("name", "x"))) <= 128:
            raise bad_request("TOPIC_NAME_INVALID")
        topic.update(changes)
        topic["edits"].append(changes)
        return True

    async def _set_topic_closed(self, params: dict, closed: bool) -> bool:
        _, _, topic = self._forum_topic(params)
        if topic["closed"] == closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic["closed"] = closed
        return True

    async def _close_forum_topic(self, params: dict) -> bool:
        return await self._set_topic_closed(params, True)

    async def _reopen_forum_topic(self, params: dict) -> bool:
        return await self._set_topic_closed(params, False)

    async def _delete_forum_topic(self, params: dict) -> bool:
        forum, thread_id, _ = self._forum_topic(params)
        del forum.topics[thread_id]
        return True
