"""The one exception for a callback the hotline must not trust, shared by the signature and
AES checks (crypto) and the XML reader (callback_xml), so the callback answers every refusal
the same way and stores nothing."""

from __future__ import annotations


class CallbackRefused(Exception):
    """A callback body or field that is forged, damaged or not WeChat's. `reason` is for the
    log, never for the answer: a sender probing the endpoint learns nothing from it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
