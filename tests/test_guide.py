"""The city guide as a worker uses it, through the local Bot API server, in Chinese and English
(and, through the `hotline` fixture, on SQLite and PostgreSQL): browsing the topics, reading a
long section, typing a question at the menu, a grievance, nothing that fits, "This didn't
help", the social-insurance calculator, and questions with no words in them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from content.catalog import PACKAGED
from content.guide_search import search_of
from db.models import Ticket, TicketKind
from local_servers.telegram import LocalBotApi
from tests.conftest import OfficeClock
from tests.conversation import press, say, texts

# What each language's worker types and reads.
WORDS = {
    "en": {
        "language": "English",
        "guide": "City guide",
        "topics": "City guide for Kunshan",
        "rights": "8. Rights at work",
        "calculator": "10. Social insurance calculator",
        "rights_intro": "The law protects every worker",
        "wages": "2. Wages and overtime pay",
        "wages_title": "Wages and overtime pay",
        "wages_parts": ("Overtime pay", "Wages not paid?"),
        "sample": "sample data",
        "didnt_help": "This didn't help: talk to a person",
        "talk": "Talk to a person",
        "to_guide": "Back to the guide",
        "to_menu": "Main menu",
        "menu": "This is the migrant workers' hotline",
        "question": "how open bank card",
        "found": "This may answer your question:",
        "bank": "1. Bank card and mobile payment",
        "bank_text": "Opening a bank card",
        "grievance": "my boss didn't pay me",
        "grievance_said": "It sounds like something is wrong at your work",
        "complaint": "File a complaint",
        "complaint_consent": "Before you file a complaint",
        "off_topic": "what is your name",
        "nothing": "Sorry, I found nothing in the guide for that.",
        "wordless": "I could not find any words in that message.",
        "consent": "I agree",
        "talk_ask": "Write what you would like to say",
        "passed_on": "Passed on to the staff, number",
        "relayed": "Passed on to the staff (",
        "calc_ask": "What is your monthly wage before deductions",
        "not_a_number": "I could not read that as a wage.",
        "negative": "A wage cannot be below zero.",
        "read_as": "I read that as 5,000.00 yuan.",
        "pension_5000": "Pension: you 400.00 (8 %), employer 900.00 (18 %)",
        "total_5000": "you pay 550.00 yuan a month, your employer 1,420.00 yuan",
        "floor": "counted on 4,494.00 yuan",
        "pension_floor": "Pension: you 359.52 (8 %)",
        "period": "Rates for Kunshan from 2026-07-01 to 2027-06-30",
        "calc_sample": "Sample figures",
        "school_question": "my kids school",
        "school": "School for your child",
    },
    "zh": {
        "language": "中文",
        "guide": "城市生活指南",
        "topics": "昆山城市生活指南",
        "rights": "8. 工作权益",
        "calculator": "10. 社保计算器",
        "rights_intro": "法律保护在中国工作的每一个劳动者",
        "wages": "2. 工资和加班费",
        "wages_title": "工资和加班费",
        "wages_parts": ("加班费", "老板不给工资怎么办"),
        "sample": "示例",
        "didnt_help": "没有帮到我，请人工帮忙",
        "talk": "和工作人员聊聊",
        "to_guide": "回到指南目录",
        "to_menu": "回主菜单",
        "menu": "这里是外来务工人员服务热线",
        "question": "怎么办银行卡",
        "found": "这些内容可能对您有用",
        "bank": "1. 银行卡和手机支付",
        "bank_text": "办银行卡",
        "grievance": "老板不给工资",
        "grievance_said": "听起来您工作上遇到了问题",
        "complaint": "投诉 / 反映问题",
        "complaint_consent": "提交前请先了解",
        "off_topic": "你叫什么名字",
        "nothing": "抱歉，指南里没有找到相关内容",
        "wordless": "这条消息里我没有找到文字",
        "consent": "同意",
        "talk_ask": "请写下您想说的话",
        "passed_on": "已转给工作人员，编号",
        "relayed": "已转给工作人员（",
        "calc_ask": "您每月税前工资是多少元",
        "not_a_number": "没看懂这个工资",
        "negative": "工资不能是负数",
        "read_as": "我理解为 5,000.00 元。",
        "pension_5000": "养老保险：个人 400.00 元（8%），单位 900.00 元（18%）",
        "total_5000": "个人每月交 550.00 元，单位交 1,420.00 元",
        "floor": "按 4,494.00 元计算",
        "pension_floor": "养老保险：个人 359.52 元（8%）",
        "period": "昆山 2026-07-01 至 2027-06-30 的费率",
        "calc_sample": "这是示例数字",
        "school_question": "孩子怎么上学",
        "school": "孩子上学",
    },
}
LANGUAGES = pytest.mark.parametrize("lang", ["zh", "en"])


@pytest.fixture(scope="module", autouse=True)
def search_loaded() -> None:
    """jieba's dictionary loads before the bot starts, as `hotline run` loads it (and a fresh
    machine first builds its cache): a worker's first question is not the one that waits."""
    search_of(PACKAGED, ("zh", "en"))


