"""Test harness: every database test runs on SQLite and on PostgreSQL, built by migrations.

PostgreSQL is used when WALKTHROUGH_TEST_POSTGRES_URL is set, or when a server answers on
127.0.0.1:5432. With WALKTHROUGH_TEST_REQUIRE_POSTGRES=1 (CI) a missing server is an error,
never a silent skip.
"""

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from app.accounts.models import Role, School, Teacher, User
from app.config import Settings
from app.db import make_engine, migrate
from app.main import create_app

T = TypeVar("T")

PASSWORD = "correct horse battery"
_HASH_CACHE: dict[str, str] = {}

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_admin_url() -> str | None:
    url = os.environ.get("WALKTHROUGH_TEST_POSTGRES_URL")
    candidate = url or DEFAULT_PG
    try:
        dsn = make_url(candidate).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, connect_timeout=3):
            pass
    except Exception as exc:
        if url or os.environ.get("WALKTHROUGH_TEST_REQUIRE_POSTGRES") == "1":
            raise pytest.UsageError(
                f"PostgreSQL is required but not reachable at {candidate}: {exc}"
            )
        return None
    return candidate


POSTGRES_ADMIN_URL = _postgres_admin_url()
BACKENDS = ["sqlite", "postgres"] if POSTGRES_ADMIN_URL else ["sqlite"]


def pytest_report_header(config: pytest.Config) -> str:
    if POSTGRES_ADMIN_URL:
        return f"databases: SQLite and PostgreSQL ({make_url(POSTGRES_ADMIN_URL).host})"
    return "databases: SQLite only (no PostgreSQL reachable; set WALKTHROUGH_TEST_POSTGRES_URL)"


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


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


def password_hash(password: str = PASSWORD) -> str:
    """An argon2 hash, computed once per password to keep the suite fast."""
    from app.security import hash_password

    if password not in _HASH_CACHE:
        _HASH_CACHE[password] = hash_password(password)
    return _HASH_CACHE[password]


class World:
    """A small district: two schools, teachers, and one user per role (plus a 2nd principal)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.lincoln = self._add(School(name="Lincoln Elementary", code="LIN"))
        self.roosevelt = self._add(School(name="Roosevelt Middle", code="RMS"))
        assert self.lincoln.id and self.roosevelt.id
        self.teacher = self._add(
            Teacher(name="Ana García", school_id=self.lincoln.id, grades="K,1")
        )
        self.admin = self.user(Role.admin)
        self.facilitator = self.user(Role.facilitator)
        self.principal = self.user(Role.principal, self.lincoln)
        self.observer = self.user(Role.observer, self.lincoln)
        self.other_principal = self.user(Role.principal, self.roosevelt, email="p2@example.org")
        session.commit()

    def _add(self, obj: T) -> T:
        self.session.add(obj)
        self.session.flush()
        return obj

    def user(self, role: Role, school: School | None = None, email: str | None = None) -> User:
        return self._add(
            User(
                email=email or f"{role.value}@example.org",
                name=f"{role.value.title()} Person",
                role=role,
                school_id=school.id if school else None,
                password_hash=password_hash(),
            )
        )


@pytest.fixture
def world(session: Session) -> World:
    return World(session)


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(client: TestClient, path: str = "/login") -> str:
    """The CSRF token the server put in a page's forms."""
    response = client.get(path)
    match = CSRF_RE.search(response.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: TestClient, user: User, password: str = PASSWORD) -> str:
    """Sign in as user; returns the CSRF token of the new session."""
    token = csrf_from(client)
    response = client.post(
        "/login", data={"email": user.email, "password": password, "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    return csrf_from(client, "/")


@pytest.fixture
def ready(client: TestClient, world: World) -> World:
    """The world, with the app started (rubrics loaded)."""
    return world
