"""WeChat's callback security, the bot's side: signatures, safe mode's AES, the XML both ways.

No server and no database: every test here is a few milliseconds of computation.
"""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.channels.wechat.callback_xml import parse_callback, reply_xml
from bot.channels.wechat.crypto import (
    MessageCrypto,
    aes_key,
    fresh,
    signature,
    signature_matches,
)
from bot.channels.wechat.refusals import CallbackRefused

# WeChat's own published sample for message encryption: Tencent's WXBizMsgCrypt sample code
# (Sample.py, "WXBizMsgCrypt 使用demo文件", jonyqin, 2014) from the sample-code download the
# Official Account documentation links on its "message encryption and decryption" pages
# (developers.weixin.qq.com/doc/offiaccount/Message_Management/
# Message_encryption_and_decryption_instructions.html). Found reproduced verbatim in public
# repositories, e.g. github.com/charlesXu86/Chatbot_CN, Chatbot_Web/impl/weixin/Sample.py.
SAMPLE_TOKEN = "spamtest"
SAMPLE_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SAMPLE_APP_ID = "wx2c2769f8efd9abc2"
SAMPLE_TIMESTAMP = "1409735669"
SAMPLE_NONCE = "1320562132"
SAMPLE_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGH"
    "QHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tE"
    "DYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZ"
    "bGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q"
    "5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
# The sample's callback is in compatible mode: the same message in plain fields and Encrypt.
SAMPLE_BODY = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>"
    "<CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId>"
    f"<Encrypt><![CDATA[{SAMPLE_ENCRYPT}]]></Encrypt></xml>"
).encode()
SAMPLE_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    "<CreateTime>1409735668</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[abcdteT]]></Content>\n"
    "<MsgId>6054768590064713728</MsgId>\n"
    "</xml>"
)
SAMPLE_FIELDS = {
    "ToUserName": "gh_10f6c3c3ac5a",
    "FromUserName": "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
    "CreateTime": "1409735668",
    "MsgType": "text",
    "Content": "abcdteT",
    "MsgId": "6054768590064713728",
}

CHINESE = "老板拖欠工资三个月了，怎么办？😡👷‍♀️🇨🇳"
TEXT_XML = (
    "<xml><ToUserName><![CDATA[oWorker]]></ToUserName><FromUserName><![CDATA[gh_hotline]]>"
    "</FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    f"<Content><![CDATA[{CHINESE}]]></Content></xml>"
)


@pytest.fixture
def sample() -> MessageCrypto:
    return MessageCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_APP_ID)


