"""The walkthrough command: create-admin and demo data."""

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from app import cli
from app.accounts.models import Role, School, Teacher, User
from app.config import get_settings
from app.db import make_engine


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WALKTHROUGH_DATABASE_URL", db_url)
    monkeypatch.setenv("WALKTHROUGH_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("WALKTHROUGH_ENV", "test")
    get_settings.cache_clear()
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
    get_settings.cache_clear()


def _count(engine, model) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_create_admin_makes_an_admin(cli_env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADMIN_PW", "a strong admin password")
    code = cli.main(
        [
            "create-admin",
            "--email",
            "Lead@District.org",
            "--name",
            "Lead",
            "--password-env",
            "ADMIN_PW",
        ]
    )
    assert code == 0
    with Session(cli_env) as s:
        user = s.exec(select(User)).one()
    assert (user.email, user.role, user.school_id) == ("lead@district.org", Role.admin, None)


def test_create_admin_reports_a_weak_password(cli_env, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADMIN_PW", "short")
    code = cli.main(
        ["create-admin", "--email", "a@b.org", "--name", "A", "--password-env", "ADMIN_PW"]
    )
    assert code == 1
    assert "password: Use at least 10 characters." in capsys.readouterr().err
    assert _count(cli_env, User) == 0


def test_demo_data_is_idempotent(cli_env) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["demo-data"]) == 0
    counts = (_count(cli_env, School), _count(cli_env, Teacher), _count(cli_env, User))
    assert counts == (2, 8, 5)
    assert cli.main(["demo-data"]) == 0
    assert (_count(cli_env, School), _count(cli_env, Teacher), _count(cli_env, User)) == counts
    with Session(cli_env) as s:
        roles = {u.role for u in s.exec(select(User))}
    assert roles == set(Role)


def test_demo_data_is_refused_in_production(cli_env, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WALKTHROUGH_ENV", "production")
    get_settings.cache_clear()
    assert cli.main(["demo-data"]) == 2
    assert "never loaded in production" in capsys.readouterr().err
    assert _count(cli_env, User) == 0


def test_migrate_says_what_it_did(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WALKTHROUGH_DATABASE_URL", f"sqlite:///{tmp_path}/new.db")
    monkeypatch.setenv("WALKTHROUGH_SECRET_KEY", "cli-test-secret")
    monkeypatch.setenv("WALKTHROUGH_ENV", "test")
    get_settings.cache_clear()
    try:
        assert cli.main(["migrate"]) == 0
        assert capsys.readouterr().out.startswith("Database created (schema revision ")
        assert cli.main(["migrate"]) == 0
        assert capsys.readouterr().out.startswith("Database is up to date (schema revision ")
    finally:
        get_settings.cache_clear()


def test_the_serve_script_steps_work_in_a_fresh_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What scripts/serve runs, each in a process of its own as there (in-process tests have
    every model imported already; a lone command may not): migrate, rubrics sync, demo data."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "WALKTHROUGH_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db",
        "WALKTHROUGH_SECRET_KEY": "cli-test-secret",
        "WALKTHROUGH_ENV": "development",
    }
    for step in (["migrate"], ["rubrics", "sync"], ["demo-data"], ["rubrics", "sync"]):
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())", *step],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (step, done.stdout, done.stderr)