_ids = iter(range(8100, 8999))


def buttons(message) -> str:
    """The labels of a message's buttons, as one text ("1. Bank card…", "Main menu")."""
    return "\n".join(message.button_texts)


async def at_menu(api: LocalBotApi, lang: str):
    """A new worker who has chosen a language and sees the main menu."""
    worker = api.user(next(_ids), language_code=lang)
    await say(worker, "/start")
    got = texts(await say(worker, WORDS[lang]["language"]))
    assert WORDS[lang]["menu"] in got
    return worker


@LANGUAGES
async def test_browse_the_topics_and_read_a_long_section(api: LocalBotApi, hotline, lang) -> None:
    w = WORDS[lang]
    worker = await at_menu(api, lang)
    got = texts(await press(worker, w["guide"]))
    assert w["topics"] in got and w["rights"] in got and w["calculator"] in got
    got = texts(await say(worker, "8"))
    assert w["rights_intro"] in got and w["wages"] in got
    messages = await say(worker, "2")
    # The section comes in several messages, its title leading, each well within Telegram's
    # limit; a note that some figures are samples; then the choices of an answer's end.
    section = [m for m in messages if not m.buttons]
    assert len(section) >= 3  # two parts of the text and the sample note at least
    assert f"<b>{w['wages_title']}</b>" in messages[0].text
    assert all(len(m.text) < 4096 for m in messages)
    got = texts(messages)
    assert all(part in got for part in w["wages_parts"])
    assert w["sample"] in got
    assert messages[-1].button_texts[0] == f"1. {w['didnt_help']}"
    got = texts(await press(worker, w["to_guide"]))
    assert w["topics"] in got


@LANGUAGES
async def test_a_question_at_the_menu_finds_its_section(api: LocalBotApi, hotline, lang) -> None:
    w = WORDS[lang]
    worker = await at_menu(api, lang)
    got = texts(await say(worker, w["question"]))
    assert w["found"] in got and w["bank"] in got
    got = texts(await say(worker, "1"))
    assert w["bank_text"] in got
    # A new question typed after an answer is searched too.
    got = texts(await say(worker, w["school_question"]))
    assert w["found"] in got and w["school"] in got


@LANGUAGES
async def test_a_question_typed_in_the_guide_finds_its_section(
    api: LocalBotApi, hotline, lang
) -> None:
    w = WORDS[lang]
    worker = await at_menu(api, lang)
    await say(worker, "/guide")
    got = texts(await say(worker, w["school_question"]))
    assert w["found"] in got and w["school"] in got


@LANGUAGES
async def test_a_grievance_offers_a_complaint(api: LocalBotApi, hotline, lang) -> None:
    w = WORDS[lang]
    worker = await at_menu(api, lang)
    messages = await say(worker, w["grievance"])
    got = texts(messages)
    assert w["grievance_said"] in got and w["wages_title"] in got
    assert w["complaint"] in buttons(messages[-1])
    got = texts(await press(worker, w["complaint"]))
    assert w["complaint_consent"] in got


