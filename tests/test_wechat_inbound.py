"""WeChat callbacks into the engine's Inbound, read from XML as WeChat pushes it.

Every body goes through callback_xml.parse_callback, so the reader and the mapping agree on
what a field holds. No server and no database.
"""

from __future__ import annotations

import pytest

from bot.channels.wechat.callback_xml import parse_callback
from bot.channels.wechat.inbound import CHANNEL, message_id, to_inbound, update_key
from handlers.messages import Inbound, InboundKind, Media

ACCOUNT = "gh_3f7badc0771f"
OPENID = "oVePN2DjdQlahnlYcj2JSUj3Fd1o"
MSG_ID = 25373744922163388
CREATE_TIME = 1735382317
NUMBERS = ("CreateTime", "MsgId")  # WeChat writes these without CDATA


def body(msg_type: str, **fields: str) -> bytes:
    """A callback in WeChat's layout: texts in CDATA, numbers bare, MsgId for messages."""
    values = {"ToUserName": ACCOUNT, "FromUserName": OPENID, "CreateTime": str(CREATE_TIME)}
    values["MsgType"] = msg_type
    if msg_type.strip() != "event":
        values["MsgId"] = str(MSG_ID)
    values.update(fields)
    inner = "".join(
        f"<{name}>{value}</{name}>" if name in NUMBERS else f"<{name}><![CDATA[{value}]]></{name}>"
        for name, value in values.items()
        if value is not None
    )
    return f"<xml>{inner}</xml>".encode()


def inbound(msg_type: str, **fields: str) -> Inbound | None:
    return to_inbound(parse_callback(body(msg_type, **fields)))


def event(name: str, key: str | None = None, **fields: str) -> Inbound | None:
    return inbound("event", Event=name, **({"EventKey": key} if key is not None else {}), **fields)


def key_of(msg_type: str, **fields: str) -> int:
    return update_key(parse_callback(body(msg_type, **fields)))


# -- text and commands ----------------------------------------------------------------------


def test_text_is_the_worker_s_words_unstripped() -> None:
    content = "  老板三个月没发工资了\n"
    assert inbound("text", Content=content) == Inbound(
        channel=CHANNEL,
        person_id=OPENID,
        kind=InboundKind.TEXT,
        text=content,
        message_id=MSG_ID,
        origin="worker",
    )


def test_wechat_carries_no_name_username_or_language() -> None:
    result = inbound("text", Content="你好")
    assert (result.display_name, result.username, result.language_hint) == (None, None, None)
    assert (result.thread_id, result.reply_to, result.origin) == (None, None, "worker")


@pytest.mark.parametrize(
    ("content", "command", "args"),
    [
        ("/start", "start", None),
        ("/help", "help", None),
        ("/Forget", "forget", None),
        ("/forget 全部 删除 ", "forget", "全部 删除"),
        ("\uff0fhelp", "help", None),  # full-width solidus
        ("\uff0f\uff48\uff45\uff4c\uff50", "help", None),  # full-width letters too
        ("  /start", "start", None),
        ("/start\u3000payload", "start", "payload"),  # ideographic space separates
    ],
)
def test_a_leading_slash_word_is_a_command(content: str, command: str, args: str | None) -> None:
    result = inbound("text", Content=content)
    assert (result.kind, result.command, result.text) == (InboundKind.COMMAND, command, args)
    assert result.message_id == MSG_ID


@pytest.mark.parametrize("content", ["/", "/ help", "/工资", "1/2 工资", "help/", "／"])
def test_slashes_elsewhere_are_text(content: str) -> None:
    result = inbound("text", Content=content)
    assert (result.kind, result.text, result.command) == (InboundKind.TEXT, content, None)


@pytest.mark.parametrize("content", ["", "   ", "\u3000\u3000", "\n\t "])
def test_content_with_only_whitespace_is_other(content: str) -> None:
    result = inbound("text", Content=content)
    assert (result.kind, result.text, result.person_id) == (InboundKind.OTHER, None, OPENID)


def test_text_without_content_is_other() -> None:
    assert inbound("text").kind is InboundKind.OTHER


def test_a_tapped_choice_is_the_text_of_its_words() -> None:
    result = inbound("text", Content="投诉 / 反映问题", bizmsgmenuid="101")
    assert (result.kind, result.text) == (InboundKind.TEXT, "投诉 / 反映问题")


