"""Users, roles, schools, the teacher roster and login throttling."""

import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Role(StrEnum):
    """What a signed-in person may do; see DESIGN.md "Roles"."""

    observer = "observer"
    principal = "principal"
    facilitator = "facilitator"
    admin = "admin"

    @property
    def label(self) -> str:
        """The role as shown to people."""
        return {
            "observer": "Observer (coach)",
            "principal": "Principal",
            "facilitator": "Facilitator",
            "admin": "Admin (data lead)",
        }[self.value]


ROLES_WITH_SCHOOL = {Role.observer, Role.principal}

GRADES = ["PK", "K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]


def _new_stamp() -> str:
    return secrets.token_urlsafe(16)


class School(SQLModel, table=True):
    """A school in the district."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    code: str | None = Field(default=None, max_length=50, unique=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class Teacher(SQLModel, table=True):
    """A teacher on the roster; matched on import by district id, else by name and school."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    school_id: int = Field(foreign_key="school.id", index=True)
    grades: str = Field(default="", max_length=100)
    district_id: str | None = Field(default=None, max_length=100, unique=True)
    # Where feedback links are e-mailed (the roster's optional email column).
    email: str | None = Field(default=None, max_length=320)
    active: bool = True
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )

    change_seq: int = Field(default=0, index=True)

    @property
    def grade_list(self) -> list[str]:
        """Grades as a list in roster order."""
        return [g for g in self.grades.split(",") if g]


class User(SQLModel, table=True):
    """A person who signs in."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str = Field(max_length=200)
    role: Role = Field(sa_type=SAEnum(Role, native_enum=False, length=20))
    school_id: int | None = Field(default=None, foreign_key="school.id", index=True)
    password_hash: str = Field(max_length=255)
    active: bool = True
    # Changing the stamp signs the user out everywhere (cookie sessions carry a copy).
    auth_stamp: str = Field(default_factory=_new_stamp, max_length=64)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    last_login_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )

    def renew_stamp(self) -> None:
        """End every existing session of this user."""
        self.auth_stamp = _new_stamp()


class UserSession(SQLModel, table=True):
    """A signed-in browser. The cookie carries a random id and this table its hash, so that
    signing out ends the session on the server: a copied cookie stops working."""

    __tablename__ = "user_session"

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True)
    )


class LoginFailure(SQLModel, table=True):
    """One failed sign-in, kept in the database so throttling holds across app servers."""

    __tablename__ = "login_failure"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, index=True)
    ip: str = Field(max_length=64, index=True)
    failed_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True)
    )


class ApiToken(SQLModel, table=True):
    """A personal token for scripts: shown once, stored only as a hash, revocable."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
