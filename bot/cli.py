"""The `hotline` command: run, demo, db upgrade, content check."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TextIO

from bot.log_redaction import RedactingFilter, use_tag_key
from bot.settings import SettingsError, StorageSettings, load_settings
from content.catalog import Catalog, ContentError
from db.models import StaffRole


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotline", description="The migrant worker hotline.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the bot against Telegram (settings from the environment)")
    demo = commands.add_parser(
        "demo", help="chat with the bot in this terminal, no Telegram needed"
    )
    demo.add_argument(
        "--database",
        default=None,
        help="DATABASE_URL for the demo (default: sqlite file hotline-demo.db)",
    )
    db = commands.add_parser("db", help="the database schema")
    db.add_argument("action", choices=["upgrade"], help="apply the migrations")
    staff = commands.add_parser("staff", help="the staff registry (who may act on tickets)")
    staff_actions = staff.add_subparsers(dest="action", required=True)
    add = staff_actions.add_parser("add", help="register a staff member, or change one")
    add.add_argument("telegram_user_id", type=_telegram_user_id, metavar="TELEGRAM_USER_ID")
    add.add_argument("--role", required=True, choices=[r.value for r in StaffRole])
    add.add_argument(
        "--alias", required=True, type=_alias, help='the name workers see, e.g. "Counsellor Li"'
    )
    staff_actions.add_parser("list", help="list the registered staff")
    remove = staff_actions.add_parser("remove", help="remove a staff member")
    remove.add_argument("telegram_user_id", type=_telegram_user_id, metavar="TELEGRAM_USER_ID")
    content = commands.add_parser("content", help="the texts and lists in content/")
    content.add_argument("action", choices=["check"], help="check every language and template")
    args = parser.parse_args(argv)
    try:
        handlers = {"run": _run, "demo": _demo, "db": _db, "staff": _staff, "content": _content}
        return handlers[args.command](args)
    except (SettingsError, ContentError) as error:
        print(f"hotline: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# Chatty libraries stay at WARNING whatever the level: httpx prints every request's URL,
# SQLAlchemy at INFO/DEBUG every statement and the rows it returns, aiosqlite every call.
QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "sqlalchemy", "aiosqlite", "asyncio")


def configure_logging(
    level: str, *, token: str | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """One handler on the root logger (stderr), with the token masked in everything it
    writes; installed before anything logs. Returns the handler."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(*([token] if token else [])))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if token:
        use_tag_key(token)
    return handler


def _run(_args: argparse.Namespace) -> int:
    from bot.service import Hotline

    settings = load_settings()
    configure_logging(settings.log_level, token=settings.telegram_bot_token.get_secret_value())
    problems = Catalog(settings.content_dir).check()
    if problems:
        raise ContentError(f"content/ has {len(problems)} problem(s), first: {problems[0]}")
    asyncio.run(Hotline(settings).run_until_signalled())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    configure_logging("WARNING")
    return asyncio.run(run_demo(database_url=args.database))


def _db(_args: argparse.Namespace) -> int:
    from db.migrate import upgrade
    from db.session import create_engine

    settings = load_settings(StorageSettings)

    async def apply() -> None:
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(apply())
    print("The database is at the newest schema.")
    return 0


def _telegram_user_id(text: str) -> str:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Telegram user id (a positive number)")
    return text


def _alias(text: str) -> str:
    alias = " ".join(text.split())
    if not 1 <= len(alias) <= 100:
        raise argparse.ArgumentTypeError("the alias must be 1 to 100 characters")
    return alias


def _staff(args: argparse.Namespace) -> int:
    from db import staff as registry
    from db.migrate import is_current, upgrade
    from db.session import create_engine, session_factory

    settings = load_settings(StorageSettings)

    async def act() -> int:
        engine = create_engine(settings.database_url)
        try:
            if engine.dialect.name == "sqlite":
                await upgrade(engine)
            elif not await is_current(engine):
                raise SettingsError(
                    "The database is not at the newest schema: run `hotline db upgrade` first."
                )
            async with session_factory(engine)() as session, session.begin():
                if args.action == "add":
                    member, is_new = await registry.register_staff(
                        session,
                        channel="telegram",
                        external_id=args.telegram_user_id,
                        role=args.role,
                        alias=args.alias,
                    )
                    verb = "Added" if is_new else "Updated"
                    who = f"{member.alias} ({member.role})"
                    print(f"{verb} {who}, Telegram user {member.external_id}.")
                elif args.action == "list":
                    members = await registry.all_staff(session, channel="telegram")
                    for member in members:
                        print(f"{member.external_id:>12}  {member.role:<12} {member.alias}")
                    print(f"{len(members)} staff member(s).")
                elif not await registry.remove_staff(
                    session, channel="telegram", external_id=args.telegram_user_id
                ):
                    print(
                        f"hotline: no staff member has Telegram user id {args.telegram_user_id}.",
                        file=sys.stderr,
                    )
                    return 1
                else:
                    print(f"Removed Telegram user {args.telegram_user_id} from the staff.")
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(act())


def _content(_args: argparse.Namespace) -> int:
    catalog = Catalog(load_settings(StorageSettings).content_dir)
    problems = catalog.check()
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {catalog.folder}", file=sys.stderr)
        return 1
    print(f"content OK: {len(catalog.languages)} languages, every text and template renders")
    return 0