def test_a_tapped_choice_is_never_a_command() -> None:
    result = inbound("text", Content="/forget", bizmsgmenuid="0")
    assert (result.kind, result.text, result.command) == (InboundKind.TEXT, "/forget", None)


def test_leading_and_trailing_space_in_msg_type_is_read() -> None:
    bare = b"<xml><FromUserName>" + OPENID.encode() + b"</FromUserName>"
    bare += b"<MsgType>\n  text  \n</MsgType><Content>hi</Content><MsgId>42</MsgId></xml>"
    assert inbound("  text ", Content="你好").kind is InboundKind.TEXT
    assert to_inbound(parse_callback(bare)).kind is InboundKind.TEXT


def test_a_pretty_printed_body_reads_the_same() -> None:
    pretty = (
        "<xml>\n"
        f"  <ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>\n"
        f"  <FromUserName>\n    {OPENID}\n  </FromUserName>\n"
        f"  <CreateTime>{CREATE_TIME}</CreateTime>\n"
        "  <MsgType> <![CDATA[text]]> </MsgType>\n"
        "  <Content><![CDATA[我要投诉]]></Content>\n"
        f"  <MsgId> {MSG_ID} </MsgId>\n"
        "</xml>"
    ).encode()
    fields = parse_callback(pretty)
    assert to_inbound(fields) == inbound("text", Content="我要投诉")
    assert update_key(fields) == MSG_ID


# -- media, locations, links ----------------------------------------------------------------


def test_an_image_is_a_photo_by_media_id_without_its_url() -> None:
    url = "http://mmbiz.qpic.cn/mmbiz_jpg/abc123/0"
    result = inbound("image", PicUrl=url, MediaId="media_photo_1")
    assert result.kind is InboundKind.MEDIA
    assert result.media == Media(kind="photo", file_id="media_photo_1")
    assert result.text is None
    assert url not in repr(result)  # the photo's public URL is personal data, not kept


def test_an_image_without_media_id_is_other() -> None:
    result = inbound("image", PicUrl="http://mmbiz.qpic.cn/x/0", MediaId=" ")
    assert (result.kind, result.media) == (InboundKind.OTHER, None)


def test_a_voice_note_without_recognition_is_media_only() -> None:
    result = inbound("voice", MediaId="media_voice_1", Format="amr")
    assert result.kind is InboundKind.MEDIA
    assert result.media == Media(kind="voice", file_id="media_voice_1", mime_type="audio/amr")
    assert result.text is None


@pytest.mark.parametrize("recognition", ["", "  "])
def test_an_empty_recognition_is_no_text(recognition: str) -> None:
    result = inbound("voice", MediaId="media_voice_1", Format="amr", Recognition=recognition)
    assert (result.kind, result.text) == (InboundKind.MEDIA, None)


def test_recognition_is_the_text_and_the_voice_stays_as_evidence() -> None:
    result = inbound("voice", MediaId="v2", Format="speex", Recognition="老板不给我发工资。")
    assert result.kind is InboundKind.MEDIA
    assert result.text == "老板不给我发工资。"
    assert result.media == Media(kind="voice", file_id="v2", mime_type="audio/speex")


@pytest.mark.parametrize(
    ("voice_format", "mime_type"),
    [("AMR", "audio/amr"), ("mp3", "audio/mpeg"), ("", None), ("a/b; x", None)],
)
def test_a_voice_format_is_a_mime_type_when_it_names_one(
    voice_format: str, mime_type: str | None
) -> None:
    result = inbound("voice", MediaId="v3", Format=voice_format)
    assert result.media.mime_type == mime_type


@pytest.mark.parametrize("msg_type", ["video", "shortvideo"])
def test_videos_are_media_video(msg_type: str) -> None:
    result = inbound(msg_type, MediaId="media_video_1", ThumbMediaId="thumb_1")
    assert result.kind is InboundKind.MEDIA
    assert result.media == Media(kind="video", file_id="media_video_1")


def test_a_location_is_its_label_without_coordinates() -> None:
    result = inbound(
        "location",
        Location_X="31.385662",
        Location_Y="120.980736",
        Scale="15",
        Label="江苏省苏州市昆山市玉山镇前进西路",
    )
    assert (result.kind, result.text) == (InboundKind.LOCATION, "江苏省苏州市昆山市玉山镇前进西路")
    assert "31.385662" not in repr(result) and "120.980736" not in repr(result)


