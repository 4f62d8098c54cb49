"""Test harness: every database test runs on SQLite and on PostgreSQL, built by migrations.

PostgreSQL is used when WALKTHROUGH_TEST_POSTGRES_URL is set, or when a server answers on
127.0.0.1:5432. With WALKTHROUGH_TEST_REQUIRE_POSTGRES=1 (CI) a missing server is an error,
never a silent skip.
"""

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from app.config import Settings
from app.db import make_engine, migrate
from app.main import create_app
from tests.helpers import (
    BACKENDS,
    POSTGRES_ADMIN_URL,
    World,
    _psycopg_dsn,
)


def pytest_report_header(config: pytest.Config) -> str:
    if POSTGRES_ADMIN_URL:
        return f"databases: SQLite and PostgreSQL ({make_url(POSTGRES_ADMIN_URL).host})"
    return "databases: SQLite only (no PostgreSQL reachable; set WALKTHROUGH_TEST_POSTGRES_URL)"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file built once by the migrations; each test gets a copy."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database made for this test run, built by the migrations, dropped after."""
    assert POSTGRES_ADMIN_URL is not None
    name = f"wt_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = _psycopg_dsn(POSTGRES_ADMIN_URL)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean, migrated database for one test, on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    engine = make_engine(url)
    with engine.begin() as conn:
        tables = conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ).scalars()
        names = ", ".join(f'"{t}"' for t in tables)
        if names:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO change_counter (id, value) VALUES (1, 0)"))
    engine.dispose()
    return url


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=db_url,
        secret_key="test-secret-key-not-for-production",
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of the app with its start-up run (rubrics loaded)."""
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def session(app: FastAPI) -> Iterator[Session]:
    """A database session for arranging and checking data (commit to make it visible)."""
    with Session(app.state.engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """Tests sign in hundreds of times: argon2id with its production cost (64 MiB, 3 passes,
    about 0.1 s a check, over a second on a loaded machine) is swapped for the same algorithm
    at its cheapest. Production's parameters are checked in test_production_hashing_cost."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    import app.security

    production = app.security.password_hasher
    assert production.hashers[0]._hasher.time_cost == 3  # production cost, before the swap
    app.security.password_hasher = PasswordHash(
        (Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),)
    )
    yield
    app.security.password_hasher = production


@pytest.fixture
def world(session: Session) -> World:
    return World(session)


@pytest.fixture
def ready(client: TestClient, world: World) -> World:
    """The world, with the app started (rubrics loaded)."""
    return world
