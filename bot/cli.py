"""The `hotline` command: run, demo, db upgrade, staff, jobs, status, stats, purge, broadcast,
wechat menu, content check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot import event_loop
from bot.log_redaction import RedactingFilter, use_tag_key
from bot.settings import (
    Settings,
    SettingsError,
    StorageSettings,
    check_listen,
    check_webhook_url,
    load_settings,
)
from content.catalog import Catalog, ContentError
from db.models import StaffRole

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession

    from db.outbox import OutboxReport


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hotline", description="The migrant worker hotline.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run the bot against Telegram (settings from the environment)"
    )
    run.add_argument(
        "--webhook",
        metavar="URL",
        type=_setting_flag(check_webhook_url),
        help="receive updates by webhook at this https address instead of polling"
        " (HOTLINE_WEBHOOK_URL)",
    )
    run.add_argument(
        "--listen",
        metavar="HOST:PORT",
        type=_setting_flag(check_listen),
        help="serve /healthz (and the webhook) at this address (HOTLINE_LISTEN); default"
        " 0.0.0.0:8443 with --webhook, no HTTP server when polling",
    )
    run.add_argument(
        "--workers",
        metavar="N",
        type=_process_count,
        default=1,
        help="run N hotline processes sharing the work (PostgreSQL only; default 1)",
    )
    demo = commands.add_parser(
        "demo", help="chat with the bot in this terminal, no Telegram needed"
    )
    demo.add_argument(
        "--database",
        default=None,
        help="DATABASE_URL for the demo (default: sqlite file hotline-demo.db)",
    )
    demo.add_argument(
        "--wechat",
        action="store_true",
        help="be the worker on a (local) WeChat account instead of Telegram",
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
    jobs = commands.add_parser("jobs", help="job listings: import a CSV, list them, expire one")
    job_actions = jobs.add_subparsers(dest="action", required=True)
    job_import = job_actions.add_parser(
        "import", help="add the listings of a CSV file (header as in content/jobs_template.csv)"
    )
    job_import.add_argument("file", type=Path, metavar="FILE.csv")
    job_actions.add_parser("list", help="the listings workers are shown now")
    job_expire = job_actions.add_parser("expire", help="stop showing a listing now")
    job_expire.add_argument("listing_id", type=int, metavar="ID")
    status = commands.add_parser(
        "status", help="what waits to be sent, per destination, and when it should be out"
    )
    status.add_argument("--json", action="store_true", help="one JSON object, for machines")
    figures = commands.add_parser(
        "stats", help="the figures of a period: tickets, answers, feedback, broadcasts, workers"
    )
    figures.add_argument(
        "--since", metavar="DATE", help="first local date (default: 30 days up to --until)"
    )
    figures.add_argument("--until", metavar="DATE", help="last local date (default: today)")
    figures.add_argument("--csv", type=Path, metavar="FILE", help="also write them as CSV")
    purge = commands.add_parser(
        "purge", help="erase the personal details of tickets ended before a date (retention)"
    )
    purge.add_argument(
        "--closed-before", metavar="DATE", help="local date (default: HOTLINE_RETENTION_DAYS ago)"
    )
    purge.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    notice = commands.add_parser("broadcast", help="notices to workers: send, list, show, pause")
    notice_actions = notice.add_subparsers(dest="action", required=True)
    send = notice_actions.add_parser("send", help="schedule a notice (now, or --at a time)")
    send.add_argument("--text-zh", required=True, metavar="TEXT", help="the Chinese text")
    send.add_argument("--text-en", metavar="TEXT", help="the English text (else: Chinese)")
    audience = send.add_mutually_exclusive_group()
    audience.add_argument("--language", metavar="LANG", help="only workers using this language")
    audience.add_argument("--district", metavar="KEY", help="only workers of this district")
    audience.add_argument("--jobs", action="store_true", help="only job-alert subscribers")
    audience.add_argument("--open-ticket", action="store_true", help="only with an open ticket")
    send.add_argument("--at", metavar="TIME", help='"2026-12-05 09:00", the centre\'s time')
    notice_actions.add_parser("list", help="the broadcasts, newest first, with their counts")
    for action in ("show", "pause", "resume", "cancel"):
        chosen = notice_actions.add_parser(action, help=f"{action} one broadcast")
        chosen.add_argument("broadcast_id", type=int, metavar="ID")
    wechat = commands.add_parser("wechat", help="the WeChat Official Account")
    wechat_actions = wechat.add_subparsers(dest="action", required=True)
    menu = wechat_actions.add_parser(
        "menu", help="set the account's custom menu from content/wechat_menu.yaml"
    )
    menu.add_argument(
        "--print", action="store_true", help="print menu/create's body instead of setting it"
    )
    content = commands.add_parser("content", help="the texts and lists in content/")
    content.add_argument(
        "action",
        choices=["check", "words"],
        help="check every language and template; words: write guide/words.txt (the guide"
        " search's word list) from the guide's texts",
    )
    args = parser.parse_args(argv)
    try:
        handlers = {
            "run": _run,
            "demo": _demo,
            "db": _db,
            "staff": _staff,
            "jobs": _jobs,
            "broadcast": _broadcast,
            "status": _status,
            "stats": _stats,
            "purge": _purge,
            "content": _content,
            "wechat": _wechat,
        }
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
    level: str,
    *,
    token: str | None = None,
    secrets: list[str] | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """One handler on the root logger (stderr), with the secrets (the bot's token, WeChat's
    AppSecret and Token) masked in everything it writes; installed before anything logs. The
    first secret keys the people's tags in the logs. Returns the handler."""
    secrets = [token] if token else list(secrets or [])
    token = secrets[0] if secrets else None
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(*secrets))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if token:
        use_tag_key(token)
    return handler


