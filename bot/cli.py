"""The `hotline` command: run, demo, db upgrade, content check."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.settings import SettingsError, StorageSettings, load_settings
from content.catalog import Catalog, ContentError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotline", description="The migrant worker hotline.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the bot against Telegram (settings from the environment)")
    demo = commands.add_parser("demo", help="chat with the bot in this terminal, no Telegram needed")
    demo.add_argument("--database", default=None,
                      help="DATABASE_URL for the demo (default: sqlite file hotline-demo.db)")
    db = commands.add_parser("db", help="the database schema")
    db.add_argument("action", choices=["upgrade"], help="apply the migrations")
    content = commands.add_parser("content", help="the texts and lists in content/")
    content.add_argument("action", choices=["check"], help="check every language and template")
    args = parser.parse_args(argv)
    try:
        return {"run": _run, "demo": _demo, "db": _db, "content": _content}[args.command](args)
    except (SettingsError, ContentError) as error:
        print(f"hotline: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _run(_args: argparse.Namespace) -> int:
    from bot.service import Hotline

    settings = load_settings()
    _logging(settings.log_level)
    problems = Catalog(settings.content_dir).check()
    if problems:
        raise ContentError(f"content/ has {len(problems)} problem(s), first: {problems[0]}")
    asyncio.run(Hotline(settings).run_until_signalled())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    _logging("WARNING")
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
