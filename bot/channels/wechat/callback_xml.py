"""WeChat's callback XML both ways: the pushed message read as flat fields, the passive reply
written.

The body comes from the internet before anything in it is trusted (in plaintext mode the
signature does not even cover it), so it is read by defusedxml with DTDs forbidden: a DOCTYPE
is refused before any entity in it is declared, let alone expanded (billion laughs, external
entities). Nothing here checks signatures or decrypts: that is crypto's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeAlias
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from bot.channels.wechat.refusals import CallbackRefused

ROOT = "xml"  # every callback and every passive reply is one <xml> element
# The fields whose text the hotline reads (WeChat's "receiving standard messages" and
# "receiving event pushes" pages, plus safe mode's Encrypt). One of them holding elements is
# a forgery or damage and refused. Other elements with children are structures of pushes the
# hotline does not read (MASSSENDJOBFINISH's CopyrightCheckResult, the scancode and photo
# menu events' ScanCodeInfo, SendPicsInfo...): left out, because refusing a genuine push makes
# WeChat retry it three times for nothing.
TEXT_FIELDS = frozenset(
    {
        "ToUserName",
        "FromUserName",
        "CreateTime",
        "MsgType",
        "MsgId",
        "MsgID",  # spelled so in MASSSENDJOBFINISH and TEMPLATESENDJOBFINISH events
        "MsgDataId",
        "Idx",
        "Content",
        "PicUrl",
        "MediaId",
        "Format",
        "Recognition",
        "ThumbMediaId",
        "Location_X",
        "Location_Y",
        "Scale",
        "Label",
        "Title",
        "Description",
        "Url",
        "Event",
        "EventKey",
        "Ticket",
        "Latitude",
        "Longitude",
        "Precision",
        "Status",
        "Encrypt",
    }
)

ReplyValue: TypeAlias = "str | int | Mapping[str, ReplyValue]"

_ELEMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Characters XML 1.0 forbids even inside CDATA (its Char production): a reply holding one is
# not XML at all, and WeChat would drop the whole reply instead of one invisible character.
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CDATA_END = "]]>"


def parse_callback(body: bytes) -> dict[str, str]:
    """The <xml> element's children as field name -> text (CDATA read as text, values not
    stripped). Raises CallbackRefused for anything that is not one flat WeChat message."""
    try:
        root = SafeElementTree.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as error:  # a DOCTYPE, an entity, an external reference
        raise CallbackRefused(f"callback XML refused: {type(error).__name__}") from None
    except (ParseError, LookupError, ValueError) as error:
        # LookupError and ValueError: an XML declaration naming an encoding expat cannot read
        # (unknown, multi-byte other than UTF-8/16, or not a text codec at all).
        raise CallbackRefused(f"callback is not well-formed XML: {error}") from None
    if root.tag != ROOT:
        raise CallbackRefused(f"callback root is <{root.tag}>, not <{ROOT}>")
    fields: dict[str, str] = {}
    for child in root:
        if len(child):
            if child.tag in TEXT_FIELDS:
                raise CallbackRefused(f"callback field {child.tag} holds elements, not text")
            continue
        if child.tag in fields:
            # Two values for one field: whichever a reader took, another could take the other.
            raise CallbackRefused(f"callback field {child.tag} appears twice")
        fields[child.tag] = child.text or ""
    return fields


def reply_xml(fields: Mapping[str, ReplyValue]) -> str:
    """A passive reply (or the safe mode's envelope of one) in WeChat's layout: text in CDATA,
    ints as plain text, a mapping as a nested element (an image reply's <Image><MediaId>)."""
    return _element(ROOT, fields)


def _element(name: str, value: ReplyValue) -> str:
    if not _ELEMENT_NAME.match(name):
        raise ValueError(f"not an element name WeChat uses: {name!r}")
    if isinstance(value, Mapping):
        inner = "".join(_element(key, item) for key, item in value.items())
    elif isinstance(value, bool):  # an int to Python, but never a WeChat field's value
        raise TypeError(f"{name}: a bool is not a WeChat reply value")
    elif isinstance(value, int):
        inner = str(value)
    elif isinstance(value, str):
        inner = _cdata(value)
    else:
        raise TypeError(f"{name}: {type(value).__name__} is not a WeChat reply value")
    return f"<{name}>{inner}</{name}>"


def _cdata(text: str) -> str:
    # A CDATA section ends at the first "]]>", so one inside the text is split across two
    # sections: "]]" closes the first, ">" opens the second. A parser joins them back.
    text = _NOT_XML_CHAR.sub("", text)
    return "<![CDATA[" + text.replace(_CDATA_END, "]]]]><![CDATA[>") + "]]>"
