"""The `hotline` command: clear one-sentence errors for bad settings, content check, db upgrade."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from content.catalog import PACKAGED


def hotline(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "HOTLINE_", "DATABASE_URL", "WECHAT_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_run_without_a_token_says_so_in_one_sentence(tmp_path: Path) -> None:
    result = hotline("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "hotline: The setting TELEGRAM_BOT_TOKEN is missing: set it to the token @BotFather"
        " gave the bot (or set WECHAT_APP_ID and the rest for a WeChat account alone)."
    )


def test_a_malformed_setting_is_named(tmp_path: Path) -> None:
    result = hotline(
        "run",
        cwd=tmp_path,
        env={"TELEGRAM_BOT_TOKEN": "123456:" + "a" * 30, "DATABASE_URL": "mysql://localhost/x"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "DATABASE_URL is malformed" in result.stderr


TOKEN = {"TELEGRAM_BOT_TOKEN": "123456:" + "a" * 30}


def test_a_wechat_account_without_its_secret_or_a_listen_address_is_told_what_is_missing(
    tmp_path: Path,
) -> None:
    result = hotline("run", cwd=tmp_path, env={**TOKEN, "WECHAT_APP_ID": "wx1234567890abcdef"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "hotline: a WeChat account needs WECHAT_APP_SECRET, WECHAT_TOKEN to be set."
    )
    account = {"WECHAT_APP_ID": "wx1", "WECHAT_APP_SECRET": "s", "WECHAT_TOKEN": "t"}
    result = hotline("run", cwd=tmp_path, env={**TOKEN, **account})
    assert result.returncode == 2
    assert "set HOTLINE_LISTEN" in result.stderr and "Traceback" not in result.stderr
    bad_key = {**account, "WECHAT_ENCODING_AES_KEY": "too-short"}
    result = hotline("run", "--listen", "127.0.0.1:0", cwd=tmp_path, env={**TOKEN, **bad_key})
    assert result.returncode == 2 and "WECHAT_ENCODING_AES_KEY is malformed" in result.stderr


def test_content_check_passes_on_the_shipped_content() -> None:
    result = hotline("content", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "content OK: 2 languages" in result.stdout


def test_content_check_names_a_missing_key_and_a_broken_template(tmp_path: Path) -> None:
    folder = tmp_path / "content"
    shutil.copytree(PACKAGED, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    english = yaml.safe_load((folder / "locales" / "en.yaml").read_text(encoding="utf-8"))
    del english["complaint"]["employer"]
    (folder / "locales" / "en.yaml").write_text(
        yaml.safe_dump(english, allow_unicode=True), encoding="utf-8"
    )
    (folder / "templates" / "ticket_detail.html.j2").write_text(
        "{{ t('no.such.key') }}", encoding="utf-8"
    )
    result = hotline("content", "check", env={"HOTLINE_CONTENT_DIR": str(folder)})
    assert result.returncode == 1
    assert "en: missing text 'complaint.employer.ask'" in result.stdout
    assert "template ticket_detail.html.j2 in zh does not render" in result.stdout


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    result = hotline("db", "upgrade", env={"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/h.db"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "h.db").exists()


def demo_fed(tmp_path: Path, lines: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """`hotline demo` with its input from a pipe, on a database in tmp_path, no settings."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "HOTLINE_", "WECHAT_"))
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--database", database, *flags],
        input=lines,
        env=clean,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_demo_fed_from_a_pipe_answers_every_line_before_it_leaves(tmp_path: Path) -> None:
    done = demo_fed(tmp_path, "2\n:press 1\n")
    assert "I will write to you in English" in done.stdout  # the answer to "2"
    assert "Before you file a complaint" in done.stdout  # the answer to the last line


def test_the_wechat_demo_walks_a_worker_on_wechat_with_taps_and_the_staff_group(
    tmp_path: Path,
) -> None:
    done = demo_fed(tmp_path, "中文\n:press 1\n同意\n:staff\n:staff\n/help\n", "--wechat")
    assert "wechat| 好的，以后用中文和您交流。" in done.stdout
    assert "wechat| 1. 投诉 / 反映问题   [1]" in done.stdout  # tappable, shown with its [N]
    assert "(passive reply)" in done.stdout
    assert "提交前请先了解" in done.stdout  # the tap on 1 opened the complaint
    assert "您要反映的是什么问题" in done.stdout  # "同意" typed as words


def test_the_demo_has_sample_jobs_and_starts_again_on_its_database(tmp_path: Path) -> None:
    for _ in range(2):  # a second start adds the samples no second time
        done = demo_fed(tmp_path, "2\n/jobs\n1\n1\n1\nskip\n")
        assert "Warehouse picker (sample)" in done.stdout
        # the template's two rows, not added again; the kept database's updates not mistaken
        # for the new run's (the local server numbers on after them)
        assert "2 job(s) for any district" in done.stdout
