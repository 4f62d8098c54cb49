"""Helpers for tests (fixtures stay in conftest.py): the databases the suite runs on, a small
district (World), signing in over HTTP, and observations made through the write path."""

import os
import re
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from app.accounts.models import Role, School, Teacher, User
from app.observations import service
from app.observations.models import Observation, ObservationStatus
from app.rubrics.models import RubricVersion

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


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


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


def make_observation(
    session: Session,
    user: User,
    *,
    teacher: Teacher | None = None,
    teacher_name: str = "",
    school_id: int | None = None,
    rubric: tuple[str, int] = ("discourse-walkthrough", 1),
    values: dict[str, Any] | None = None,
    status: str = "submitted",
    observed_at: datetime | None = None,
    duration_seconds: int | None = None,
    grade: str = "",
    subject: str = "",
) -> Observation:
    """An observation made through the one write path, as any client makes it; committed."""
    payload = service.ObservationPayload(
        rubric_slug=rubric[0],
        rubric_version=rubric[1],
        teacher_id=teacher.id if teacher else None,
        teacher_name=teacher_name,
        school_id=school_id,
        observed_at=observed_at or datetime(2026, 11, 2, 15, 0, tzinfo=UTC),
        duration_seconds=duration_seconds,
        grade=grade,
        subject=subject,
        status=ObservationStatus(status),
        values={k: service.ItemValue.model_validate(v) for k, v in (values or {}).items()},
    )
    outcome = service.write_one(
        session=session,
        author=user,
        device=None,
        obs_id=uuid.uuid4(),
        base_revision=0,
        payload=payload,
    )
    assert outcome.status == "created", outcome
    obs = session.get(Observation, outcome.id)
    assert obs is not None
    session.commit()
    return obs


def walkthrough_rubric(session: Session) -> RubricVersion:
    """The shipped Discourse Walk-Through v1, as loaded at start-up."""
    return session.exec(
        select(RubricVersion).where(
            RubricVersion.slug == "discourse-walkthrough", RubricVersion.version == 1
        )
    ).one()