def by_hand(encrypt_b64: str) -> bytes:
    """Safe mode's plaintext, decrypted here without the module under test."""
    key = base64.b64decode(SAMPLE_KEY + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    return decryptor.update(base64.b64decode(encrypt_b64)) + decryptor.finalize()


def sealed_by_hand(message: bytes, app_id: bytes, random16: bytes = b"R" * 16) -> str:
    """An Encrypt field laid out by hand as WeChat's technical plan says, padded to 32."""
    plaintext = random16 + len(message).to_bytes(4, "big") + message + app_id
    count = 32 - len(plaintext) % 32
    key = base64.b64decode(SAMPLE_KEY + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    padded = plaintext + bytes([count]) * count
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


def flipped(encrypt_b64: str, index: int, bit: int = 0x01) -> str:
    ciphertext = bytearray(base64.b64decode(encrypt_b64))
    ciphertext[index] ^= bit
    return base64.b64encode(bytes(ciphertext)).decode()


# Signatures


def test_signature_is_sha1_of_the_sorted_parts():
    expected = hashlib.sha1(b"".join(sorted([b"spamtest", b"1409735669", b"1320562132"])))
    assert signature(SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE) == expected.hexdigest()
    # The sample's URL-verification signature over the same three values.
    assert signature(SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE) == (
        "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
    )
    # Sorted, so the order they are given in does not matter.
    assert signature(SAMPLE_NONCE, SAMPLE_TOKEN, SAMPLE_TIMESTAMP) == signature(
        SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE
    )


def test_signature_matches_only_the_exact_signature():
    good = signature("token", "1700000000", "nonce")
    assert signature_matches(good, "token", "1700000000", "nonce")
    assert not signature_matches(good, "other token", "1700000000", "nonce")
    assert not signature_matches(good, "token", "1700000001", "nonce")
    assert not signature_matches(good[:-1], "token", "1700000000", "nonce")
    assert not signature_matches(good + "0", "token", "1700000000", "nonce")
    assert not signature_matches("", "token", "1700000000", "nonce")
    assert not signature_matches(good.upper(), "token", "1700000000", "nonce")


def test_a_forged_signature_of_any_characters_is_false_not_an_error():
    # compare_digest refuses non-ASCII str; the comparison is of bytes, so a forger's
    # arbitrary query value is a plain mismatch (403), never a 500.
    for forged in ("签名" * 20, "\x00" * 40, "é" + "0" * 39):
        assert signature_matches(forged, "token", "1700000000", "nonce") is False


def test_msg_signature_covers_the_encrypt_field(sample):
    assert sample.check_msg_signature(
        SAMPLE_MSG_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT
    )
    assert not sample.check_msg_signature(
        SAMPLE_MSG_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE, flipped(SAMPLE_ENCRYPT, 40)
    )
    assert not sample.check_msg_signature(
        SAMPLE_MSG_SIGNATURE, "1409735670", SAMPLE_NONCE, SAMPLE_ENCRYPT
    )
    other_token = MessageCrypto("not spamtest", SAMPLE_KEY, SAMPLE_APP_ID)
    assert not other_token.check_msg_signature(
        SAMPLE_MSG_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT
    )


def test_fresh_accepts_the_window_either_way_and_nothing_but_seconds():
    now = 1_700_000_000.0
    assert fresh("1700000000", now + 0.5)
    assert fresh("1699999700", now)  # exactly 300 s old
    assert fresh("1700000290", now)  # a server clock a little ahead
    assert not fresh("1699999699", now)
    assert not fresh("1700000301", now)
    assert fresh("1699999000", now, window=1000)
    for not_seconds in ("", "-5", "1e9", " 1700000000", "1700000000.0", "１７００", "9" * 5000):
        assert not fresh(not_seconds, now), not_seconds


# Safe mode: the official sample and known answers


def test_the_official_sample_decrypts_to_its_message(sample):
    assert sample.decrypt(SAMPLE_ENCRYPT) == SAMPLE_PLAINTEXT


def test_the_official_compatible_mode_body_agrees_with_its_ciphertext(sample):
    outer = parse_callback(SAMPLE_BODY)
    assert outer["Encrypt"] == SAMPLE_ENCRYPT
    inner = parse_callback(sample.decrypt(outer["Encrypt"]).encode())
    assert inner == SAMPLE_FIELDS
    assert {name: outer[name] for name in SAMPLE_FIELDS} == SAMPLE_FIELDS


def test_a_ciphertext_laid_out_by_hand_decrypts(sample):
    message = TEXT_XML.encode()
    assert sample.decrypt(sealed_by_hand(message, SAMPLE_APP_ID.encode())) == TEXT_XML


def test_seal_lays_out_what_wechat_expects(sample):
    message = TEXT_XML.encode()
    plaintext = by_hand(sample.seal(TEXT_XML))
    count = plaintext[-1]
    assert 1 <= count <= 32 and plaintext[-count:] == bytes([count]) * count
    assert len(plaintext) % 32 == 0
    body = plaintext[16:-count]
    assert int.from_bytes(body[:4], "big") == len(message)
    assert body[4 : 4 + len(message)] == message
    assert body[4 + len(message) :] == SAMPLE_APP_ID.encode()


def test_every_seal_starts_with_fresh_random_bytes(sample):
    first, second = sample.seal(TEXT_XML), sample.seal(TEXT_XML)
    assert first != second
    assert by_hand(first)[:16] != by_hand(second)[:16]
    assert sample.decrypt(first) == sample.decrypt(second) == TEXT_XML


# 16 random + 4 length + message + 18 of AppID = 38 + len(message) bytes before padding.
@pytest.mark.parametrize(
    ("message_length", "pad"),
    [(26, 32), (58, 32), (25, 1), (27, 31), (0, 26), (10, 16)],
)
def test_padding_is_pkcs7_to_32_bytes(sample, message_length, pad):
    xml = "x" * message_length
    encrypted = sample.seal(xml)
    plaintext = by_hand(encrypted)
    assert len(plaintext) == 38 + message_length + pad
    assert plaintext[-pad:] == bytes([pad]) * pad
    assert sample.decrypt(encrypted) == xml


def test_a_full_pad_block_written_by_hand_is_read(sample):
    message = b"y" * 26  # 38 + 26 = 64: already on a 32-byte boundary
    encrypted = sealed_by_hand(message, SAMPLE_APP_ID.encode())
    assert len(base64.b64decode(encrypted)) == 96
    assert sample.decrypt(encrypted) == "y" * 26


def test_chinese_and_emoji_survive_both_ways(sample):
    assert sample.decrypt(sample.seal(TEXT_XML)) == TEXT_XML
    assert parse_callback(sample.decrypt(sample.seal(TEXT_XML)).encode())["Content"] == CHINESE
    reply = reply_xml({"Content": CHINESE, "CreateTime": 1700000000})
    assert parse_callback(reply.encode())["Content"] == CHINESE


def test_the_safe_mode_passive_reply_round_trips(sample):
    inner = reply_xml(
        {
            "ToUserName": "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
            "FromUserName": "gh_10f6c3c3ac5a",
            "CreateTime": 1700000001,
            "MsgType": "text",
            "Content": CHINESE,
        }
    )
    envelope = sample.encrypt(inner, nonce="8086", timestamp=1700000002)
    assert envelope.startswith("<xml><Encrypt><![CDATA[")
    assert "<TimeStamp>1700000002</TimeStamp>" in envelope
    assert envelope.endswith("<Nonce><![CDATA[8086]]></Nonce></xml>")
    fields = parse_callback(envelope.encode())
    assert set(fields) == {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    assert fields["MsgSignature"] == signature(
        SAMPLE_TOKEN, "1700000002", "8086", fields["Encrypt"]
    )
    assert sample.check_msg_signature(
        fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]
    )
    assert sample.decrypt(fields["Encrypt"]) == inner
    assert parse_callback(sample.decrypt(fields["Encrypt"]).encode())["Content"] == CHINESE


# Safe mode: refusals


def test_another_accounts_ciphertext_is_refused():
    ours = MessageCrypto(SAMPLE_TOKEN, SAMPLE_KEY, "wx0000000000000000")
    with pytest.raises(CallbackRefused, match="AppID"):
        ours.decrypt(SAMPLE_ENCRYPT)
    # An AppID that only starts like ours (the message length decides where it begins).
    longer = sealed_by_hand(b"<xml/>", SAMPLE_APP_ID.encode() + b"x")
    with pytest.raises(CallbackRefused, match="AppID"):
        MessageCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_APP_ID).decrypt(longer)


@pytest.mark.parametrize(
    "encrypt",
    [
        "",
        "not base64 at all!",
        "密文",
        SAMPLE_ENCRYPT[:-1],  # base64 cut short
        base64.b64encode(b"\x00" * 20).decode(),  # not whole AES blocks
        base64.b64encode(b"\x00" * 32).decode(),  # whole blocks of nothing
    ],
)
def test_a_broken_encrypt_field_is_refused(sample, encrypt):
    with pytest.raises(CallbackRefused):
        sample.decrypt(encrypt)


def test_a_tampered_pad_byte_is_refused(sample):
    # CBC: flipping a bit of the second-to-last block flips the same bit of the last
    # block's plaintext, here the last pad byte (2 in the sample, so 3: not all equal).
    with pytest.raises(CallbackRefused, match="padding"):
        sample.decrypt(flipped(SAMPLE_ENCRYPT, -17))


def test_a_tampered_length_is_refused(sample):
    # Byte 0 of the ciphertext flips byte 16 of the plaintext: the length's top byte.
    with pytest.raises(CallbackRefused, match="does not hold"):
        sample.decrypt(flipped(SAMPLE_ENCRYPT, 0, 0x80))


def test_a_tampered_app_id_is_refused(sample):
    # The AppID's last byte sits just before the sample's 2 pad bytes; the block before it
    # (message and AppID bytes) is garbled, the padding untouched.
    with pytest.raises(CallbackRefused, match="AppID"):
        sample.decrypt(flipped(SAMPLE_ENCRYPT, -16 - 2 - 1))


def test_tampering_the_random_prefix_is_caught_only_by_msg_signature(sample):
    # Why msg_signature is checked first: a flip in the first block garbles only the random
    # prefix and flips one message byte, which decrypt cannot notice.
    tampered = flipped(SAMPLE_ENCRYPT, 4, 0x01)
    assert sample.decrypt(tampered) != SAMPLE_PLAINTEXT  # the message changed unseen
    assert not sample.check_msg_signature(
        SAMPLE_MSG_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE, tampered
    )


def test_another_key_cannot_read_the_sample():
    other = MessageCrypto(SAMPLE_TOKEN, "A" * 43, SAMPLE_APP_ID)
    with pytest.raises(CallbackRefused):
        other.decrypt(SAMPLE_ENCRYPT)


@pytest.mark.parametrize(
    "encoding_aes_key",
    ["", "short", SAMPLE_KEY[:-1], SAMPLE_KEY + "H", SAMPLE_KEY[:-1] + "=", SAMPLE_KEY[:-1] + "+"],
)
def test_a_malformed_key_names_the_setting_and_hides_the_key(encoding_aes_key):
    with pytest.raises(ValueError, match="WECHAT_ENCODING_AES_KEY") as refused:
        MessageCrypto(SAMPLE_TOKEN, encoding_aes_key, SAMPLE_APP_ID)
    if encoding_aes_key:
        assert encoding_aes_key not in str(refused.value)


def test_the_key_is_32_bytes_of_the_setting():
    assert aes_key(SAMPLE_KEY) == base64.b64decode(SAMPLE_KEY + "=")
    assert len(aes_key(SAMPLE_KEY)) == 32


# The XML both ways


def test_cdata_plain_text_entities_and_empty_fields_are_read():
    body = (
        b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><CreateTime>1409735668</CreateTime>"
        b"<Content><![CDATA[a <b> & ]]>&lt;c&gt; &amp; d</Content><EventKey/>"
        b"<Label></Label></xml>"
    )
    assert parse_callback(body) == {
        "ToUserName": "gh_1",
        "CreateTime": "1409735668",
        "Content": "a <b> & <c> & d",
        "EventKey": "",
        "Label": "",
    }


def test_billion_laughs_is_refused_at_once():
    lol = [b'<!ENTITY lol0 "lol">']
    lol += [
        b'<!ENTITY lol%d "%s">' % (i, b"".join(b"&lol%d;" % (i - 1) for _ in range(10)))
        for i in range(1, 10)
    ]
    body = b"<?xml version='1.0'?><!DOCTYPE xml [" + b"".join(lol) + b"]>"
    body += b"<xml><Content>&lol9;</Content></xml>"
    started = time.perf_counter()
    with pytest.raises(CallbackRefused, match="DTDForbidden"):
        parse_callback(body)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content>'
        b"</xml>",
        b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd"><xml><Content>x</Content></xml>',
        b'<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><xml/>',
        b"<!DOCTYPE xml><xml><Content>x</Content></xml>",
    ],
)
def test_any_doctype_is_refused(body):
    with pytest.raises(CallbackRefused, match="DTDForbidden"):
        parse_callback(body)


