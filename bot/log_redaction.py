"""Keeps secrets and people out of the logs.

The bot's token is in every Bot API URL, and python-telegram-bot and httpx print those URLs
(and exceptions carrying them) at DEBUG and INFO. `RedactingFilter`, put on the log handlers
by the CLI, masks the token, and anything shaped like one, in every record and traceback,
and the values PostgreSQL quotes in its error details. People are named in logs by
`person_tag`, a short keyed hash of their chat or user id: the same person gets the same tag
in one deployment, and the tag does not give the id back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re

MASK = "<token hidden>"
# "bot123456789:AAE…" in URLs, and a bare "123456789:AAE…" wherever else a token turns up.
_TOKEN_SHAPE = re.compile(r"(?:bot)?\d{5,}:[A-Za-z0-9_-]{20,}")
# PostgreSQL's own error details quote the values (hide_parameters cannot reach them):
# "Key (channel, external_id)=(telegram, 5102) already exists", "Failing row contains (…)".
_ROW_VALUES = re.compile(
    r"(Key \([^)\n]*\)=\()[^\n]*?(\) (?:already exists|is not present|is still))"
)
_FAILING_ROW = re.compile(r"(Failing row contains \()[^\n]*(\))")
_tag_key = os.urandom(16)


def redact(text: str, hidden: tuple[str, ...] = ()) -> str:
    """The text with the given secrets, anything shaped like a bot token and the values in
    PostgreSQL's error details masked."""
    for secret in hidden:
        if secret:
            text = text.replace(secret, MASK)
    text = _ROW_VALUES.sub(r"\1…\2", text)
    text = _FAILING_ROW.sub(r"\1…\2", text)
    return _TOKEN_SHAPE.sub(MASK, text)


class RedactingFilter(logging.Filter):
    """On a handler, so that it sees every record the handler writes, whichever logger made
    it: the message with its arguments, the traceback and the stack are redacted in place."""

    def __init__(self, *hidden: str) -> None:
        super().__init__()
        self.secrets = tuple(s for s in hidden if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: keep what can be shown
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def use_tag_key(key: str) -> None:
    """Derives the tags' key from a secret of the deployment (the bot token), so tags stay
    the same across restarts; without it they change with every process."""
    global _tag_key
    _tag_key = hashlib.sha256(f"person-tag:{key}".encode()).digest()


def person_tag(person_id: object) -> str:
    """How logs name a person (a worker's chat, a staff member's user id): e.g. "p3fa2c19d"."""
    digest = hashlib.blake2b(str(person_id).encode(), key=_tag_key, digest_size=4)
    return f"p{digest.hexdigest()}"