def test_a_location_without_label_has_no_text() -> None:
    result = inbound("location", Location_X="31.38", Location_Y="120.98", Scale="15", Label="")
    assert (result.kind, result.text) == (InboundKind.LOCATION, None)


def test_a_link_is_text_of_its_title_and_url() -> None:
    result = inbound(
        "link",
        Title="昆山某电子厂拖欠工资",
        Description="文章摘要",
        Url="https://mp.weixin.qq.com/s/abc",
    )
    assert (result.kind, result.text) == (
        InboundKind.TEXT,
        "昆山某电子厂拖欠工资\nhttps://mp.weixin.qq.com/s/abc",
    )


def test_a_link_with_only_a_url_is_its_url_and_an_empty_one_is_other() -> None:
    assert inbound("link", Title="", Url="https://mp.weixin.qq.com/s/x").text == (
        "https://mp.weixin.qq.com/s/x"
    )
    assert inbound("link", Title=" ", Description="d", Url="").kind is InboundKind.OTHER


# -- events ---------------------------------------------------------------------------------


def test_following_is_start() -> None:
    assert event("subscribe", "") == Inbound(
        channel=CHANNEL, person_id=OPENID, kind=InboundKind.COMMAND, command="start"
    )


def test_following_from_a_qr_code_is_start_with_its_scene() -> None:
    result = event("subscribe", "qrscene_kunshan_poster", Ticket="gQH47joAAAAAAAAAASxodHRwOi8v")
    assert (result.kind, result.command, result.text) == (
        InboundKind.COMMAND,
        "start",
        "kunshan_poster",
    )


def test_unfollowing_is_stop() -> None:
    result = event("unsubscribe", "")
    assert (result.kind, result.command, result.person_id) == (InboundKind.COMMAND, "stop", OPENID)


@pytest.mark.parametrize(
    ("key", "command"), [("cmd:forget", "forget"), ("cmd:MyTickets", "mytickets")]
)
def test_a_menu_command_button_is_its_command(key: str, command: str) -> None:
    result = event("CLICK", key)
    assert (result.kind, result.command, result.text) == (InboundKind.COMMAND, command, None)
    assert result.message_id is None


def test_another_menu_button_is_its_entry_as_typed() -> None:
    result = event("CLICK", "投诉")
    assert (result.kind, result.text, result.command) == (InboundKind.TEXT, "投诉", None)


@pytest.mark.parametrize("key", ["", "cmd:", "cmd: forget", "cmd:工资"])
def test_a_menu_button_without_a_usable_key_is_other(key: str) -> None:
    result = event("CLICK", key)
    assert (result.kind, result.person_id) == (InboundKind.OTHER, OPENID)


def test_space_around_event_and_key_is_read() -> None:
    assert event("  subscribe\n", " qrscene_yiwu ").text == "yiwu"
    assert event(" CLICK ", " cmd:help ").command == "help"


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("VIEW", {"EventKey": "https://example.org/guide", "MenuId": "208396938"}),
        ("LOCATION", {"Latitude": "31.385662", "Longitude": "120.980736", "Precision": "65"}),
        ("TEMPLATESENDJOBFINISH", {"MsgID": "200163836", "Status": "success"}),
        ("MASSSENDJOBFINISH", {"MsgID": "1000001625", "Status": "sendsuccess"}),
        ("SCAN", {"EventKey": "123123", "Ticket": "TICKET"}),
        ("user_get_card", {}),
        ("", {}),
    ],
)
def test_pushes_that_only_report_are_not_a_turn(name: str, extra: dict[str, str]) -> None:
    assert inbound("event", Event=name, **extra) is None


def test_an_event_without_an_event_field_is_not_a_turn() -> None:
    assert inbound("event") is None


# -- malformed ------------------------------------------------------------------------------


@pytest.mark.parametrize("msg_type", ["miniprogrampage", "file", "", "<none>"])
def test_an_unknown_message_type_is_other(msg_type: str) -> None:
    fields = parse_callback(body(msg_type, Content="x"))
    if msg_type == "<none>":
        del fields["MsgType"]
    result = to_inbound(fields)
    assert (result.kind, result.person_id, result.message_id) == (InboundKind.OTHER, OPENID, MSG_ID)


