"""The account's custom menu (`hotline wechat menu`): content/wechat_menu.yaml, in the account's
main language, as menu/create takes it. Each entry is a CLICK button whose key is "cmd:NAME",
which the callback reads as the command NAME (inbound.py), so a tap does what typing /NAME does.
"""

from __future__ import annotations

from typing import Any

import yaml

from bot.channels.wechat.inbound import MENU_COMMAND_PREFIX
from content.catalog import Catalog, ContentError

MENU_FILE = "wechat_menu.yaml"
# WeChat's menu/create rules ("自定义菜单最多包括3个一级菜单，每个一级菜单最多包含5个二级菜单。
# 一级菜单最多4个汉字，二级菜单最多8个汉字" and the byte limits of its field table).
BUTTONS, UNDER = 3, 5
NAME_BYTES, UNDER_NAME_BYTES, KEY_BYTES = 16, 60, 128


def build_menu(catalog: Catalog, language: str | None = None) -> dict[str, Any]:
    """menu/create's body; ContentError naming the entry when WeChat would refuse it."""
    with open(catalog.folder / MENU_FILE, encoding="utf-8") as file:
        buttons = (yaml.safe_load(file) or {}).get("buttons") or []
    t = catalog.translator(language or catalog.default_language)
    if not 1 <= len(buttons) <= BUTTONS:
        raise ContentError(f"{MENU_FILE}: WeChat takes 1 to {BUTTONS} buttons, not {len(buttons)}")
    menu = []
    for entry in buttons:
        under = entry.get("under") or []
        if len(under) > UNDER:
            raise ContentError(f"{MENU_FILE}: {entry['label']} has over {UNDER} entries under it")
        button = _button(t, entry, NAME_BYTES, leaf=not under)
        if under:
            button["sub_button"] = [_button(t, sub, UNDER_NAME_BYTES, leaf=True) for sub in under]
        menu.append(button)
    return {"button": menu}


def _button(t, entry: dict, name_bytes: int, *, leaf: bool) -> dict[str, Any]:
    name = str(t(entry["label"]))
    if len(name.encode("utf-8")) > name_bytes:
        raise ContentError(
            f"{MENU_FILE}: {entry['label']} reads {name!r}, over WeChat's {name_bytes} bytes"
        )
    if not leaf:
        return {"name": name}
    key = MENU_COMMAND_PREFIX + str(entry["command"])
    if len(key.encode("utf-8")) > KEY_BYTES:
        raise ContentError(f"{MENU_FILE}: the command of {entry['label']} is too long")
    return {"type": "click", "name": name, "key": key}
