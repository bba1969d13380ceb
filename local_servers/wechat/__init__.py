"""A local stand-in for WeChat's Official Account platform, for the real bot to run against.

Over WeChat the hotline lives in rules the bot cannot see until it breaks them: a callback must
be answered within 5 seconds or WeChat sends it again, up to three times; a passive reply is
free but there is one per callback; every customer-service message counts against a quota (5
within 48 hours of the worker's message, 3 within a minute of a follow or a menu press); a
follower gets 4 mass messages a month; a second /cgi-bin/token call invalidates the first
process's token. Mocking our own HTTP client would test our guesses, so this package runs an
HTTP server that speaks WeChat's API with its JSON shapes and errcodes, and plays the WeChat
side of the callback: followers' messages and events POSTed, signed and (in safe or compatible
mode) encrypted, to the bot's callback URL, and the passive replies read back and checked.

Enforced: access tokens (token and stable_token) with expiry and invalidation (40001, 42001,
40014, 40125); customer-service sends (text, image, voice, msgmenu) within the quota (45015,
45047), to followers only (43004), text at most 2048 bytes (45002); media upload/get (types,
extensions, sizes); the custom menu (1-3 buttons, at most 5 sub-buttons, name/key/url byte
lengths); mass send by OpenID list (2-10000, clientmsgid deduplication 45065, 4 a month per
follower); an optional calls-per-second cap (45009). Every API call is recorded.

It is the server side on purpose: plain dicts, XML and JSON, nothing imported from bot/, and
its signing and encryption are its own, so that a mistake in the bot's is caught, not shared.
"""

from local_servers.wechat.callbacks import (
    CallbackDelivery,
    CallbackTry,
    Choice,
    FakeFollower,
    MessageCrypt,
    SeenMessage,
    WeChatCallbacks,
    random_encoding_aes_key,
    signature,
)
from local_servers.wechat.server import LocalWeChat, MassSend, RecordedRequest, StoredMedia

__all__ = [
    "CallbackDelivery",
    "CallbackTry",
    "Choice",
    "FakeFollower",
    "LocalWeChat",
    "MassSend",
    "MessageCrypt",
    "RecordedRequest",
    "SeenMessage",
    "StoredMedia",
    "WeChatCallbacks",
    "random_encoding_aes_key",
    "signature",
]