@LANGUAGES
async def test_nothing_fits_offers_a_person_and_the_menu(api: LocalBotApi, hotline, lang) -> None:
    w = WORDS[lang]
    worker = await at_menu(api, lang)
    messages = await say(worker, w["off_topic"])
    assert w["nothing"] in texts(messages)
    assert w["talk"] in buttons(messages[-1]) and w["to_menu"] in buttons(messages[-1])
    assert w["menu"] in texts(await press(worker, w["to_menu"]))
    await say(worker, w["off_topic"])
    assert w["complaint_consent"] in texts(await press(worker, w["talk"]))  # a talk's consent


@LANGUAGES
async def test_this_didnt_help_opens_a_talk(api: LocalBotApi, hotline, lang) -> None:
    w = WORDS[lang]
    worker = await at_menu(api, lang)
    await say(worker, w["question"])
    await say(worker, "1")
    await press(worker, w["didnt_help"])
    assert w["talk_ask"] in texts(await press(worker, w["consent"]))
    assert w["passed_on"] in texts(await say(worker, "I still cannot open a bank card"))
    async with hotline.sessions() as session:
        tickets = (await session.exec(select(Ticket))).all()
    assert [t.kind for t in tickets] == [TicketKind.TALK]
    # With a ticket to write to, what is typed at the menu goes to the counsellor, as before.
    assert w["relayed"] in texts(await say(worker, w["question"]))


@LANGUAGES
async def test_the_calculator_with_good_and_bad_wages(api: LocalBotApi, hotline, lang) -> None:
    w = WORDS[lang]
    worker = await at_menu(api, lang)
    await say(worker, "/guide")
    assert w["calc_ask"] in texts(await say(worker, "10"))
    for typed, said in (("abc", "not_a_number"), ("-1", "negative"), ("1e9", "not_a_number")):
        got = texts(await say(worker, typed))
        assert w[said] in got and w["calc_ask"] in got  # and the question again
    got = texts(await say(worker, "5千"))
    assert w["read_as"] in got and w["pension_5000"] in got and w["total_5000"] in got
    assert w["period"] in got and w["calc_sample"] in got
    got = texts(await say(worker, "５０００"))  # another wage at once, in full-width digits
    assert w["read_as"] in got and w["pension_5000"] in got
    got = texts(await say(worker, "3000"))
    assert w["floor"] in got and w["pension_floor"] in got
    assert w["read_as"] not in got


@LANGUAGES
@pytest.mark.parametrize("question", ["😀😀😀", "？？？！！！……"])
async def test_a_question_without_words(api: LocalBotApi, hotline, lang, question) -> None:
    w = WORDS[lang]
    worker = await at_menu(api, lang)
    messages = await say(worker, question)
    assert w["wordless"] in texts(messages)
    assert w["talk"] in buttons(messages[-1]) and w["to_menu"] in buttons(messages[-1])


async def test_a_question_of_four_thousand_characters(api: LocalBotApi, hotline) -> None:
    worker = await at_menu(api, "zh")
    question = ("老板三个月不给工资" + "，我每天都去工厂上班" * 400)[:4000]
    messages = await say(worker, question)
    got = texts(messages)
    assert WORDS["zh"]["grievance_said"] in got and WORDS["zh"]["wages_title"] in got


async def test_rates_past_their_period_are_said_to_be_old(api: LocalBotApi, start_hotline) -> None:
    await start_hotline(clock=OfficeClock(datetime(2027, 8, 2, 2, 0, tzinfo=UTC)))
    worker = await at_menu(api, "en")
    await say(worker, "/guide")
    await say(worker, "10")
    got = texts(await say(worker, "6000"))
    assert "Pension: you 480.00 (8 %)" in got
    assert "These rates were for 2026-07-01 to 2027-06-30: they may be out of date now." in got
