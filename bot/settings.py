"""One validated settings object, read from the environment (and an optional .env) at start-up.

Nothing reads the environment at import time: `load_settings()` is called by the CLI, so a
missing or malformed setting stops start-up with one sentence instead of a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOKEN_PATTERN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{20,}$")
SUPPORTED_DATABASES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
LISTEN_PATTERN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/]+):(?P<port>\d{1,5})$")
DEFAULT_WEBHOOK_PORT = 8443
WECHAT_AES_KEY_PATTERN = re.compile(r"^[A-Za-z0-9]{43}$")
HEALTH_PATH = "/healthz"


S = TypeVar("S", bound="StorageSettings")


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one sentence for the operator."""


class StorageSettings(BaseSettings):
    """What the commands that do not talk to Telegram need (db upgrade, content check)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        "sqlite+aiosqlite:///hotline.db",
        validation_alias="DATABASE_URL",
        description="sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB",
    )
    content_dir: Path | None = Field(
        None,
        validation_alias="HOTLINE_CONTENT_DIR",
        description="a folder laid out like content/ to use instead of the packaged texts",
    )
    log_level: str = Field("INFO", validation_alias="HOTLINE_LOG_LEVEL")

    @field_validator("database_url")
    @classmethod
    def _database_url_shape(cls, value: str) -> str:
        if value.startswith("postgresql://"):
            return "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if not value.startswith(SUPPORTED_DATABASES):
            raise ValueError("must start with sqlite+aiosqlite:/// or postgresql+asyncpg://")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level_shape(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()


class WeChatSettings(StorageSettings):
    """A WeChat Official Account (服务号) beside Telegram: set WECHAT_APP_ID to turn it on.
    What `hotline wechat menu` needs, and `run` with the rest."""

    wechat_app_id: str | None = Field(
        None,
        validation_alias="WECHAT_APP_ID",
        description="the account's AppID (开发者ID); set, WeChat's callback is served at /wechat",
    )
    wechat_app_secret: SecretStr | None = Field(
        None, validation_alias="WECHAT_APP_SECRET", description="the account's AppSecret"
    )
    wechat_token: SecretStr | None = Field(
        None,
        validation_alias="WECHAT_TOKEN",
        description="the Token of the account's server configuration (服务器配置)",
    )
    wechat_encoding_aes_key: SecretStr | None = Field(
        None,
        validation_alias="WECHAT_ENCODING_AES_KEY",
        description="the EncodingAESKey (43 characters): set, the safe and compatible modes;"
        " unset, plaintext mode",
    )
    wechat_api_base_url: str = Field(
        "https://api.weixin.qq.com",
        validation_alias="WECHAT_API_BASE_URL",
        description="WeChat's API; tests and proxies point it elsewhere",
    )
    wechat_reply_budget: float = Field(
        3.0,
        ge=0,
        le=4.5,
        validation_alias="HOTLINE_WECHAT_REPLY_BUDGET",
        description="seconds a callback waits for the worker's turn to answer in its passive"
        " reply (WeChat waits 5); later replies go as customer-service messages",
    )

    @field_validator("wechat_app_id", "wechat_app_secret", "wechat_token", mode="before")
    @classmethod
    def _wechat_unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("wechat_encoding_aes_key", mode="before")
    @classmethod
    def _aes_key_shape(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not WECHAT_AES_KEY_PATTERN.match(value):
            raise ValueError("must be the 43 letters and digits of the account's EncodingAESKey")
        return value

    @property
    def wechat(self) -> bool:
        """Whether a WeChat account is configured (the rest is checked by check_wechat)."""
        return self.wechat_app_id is not None

    def check_wechat_credentials(self) -> None:
        missing = [
            name
            for name, value in (
                ("WECHAT_APP_ID", self.wechat_app_id),
                ("WECHAT_APP_SECRET", self.wechat_app_secret),
                ("WECHAT_TOKEN", self.wechat_token),
            )
            if value is None
        ]
        if missing:
            raise SettingsError(f"a WeChat account needs {', '.join(missing)} to be set.")


class Settings(WeChatSettings):
    """Everything `hotline run` needs."""

    telegram_bot_token: SecretStr | None = Field(
        None,
        validation_alias="TELEGRAM_BOT_TOKEN",
        description="the token @BotFather gave the bot (optional for a WeChat account alone)",
    )
    telegram_api_base_url: str = Field(
        "https://api.telegram.org/bot",
        validation_alias="TELEGRAM_API_BASE_URL",
        description="passed to python-telegram-bot's base_url as it is",
    )
    staff_chat_id: int | None = Field(
        None,
        validation_alias="HOTLINE_STAFF_CHAT_ID",
        description="the id of the staff forum supergroup (negative, e.g. -1001234567890)",
    )
    sla_minutes: int = Field(
        30,
        ge=1,
        validation_alias="HOTLINE_SLA_MINUTES",
        description="office-hours minutes a new ticket may wait unclaimed before a reminder",
    )
    max_sends_per_second: float = Field(
        30.0,
        gt=0,
        validation_alias="HOTLINE_MAX_SENDS_PER_SECOND",
        description="Telegram's overall limit for a bot; raise it only for a local Bot API server",
    )
    broadcast_per_second: float = Field(
        25.0,
        gt=0,
        validation_alias="HOTLINE_BROADCAST_PER_SECOND",
        description="bulk messages (broadcasts, job alerts) a second, below Telegram's ~30; "
        "raise it with HOTLINE_MAX_SENDS_PER_SECOND for paid broadcasts",
    )
    chat_burst: int = Field(
        5,
        ge=1,
        validation_alias="HOTLINE_CHAT_BURST",
        description="messages the bot sends into one private chat at once before pacing them",
    )
    chat_sends_per_second: float = Field(
        1.0,
        gt=0,
        validation_alias="HOTLINE_CHAT_SENDS_PER_SECOND",
        description="messages a second into one private chat after a burst (Telegram: about 1)",
    )
    flood_messages: int = Field(
        12,
        ge=3,
        validation_alias="HOTLINE_FLOOD_MESSAGES",
        description="messages a person may send within HOTLINE_FLOOD_SECONDS before replies pause",
    )
    flood_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias="HOTLINE_FLOOD_SECONDS",
        description="the window for HOTLINE_FLOOD_MESSAGES",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        validation_alias="HOTLINE_RETENTION_DAYS",
        description="days after a ticket ended before `hotline purge` erases its personal"
        " details (unset: `hotline purge` needs --closed-before)",
    )

    webhook_url: str | None = Field(
        None,
        validation_alias="HOTLINE_WEBHOOK_URL",
        description="the https address Telegram posts updates to, e.g. "
        "https://hotline.example.org/telegram (unset: long polling)",
    )
    listen: str | None = Field(
        None,
        validation_alias="HOTLINE_LISTEN",
        description="HOST:PORT of the HTTP server (the webhook, /healthz), e.g. 0.0.0.0:8443",
    )

    webhook_secret: SecretStr | None = Field(
        None,
        validation_alias="HOTLINE_WEBHOOK_SECRET",
        description="the webhook's secret token (A-Za-z0-9_-, up to 256); unset: a random one"
        " at each start. Set it when several separate processes share one webhook address"
        " (`hotline run --workers` shares one by itself)",
    )
    listen_shared: bool = Field(
        False,
        validation_alias="HOTLINE_LISTEN_SHARED",
        description="several processes listen on the same port (SO_REUSEPORT; set by"
        " `hotline run --workers`)",
    )

    def check_channels(self) -> None:
        """`run` needs Telegram, a WeChat account, or both."""
        if self.telegram_bot_token is None and not self.wechat:
            raise SettingsError(
                "The setting TELEGRAM_BOT_TOKEN is missing: set it to the token @BotFather gave"
                " the bot (or set WECHAT_APP_ID and the rest for a WeChat account alone)."
            )
        if self.telegram_bot_token is None and self.webhook_url:
            raise SettingsError("HOTLINE_WEBHOOK_URL is Telegram's: it needs TELEGRAM_BOT_TOKEN.")

    @property
    def secrets(self) -> list[str]:
        """What the logs must never show."""
        values = (self.telegram_bot_token, self.wechat_app_secret, self.wechat_token)
        return [value.get_secret_value() for value in values if value is not None]

    def check_wechat(self) -> None:
        """A WeChat account needs its credentials, and the HTTP server for /wechat."""
        self.check_wechat_credentials()
        if self.listen_address is None:
            raise SettingsError(
                "WeChat posts to /wechat on the hotline's HTTP server: set HOTLINE_LISTEN "
                "(or `hotline run --listen HOST:PORT`)."
            )

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("must be 1 to 256 of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("webhook_url", "listen", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value  # HOTLINE_WEBHOOK_URL= in a .env means "not set"

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url_shape(cls, value: str | None) -> str | None:
        return None if value is None else check_webhook_url(value)

    @field_validator("listen")
    @classmethod
    def _listen_shape(cls, value: str | None) -> str | None:
        return None if value is None else check_listen(value)

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """Where the HTTP server listens: HOTLINE_LISTEN, else 0.0.0.0:8443 with a webhook
        (one of the four ports Telegram posts to, and no privileged one), else nowhere."""
        if self.listen is None:
            return ("0.0.0.0", DEFAULT_WEBHOOK_PORT) if self.webhook_url else None
        host, _, port = self.listen.rpartition(":")
        return host.removeprefix("[").removesuffix("]"), int(port)

    @field_validator("telegram_bot_token", mode="before")
    @classmethod
    def _token_unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not TOKEN_PATTERN.match(value.get_secret_value()):
            raise ValueError("does not look like a bot token (digits, a colon, then letters)")
        return value

    @field_validator("telegram_api_base_url")
    @classmethod
    def _base_url_shape(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) address such as https://api.telegram.org/bot")
        return value

    @property
    def telegram_file_base_url(self) -> str:
        """The file-download address that goes with the API address (…/bot → …/file/bot)."""
        base = self.telegram_api_base_url
        head, sep, tail = base.rpartition("/bot")
        return f"{head}/file/bot{tail}" if sep else base.rstrip("/") + "/file/bot"


def check_webhook_url(value: str) -> str:
    """A webhook address Telegram will post to: https (Telegram's rule), or http on this
    machine only, for tests and a local Bot API server; the path is the route served."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https address such as https://hotline.example.org/telegram")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise ValueError("must be https (http only for 127.0.0.1 or localhost)")
    if parts.query or parts.fragment:
        raise ValueError("must be a path only, without ?query or #fragment")
    if parts.path.rstrip("/") == HEALTH_PATH:
        raise ValueError(f"must not be {HEALTH_PATH}, the health check's address")
    try:
        parts.port  # noqa: B018 - raises for a port that is no number or out of range
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    return value


def check_listen(value: str) -> str:
    """HOST:PORT to listen on: 0.0.0.0:8443, 127.0.0.1:8080, [::]:8443 (port 0: any free one)."""
    match = LISTEN_PATTERN.match(value)
    if match is None or int(match["port"]) > 65535:
        raise ValueError("must be HOST:PORT, such as 0.0.0.0:8443 or 127.0.0.1:8080")
    return value


def load_settings(model: type[S] = Settings, /, **overrides: object) -> S:
    """Reads the settings, turning pydantic's report into one sentence for the operator."""
    try:
        return model(**overrides)
    except ValidationError as error:
        raise SettingsError(_explain(error, model)) from None


def _explain(error: ValidationError, model: type[StorageSettings]) -> str:
    first = error.errors()[0]
    env_name = str(first["loc"][0]) if first["loc"] else "a setting"
    field = next(
        (f for n, f in model.model_fields.items() if env_name in (n, f.validation_alias)), None
    )
    env_name = (field.validation_alias if field else None) or env_name.upper()
    if first["type"] == "missing":
        hint = f": set it to {field.description}" if field and field.description else ""
        return f"The setting {env_name} is missing{hint}."
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"The setting {env_name} is malformed: {message}."