def test_an_undeclared_entity_is_refused():
    with pytest.raises(CallbackRefused, match="not well-formed"):
        parse_callback(b"<xml><Content>&e;</Content></xml>")


@pytest.mark.parametrize(
    "body",
    [
        b"<html><Content>x</Content></html>",
        b'<w:xml xmlns:w="urn:x"><Content>x</Content></w:xml>',
        b"<XML><Content>x</Content></XML>",
    ],
)
def test_a_root_that_is_not_xml_is_refused(body):
    with pytest.raises(CallbackRefused, match="root"):
        parse_callback(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"success",
        b'{"ToUserName": "gh_1"}',
        b"<xml><Content>unclosed</xml>",
        b"<xml></xml><xml></xml>",
        b"\xff\xfe<\x00x\x00",
        bytes(range(256)),
        b'<?xml version="1.0" encoding="bogus"?><xml/>',
        b'<?xml version="1.0" encoding="gbk"?><xml/>',
        b'<?xml version="1.0" encoding="idna"?><xml/>',
        b'<?xml version="1.0" encoding="rot13"?><xml/>',
    ],
)
def test_garbage_is_refused(body):
    with pytest.raises(CallbackRefused, match="not well-formed"):
        parse_callback(body)


def test_elements_where_text_is_expected_are_refused():
    with pytest.raises(CallbackRefused, match="Content holds elements"):
        parse_callback(b"<xml><Content><b>bold</b></Content></xml>")
    with pytest.raises(CallbackRefused, match="Encrypt holds elements"):
        parse_callback(b"<xml><Encrypt><![CDATA[x]]><Encrypt>y</Encrypt></Encrypt></xml>")


