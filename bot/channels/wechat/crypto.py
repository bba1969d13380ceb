"""What the hotline needs to trust a WeChat callback and to answer it in safe mode: the SHA-1
signatures, and the AES-256-CBC of the Encrypt field (WeChat's "message encryption and
decryption" technical plan).

AES-CBC without a MAC can be tampered with unseen (a flipped ciphertext bit flips the same bit
of the next block's plaintext), so the ciphertext's integrity rests on `msg_signature`, which
only a holder of the Token can make: a callback checks it before it decrypts. The length and
AppID checks in `decrypt` then refuse what is damaged or meant for another account.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.channels.wechat.callback_xml import reply_xml
from bot.channels.wechat.refusals import CallbackRefused

ENCODING_AES_KEY_SETTING = "WECHAT_ENCODING_AES_KEY"
# WeChat's rule: EncodingAESKey is 43 characters from a-z, A-Z and 0-9; AESKey is its
# base64 decoding with one "=" appended, 32 bytes (AES-256).
ENCODING_AES_KEY_LENGTH = 43
AES_KEY_BYTES = 32
_ENCODING_AES_KEY = re.compile(r"[A-Za-z0-9]{43}\Z")
# WeChat's PKCS#7 uses K = 32 (the key's length), not AES's 16-byte block, so the
# `cryptography` padding classes (which pad to the cipher's block) do not fit: done by hand.
PAD_BLOCK = 32
AES_BLOCK = 16  # the cipher's own block: a ciphertext is a whole number of them
RANDOM_BYTES = 16  # WeChat's layout: random(16) + msg_len(4, big-endian) + msg + AppID
LENGTH_BYTES = 4


def signature(token: str, *parts: str) -> str:
    """WeChat's signature: SHA-1 hex of the token and the parts sorted as strings and joined
    (URL verification and every callback: token, timestamp, nonce; safe mode's msg_signature
    adds the Encrypt field)."""
    return hashlib.sha1("".join(sorted((token, *parts))).encode()).hexdigest()


def signature_matches(expected: str, token: str, *parts: str) -> bool:
    """Whether `expected` (from the query string) is the signature of the parts, compared in
    constant time so that a forger cannot find it one character at a time."""
    return hmac.compare_digest(expected.encode(), signature(token, *parts).encode())


def fresh(timestamp: str, now: float, window: float = 300) -> bool:
    """Whether the callback's (signed) timestamp is within `window` seconds of `now`, either
    way: a captured request replayed later is refused. Anything but decimal seconds is not."""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return False
    return abs(now - int(timestamp)) <= window


def aes_key(encoding_aes_key: str) -> bytes:
    """The AES key of an EncodingAESKey, or a ValueError naming the setting (which never
    shows the key: it is a secret)."""
    if len(encoding_aes_key) != ENCODING_AES_KEY_LENGTH:
        raise ValueError(
            f"{ENCODING_AES_KEY_SETTING} must be {ENCODING_AES_KEY_LENGTH} characters "
            f"(the EncodingAESKey of the account's server configuration), "
            f"not {len(encoding_aes_key)}"
        )
    if not _ENCODING_AES_KEY.match(encoding_aes_key):
        raise ValueError(f"{ENCODING_AES_KEY_SETTING} must be letters and digits only")
    key = base64.b64decode(encoding_aes_key + "=")
    if len(key) != AES_KEY_BYTES:  # cannot happen for 43 base64 characters; kept as the rule
        raise ValueError(f"{ENCODING_AES_KEY_SETTING} does not decode to {AES_KEY_BYTES} bytes")
    return key


class MessageCrypto:
    """Safe and compatible mode for one account: its Token, EncodingAESKey and AppID."""

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        self._token = token
        self._key = aes_key(encoding_aes_key)
        self._app_id = app_id.encode()

    def check_msg_signature(
        self, msg_signature: str, timestamp: str, nonce: str, encrypt: str
    ) -> bool:
        """Whether the query's msg_signature covers this Encrypt field: the check to make
        before `decrypt`."""
        return signature_matches(msg_signature, self._token, timestamp, nonce, encrypt)

    def decrypt(self, encrypt_b64: str) -> str:
        """The message XML inside an Encrypt field. Raises CallbackRefused when it is not
        base64, not whole AES blocks, badly padded, its length does not fit, the message is
        not UTF-8, or the AppID after it is not this account's."""
        try:
            ciphertext = base64.b64decode(encrypt_b64, validate=True)
        except (binascii.Error, ValueError):  # ValueError: a non-ASCII character
            raise CallbackRefused("Encrypt is not base64") from None
        if not ciphertext or len(ciphertext) % AES_BLOCK:
            raise CallbackRefused(f"Encrypt is {len(ciphertext)} bytes, not whole AES blocks")
        decryptor = self._cipher().decryptor()
        content = _unpad(decryptor.update(ciphertext) + decryptor.finalize())[RANDOM_BYTES:]
        if len(content) < LENGTH_BYTES:
            raise CallbackRefused("Encrypt is too short for a message length")
        length = int.from_bytes(content[:LENGTH_BYTES], "big")
        end = LENGTH_BYTES + length
        if end > len(content):
            raise CallbackRefused(f"Encrypt claims a {length}-byte message it does not hold")
        if content[end:] != self._app_id:
            raise CallbackRefused("Encrypt is for another AppID")
        try:
            return content[LENGTH_BYTES:end].decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackRefused("Encrypt's message is not UTF-8") from None

    def seal(self, xml: str) -> str:
        """The Encrypt field for `xml`: what `decrypt` reads back (and what WeChat sends)."""
        message = xml.encode("utf-8")
        plaintext = b"".join(
            (
                secrets.token_bytes(RANDOM_BYTES),
                len(message).to_bytes(LENGTH_BYTES, "big"),
                message,
                self._app_id,
            )
        )
        encryptor = self._cipher().encryptor()
        ciphertext = encryptor.update(_pad(plaintext)) + encryptor.finalize()
        return base64.b64encode(ciphertext).decode("ascii")

    def encrypt(self, xml: str, *, nonce: str, timestamp: int) -> str:
        """The whole safe-mode passive reply for the reply `xml`: its Encrypt, signed with our
        own timestamp and nonce (WeChat's passive reply layout in safe mode)."""
        encrypted = self.seal(xml)
        return reply_xml(
            {
                "Encrypt": encrypted,
                "MsgSignature": signature(self._token, str(timestamp), nonce, encrypted),
                "TimeStamp": timestamp,
                "Nonce": nonce,
            }
        )

    def _cipher(self) -> Cipher[modes.CBC]:
        # WeChat's rule: the IV is the AES key's first 16 bytes (the random prefix of every
        # plaintext does what a random IV would).
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:AES_BLOCK]))


def _pad(data: bytes) -> bytes:
    # PKCS#7 with K = 32: 1 to 32 bytes, each holding the count; a full block of 32 when the
    # data already ends on a boundary, so the last byte always says how many to drop.
    count = PAD_BLOCK - len(data) % PAD_BLOCK
    return data + bytes((count,)) * count


def _unpad(data: bytes) -> bytes:
    count = data[-1]
    if not 1 <= count <= PAD_BLOCK or count > len(data) or data[-count:] != bytes((count,)) * count:
        raise CallbackRefused("Encrypt's padding is not WeChat's PKCS#7")
    return data[:-count]
