"""Golden conversations: each file in tests/golden pairs a person's inputs with the replies
they must see (fragments, in order), walked through the real bot on the local Bot API server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from local_servers.telegram import LocalBotApi
from tests.conversation import replies, texts

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.yaml"))
ACTIONS = ("send", "press", "photo", "document", "voice", "sticker")


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
async def test_golden_conversation(path: Path, api: LocalBotApi, hotline) -> None:
    script = yaml.safe_load(path.read_text(encoding="utf-8"))
    about = script["person"]
    person = api.user(about["id"], about["first_name"], language_code=about.get("language_code"))
    for number, turn in enumerate(script["turns"], start=1):
        action = next(a for a in ACTIONS if a in turn)
        argument = turn[action]
        if action == "send":
            person.send(str(argument))
        elif action == "press":
            person.press(argument)
        else:
            getattr(person, f"send_{action}")(**(argument or {}))
        got = await replies(person)
        seen = texts(got)
        where = f"{path.name} turn {number} ({action}: {argument!r}); the bot said:\n{seen}"
        position = 0
        for fragment in turn.get("expect", []):
            found = seen.find(fragment, position)
            assert found >= 0, f"missing {fragment!r} (in order) at {where}"
            position = found + len(fragment)
        for fragment in turn.get("absent", []):
            assert fragment not in seen, f"unexpected {fragment!r} at {where}"
        if "buttons" in turn:
            labels = got[-1].button_texts
            for wanted in turn["buttons"]:
                assert any(wanted in label for label in labels), (
                    f"no button {wanted!r} in {labels} at {where}"
                )