def test_a_field_given_twice_is_refused():
    with pytest.raises(CallbackRefused, match="twice"):
        parse_callback(b"<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>")


def test_structures_of_pushes_the_hotline_does_not_read_are_left_out():
    # A mass send's completion push (MASSSENDJOBFINISH) carries a nested copyright result.
    body = (
        b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]>"
        b"</FromUserName><CreateTime>1499312107</CreateTime><MsgType><![CDATA[event]]>"
        b"</MsgType><Event><![CDATA[MASSSENDJOBFINISH]]></Event><MsgID>1000000046</MsgID>"
        b"<Status><![CDATA[send success]]></Status><TotalCount>19</TotalCount>"
        b"<CopyrightCheckResult><Count>0</Count><ResultList/><CheckState>1</CheckState>"
        b"</CopyrightCheckResult></xml>"
    )
    fields = parse_callback(body)
    assert fields["Event"] == "MASSSENDJOBFINISH"
    assert fields["MsgID"] == "1000000046"
    assert fields["TotalCount"] == "19"
    assert "CopyrightCheckResult" not in fields and "Count" not in fields


@pytest.mark.parametrize("text", ["a]]>b", "]]>", "]]]]>", "x]]>y]]>z", "]]>]]>", "]"])
def test_cdata_end_in_reply_text_survives(text):
    built = reply_xml({"MsgType": "text", "Content": text})
    assert parse_callback(built.encode())["Content"] == text