@pytest.mark.parametrize("msg_type", ["text", "image", "event", "bogus"])
@pytest.mark.parametrize("sender", [None, "", "   "])
def test_without_a_sender_nothing_is_answered(msg_type: str, sender: str | None) -> None:
    fields = parse_callback(body(msg_type, Content="hi", MediaId="m", Event="subscribe"))
    if sender is None:
        del fields["FromUserName"]
    else:
        fields["FromUserName"] = sender
    assert to_inbound(fields) is None


# -- message ids and the inbox's key --------------------------------------------------------


def test_message_id_is_msg_id_as_int() -> None:
    fields = parse_callback(body("text", Content="hi", MsgId="6054768590064713728"))
    assert message_id(fields) == 6054768590064713728
    assert to_inbound(fields).message_id == 6054768590064713728


@pytest.mark.parametrize("raw", ["", "abc", "-5", "0", "1e5", str(2**63), str(2**64 - 1), "١٢"])
def test_a_msg_id_that_is_not_a_positive_64_bit_number_is_none(raw: str) -> None:
    fields = parse_callback(body("text", Content="hi", MsgId=raw))
    assert message_id(fields) is None
    assert to_inbound(fields).message_id is None
    assert update_key(fields) < 0  # keyed as an event: never a real MsgId


def test_events_have_no_message_id() -> None:
    assert event("subscribe", "").message_id is None


@pytest.mark.parametrize(
    ("msg_type", "fields"),
    [
        ("text", {"Content": "你好"}),
        ("image", {"PicUrl": "http://mmbiz.qpic.cn/x/0", "MediaId": "m1"}),
        ("voice", {"MediaId": "m2", "Format": "amr", "Recognition": "你好"}),
        ("location", {"Location_X": "31.3", "Location_Y": "120.9", "Label": "昆山"}),
    ],
)
def test_a_message_s_key_is_its_msg_id(msg_type: str, fields: dict[str, str]) -> None:
    assert key_of(msg_type, **fields) == MSG_ID


def test_the_largest_msg_id_is_its_own_key() -> None:
    assert key_of("text", Content="hi", MsgId=str(2**63 - 1)) == 2**63 - 1


def test_an_event_s_key_is_stable_across_calls_and_parses() -> None:
    first = key_of("event", Event="subscribe", EventKey="qrscene_kunshan")
    fields = parse_callback(body("event", Event="subscribe", EventKey="qrscene_kunshan"))
    assert update_key(fields) == update_key(fields) == first
    assert update_key(dict(fields)) == first


def test_an_event_s_key_is_the_same_in_every_release() -> None:
    # Rows already in the inbox must match a retry that arrives after an upgrade: a changed
    # algorithm (or Python's salted hash()) would store that retry a second time.
    fields = {
        "FromUserName": OPENID,
        "CreateTime": str(CREATE_TIME),
        "MsgType": "event",
        "Event": "subscribe",
        "EventKey": "",
    }
    assert update_key(fields) == -2826615522824523585


def test_an_event_s_key_ignores_what_a_retry_may_change() -> None:
    # In safe mode each retry may be encrypted afresh; the key is of the event, not its body.
    plain = key_of("event", Event="CLICK", EventKey="投诉")
    assert key_of("event", Event="CLICK", EventKey="投诉", Encrypt="b64==") == plain
    assert key_of("event", Event=" CLICK ", EventKey="投诉 ") == plain


def test_different_events_have_different_keys() -> None:
    keys = {
        key_of("event", Event="subscribe", EventKey=""),
        key_of("event", Event="unsubscribe", EventKey=""),
        key_of("event", Event="CLICK", EventKey="投诉"),
        key_of("event", Event="CLICK", EventKey="cmd:forget"),
        key_of("event", Event="CLICK", EventKey="投诉", CreateTime=str(CREATE_TIME + 1)),
        key_of("event", Event="CLICK", EventKey="投诉", FromUserName=OPENID + "x"),
        key_of("event", Event="CLICK"),
        # The boundary between two fields moved is another event.
        key_of("event", Event="CLICKx", EventKey=""),
        key_of("event", Event="CLICK", EventKey="x"),
    }
    assert len(keys) == 9


def test_event_keys_are_negative_and_fit_a_signed_64_bit_column() -> None:
    keys = [
        key_of("event", Event="CLICK", EventKey=f"item{n}", CreateTime=str(CREATE_TIME + n))
        for n in range(500)
    ]
    assert all(-(2**63) <= key <= -1 for key in keys)
    assert len(set(keys)) == len(keys)
