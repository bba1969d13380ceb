"""`hotline staff add|list|remove`: the registry of who may act on tickets (issue 3)."""

from __future__ import annotations

from tests.test_cli import hotline


def test_staff_are_added_listed_changed_and_removed(database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    added = hotline(
        "staff", "add", "5550001", "--role", "counsellor", "--alias", "Counsellor Li", env=env
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "Added Counsellor Li (counsellor), Telegram user 5550001."
    hotline("staff", "add", "5550002", "--role", "admin", "--alias", "Admin Wu", env=env)
    changed = hotline(
        "staff", "add", "5550001", "--role", "coordinator", "--alias", "Coordinator Li", env=env
    )
    assert changed.stdout.startswith("Updated Coordinator Li (coordinator)")
    listed = hotline("staff", "list", env=env).stdout.splitlines()
    assert listed == [
        "     5550002  admin        Admin Wu",
        "     5550001  coordinator  Coordinator Li",
        "2 staff member(s).",
    ]
    assert hotline("staff", "remove", "5550002", env=env).returncode == 0
    again = hotline("staff", "remove", "5550002", env=env)
    assert again.returncode == 1 and "no staff member has Telegram user id 5550002" in again.stderr
    assert hotline("staff", "list", env=env).stdout.splitlines()[-1] == "1 staff member(s)."


def test_bad_staff_arguments_are_refused(database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    not_an_id = hotline("staff", "add", "@li", "--role", "counsellor", "--alias", "Li", env=env)
    assert not_an_id.returncode == 2 and "is not a Telegram user id" in not_an_id.stderr
    no_role = hotline("staff", "add", "42", "--role", "boss", "--alias", "Li", env=env)
    assert no_role.returncode == 2 and "invalid choice: 'boss'" in no_role.stderr