def test_reply_layout_text_in_cdata_ints_plain_nested_elements():
    fields = {"ToUserName": "o1", "CreateTime": 1700000000, "MsgType": "image"}
    built = reply_xml({**fields, "Image": {"MediaId": "m"}})
    assert built == (
        "<xml><ToUserName><![CDATA[o1]]></ToUserName><CreateTime>1700000000</CreateTime>"
        "<MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[m]]></MediaId></Image>"
        "</xml>"
    )


def test_characters_xml_forbids_are_dropped_from_a_reply():
    built = reply_xml({"Content": "a\x00b\x0bc\x1fd\ufffe\tline\nend]]\x00>"})
    assert parse_callback(built.encode())["Content"] == "abcd\tline\nend]]>"


def test_a_reply_refuses_what_is_not_a_wechat_field():
    with pytest.raises(ValueError, match="element name"):
        reply_xml({"Content><x": "y"})
    with pytest.raises(TypeError, match="bool"):
        reply_xml({"FuncFlag": True})
    with pytest.raises(TypeError, match="float"):
        reply_xml({"CreateTime": 1.5})  # type: ignore[dict-item]


# -- the bot and the local WeChat server agree (two implementations of one scheme) ----------


@pytest.mark.parametrize("mode", ["safe", "compatible"])
def test_what_the_local_wechat_sends_the_bot_reads_and_back(mode: str) -> None:
    """local_servers/wechat encrypts as WeChat does, on its own code; the bot's crypto must
    read it, and the local side must read the bot's passive reply."""
    from local_servers.wechat import LocalWeChat, MessageCrypt, random_encoding_aes_key

    key, app_id, token = random_encoding_aes_key(), "wx0123456789abcdef", "hotlineToken"
    wechat = LocalWeChat(
        app_id=app_id, app_secret="s", token=token, encoding_aes_key=key, mode=mode
    )
    fields = {
        "ToUserName": wechat.original_id,
        "FromUserName": "oWorker01",
        "CreateTime": 1764547200,
        "MsgType": "text",
        "Content": "老板欠我三个月工资 ]]> 😟",
        "MsgId": 24123456789012345,
    }
    query, body = wechat.callbacks.signed_request(fields)
    bot = MessageCrypto(token, key, app_id)
    outer = parse_callback(body)
    assert signature_matches(query["signature"], token, query["timestamp"], query["nonce"])
    assert bot.check_msg_signature(
        query["msg_signature"], query["timestamp"], query["nonce"], outer["Encrypt"]
    )
    inner = parse_callback(bot.decrypt(outer["Encrypt"]).encode())
    assert inner == {name: str(value) for name, value in fields.items()}

    reply = reply_xml({"ToUserName": "oWorker01", "MsgType": "text", "Content": "收到 ]]>"})
    sealed = parse_callback(bot.encrypt(reply, nonce="123456", timestamp=1764547201).encode())
    message, their_app_id = MessageCrypt(key, app_id).decrypt(sealed["Encrypt"])
    assert their_app_id == app_id and parse_callback(message.encode())["Content"] == "收到 ]]>"