def _setting_flag(check: Callable[[str], str]) -> Callable[[str], str]:
    """An argparse type from a setting's check, so a bad flag is named as the flag."""

    def parse(text: str) -> str:
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _run_settings(args: argparse.Namespace) -> Settings:
    """The environment's settings, with `run`'s flags over HOTLINE_WEBHOOK_URL and
    HOTLINE_LISTEN."""
    flags = {"webhook_url": args.webhook, "listen": args.listen}
    return load_settings(**{name: value for name, value in flags.items() if value is not None})


def _run(args: argparse.Namespace) -> int:
    from bot.service import Hotline

    settings = _run_settings(args)
    settings.check_channels()
    configure_logging(settings.log_level, secrets=settings.secrets)
    problems = Catalog(settings.content_dir).check()
    if problems:
        raise ContentError(f"content/ has {len(problems)} problem(s), first: {problems[0]}")
    if args.workers > 1:
        from bot.workers import check_workers, supervise

        check_workers(settings, args.workers)
        flags = [
            f"--{name}={value}" for name in ("webhook", "listen") if (value := getattr(args, name))
        ]
        return supervise(settings, args.workers, flags)
    event_loop.run(Hotline(settings).run_until_signalled())
    return 0


def _process_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1 to 64)")
    return int(text)


def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    configure_logging("WARNING")
    return asyncio.run(run_demo(database_url=args.database, wechat=args.wechat))


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


async def _ready_database(database_url: str) -> AsyncEngine:
    """The engine of a database at the newest schema (SQLite is upgraded, as `run` does;
    PostgreSQL must have been upgraded with `hotline db upgrade`)."""
    from db.migrate import is_current, upgrade
    from db.session import create_engine

    engine = create_engine(database_url)
    try:
        if engine.dialect.name == "sqlite":
            await upgrade(engine)
        elif not await is_current(engine):
            raise SettingsError(
                "The database is not at the newest schema: run `hotline db upgrade` first."
            )
    except BaseException:
        await engine.dispose()
        raise
    return engine


@contextlib.asynccontextmanager
async def _sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a database at the newest schema, for one command; disposed after."""
    from db.session import session_factory

    engine = await _ready_database(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def _staff(args: argparse.Namespace) -> int:
    from db import staff as registry

    settings = load_settings(StorageSettings)

    async def act() -> int:
        async with _sessions(settings.database_url) as sessions:
            async with sessions() as session, session.begin():
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

    return asyncio.run(act())


def _jobs(args: argparse.Namespace) -> int:
    from bot import jobs_admin
    from bot.jobs_import import CsvHeaderError, decode
    from db.models import utcnow

    settings = load_settings(StorageSettings)
    catalog = Catalog(settings.content_dir)
    text = None
    if args.action == "import":
        try:
            text = decode(args.file.read_bytes())
        except OSError as error:
            print(f"hotline: cannot read {args.file}: {error.strerror}", file=sys.stderr)
            return 1
        except CsvHeaderError as error:
            print(f"hotline: {args.file}: {error}", file=sys.stderr)
            return 1

    async def act() -> int:
        async with _sessions(settings.database_url) as sessions:
            try:
                if args.action == "import":
                    report = await jobs_admin.import_csv(
                        sessions, catalog=catalog, text=text, now=utcnow()
                    )
                    jobs_admin.print_report(report, sys.stdout)
                    return 1 if report.bad else 0
                if args.action == "list":
                    await jobs_admin.print_listings(
                        sessions, catalog=catalog, now=utcnow(), out=sys.stdout
                    )
                    return 0
                if not await jobs_admin.expire(
                    sessions, listing_id=args.listing_id, now=utcnow(), out=sys.stdout
                ):
                    print(f"hotline: there is no listing {args.listing_id}.", file=sys.stderr)
                    return 1
                return 0
            except CsvHeaderError as error:
                print(f"hotline: {args.file}: {error}", file=sys.stderr)
                return 1

    return asyncio.run(act())


def _broadcast(args: argparse.Namespace) -> int:
    from bot import broadcast_admin
    from bot.broadcast_admin import BroadcastError, NewBroadcast
    from db.models import utcnow

    settings = load_settings(StorageSettings)
    catalog = Catalog(settings.content_dir)

    async def act() -> int:
        async with _sessions(settings.database_url) as sessions:
            try:
                if args.action == "send":
                    kind, value = "all", None
                    for name in ("language", "district"):
                        if getattr(args, name):
                            kind, value = name, getattr(args, name)
                    if args.jobs or args.open_ticket:
                        kind = "jobs" if args.jobs else "open_ticket"
                    if kind == "district" and value not in catalog.districts:
                        raise BroadcastError(
                            f"no district {value!r}: {', '.join(catalog.districts)}"
                        )
                    if kind == "language" and value not in catalog.languages:
                        raise BroadcastError(
                            f"no language {value!r}: {', '.join(catalog.languages)}"
                        )
                    new = NewBroadcast(
                        texts={"zh": args.text_zh, "en": args.text_en or ""},
                        audience={"kind": kind, "value": value},
                        at=args.at,
                    )
                    await broadcast_admin.send(
                        sessions, catalog=catalog, new=new, now=utcnow(), out=sys.stdout
                    )
                elif args.action == "list":
                    await broadcast_admin.print_list(sessions, out=sys.stdout)
                elif args.action == "show":
                    await broadcast_admin.show(
                        sessions, broadcast_id=args.broadcast_id, out=sys.stdout
                    )
                else:
                    await broadcast_admin.change(
                        sessions,
                        broadcast_id=args.broadcast_id,
                        action=args.action,
                        now=utcnow(),
                        out=sys.stdout,
                    )
                return 0
            except BroadcastError as error:
                print(f"hotline: {error}", file=sys.stderr)
                return 1

    return asyncio.run(act())


class StatusSettings(StorageSettings):
    """What `hotline status` needs: the database and the sending paces (no token)."""

    max_sends_per_second: float = Settings.model_fields["max_sends_per_second"]
    chat_burst: int = Settings.model_fields["chat_burst"]
    chat_sends_per_second: float = Settings.model_fields["chat_sends_per_second"]


DESTINATIONS = {"private": "private chats", "group": "staff group", "bulk": "bulk"}


def _status(args: argparse.Namespace) -> int:
    from bot.delivery.pacing import Paces
    from db import outbox
    from db.models import utcnow

    settings = load_settings(StatusSettings)
    paces = Paces(
        overall_per_second=settings.max_sends_per_second,
        chat_burst=settings.chat_burst,
        chat_per_second=settings.chat_sends_per_second,
    )

    async def read() -> outbox.OutboxReport:
        async with _sessions(settings.database_url) as sessions, sessions() as session:
            return await outbox.report(session, rates=paces, now=utcnow())

    report = asyncio.run(read())
    if args.json:
        print(json.dumps(_status_json(report), indent=2))
        return 0
    print(f"{'destination':<14} {'waiting':>8}  {'oldest':>9}  {'drain':>9}")
    for row in report.classes:
        age = _duration(row.oldest_age) if row.oldest_age is not None else "-"
        drain = _duration(row.drain, up=True) if row.waiting else "-"
        print(f"{DESTINATIONS[row.pace]:<14} {row.waiting:>8}  {age:>9}  {drain:>9}")
    print(f"failed in the last 24 h: {report.failed_recently}")
    return 0


def _status_json(report: OutboxReport) -> dict:
    """The interface of `hotline status --json` (README: "hotline status --json")."""
    return {
        "destinations": {
            row.pace: {
                "waiting": row.waiting,
                "oldest_age_seconds": (
                    int(row.oldest_age.total_seconds()) if row.oldest_age is not None else None
                ),
                "drain_seconds": math.ceil(row.drain.total_seconds()),
            }
            for row in report.classes
        },
        "failed_last_24h": report.failed_recently,
    }


def _duration(delta: timedelta, *, up: bool = False) -> str:
    """3s, 4m05s, 2h10m: whole seconds, down for an age, up for an estimate."""
    seconds = delta.total_seconds()
    seconds = math.ceil(seconds) if up else int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _stats(args: argparse.Namespace) -> int:
    from bot import stats_admin
    from db.models import utcnow

    return stats_admin.run(args, database=_sessions, now=utcnow())


def _purge(args: argparse.Namespace) -> int:
    from bot import purge_admin
    from db.models import utcnow

    return purge_admin.run(args, database=_sessions, now=utcnow())


def _wechat(args: argparse.Namespace) -> int:
    """`hotline wechat menu`: the menu in the account's main language, set with menu/create
    (the access token through the database, as the running hotline shares it)."""
    from bot.channels.wechat.api import WeChatApi, WeChatError
    from bot.channels.wechat.menu import build_menu
    from bot.settings import WeChatSettings

    settings = load_settings(WeChatSettings)
    menu = build_menu(Catalog(settings.content_dir))
    if args.print:
        print(json.dumps(menu, ensure_ascii=False, indent=2))
        return 0
    settings.check_wechat_credentials()
    assert settings.wechat_app_id and settings.wechat_app_secret

    async def create() -> None:
        async with _sessions(settings.database_url) as sessions:
            api = WeChatApi(
                settings.wechat_api_base_url,
                settings.wechat_app_id,
                settings.wechat_app_secret.get_secret_value(),
                sessions,
            )
            try:
                await api.create_menu(menu)
            finally:
                await api.close()

    try:
        asyncio.run(create())
    except WeChatError as error:
        print(f"hotline: WeChat refused the menu: {error}", file=sys.stderr)
        return 1
    names = [button["name"] for button in menu["button"]]
    print(f"menu set: {' | '.join(names)}")
    return 0


def _content(args: argparse.Namespace) -> int:
    catalog = Catalog(load_settings(StorageSettings).content_dir)
    if args.action == "words":
        from content.guide import guide_of
        from content.guide_search import corpus_texts
        from content.guide_words import WORDS_FILE, write_words

        texts = corpus_texts(guide_of(catalog.folder, tuple(catalog.languages)))
        count = write_words(catalog.folder, texts)
        print(f"{catalog.folder / WORDS_FILE}: {count} words for the guide search")
        return 0
    problems = catalog.check()
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {catalog.folder}", file=sys.stderr)
        return 1
    print(f"content OK: {len(catalog.languages)} languages, every text and template renders")
    return 0
