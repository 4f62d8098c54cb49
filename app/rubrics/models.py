"""Rubric versions as stored: the content is kept so records stay readable forever."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class RubricStatus(StrEnum):
    """draft: may still change; published: immutable, offered; retired: immutable, not offered."""

    draft = "draft"
    published = "published"
    retired = "retired"


class RubricVersion(SQLModel, table=True):
    """One version of a rubric; observations and ratings pin its id."""

    __tablename__ = "rubric_version"
    __table_args__ = (UniqueConstraint("slug", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=63, index=True)
    version: int
    title: str = Field(max_length=300)
    status: RubricStatus = Field(sa_type=SAEnum(RubricStatus, native_enum=False, length=20))
    content_hash: str = Field(max_length=64)
    content: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    published_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    # When it stopped being offered: work a device started before then still syncs.
    retired_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    loaded_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    change_seq: int = Field(default=0, index=True)


class RubricAction(StrEnum):
    created = "created"
    changed = "changed"
    published = "published"
    retired = "retired"


class RubricEvent(SQLModel, table=True):
    """Who created, changed, published and retired a version, and when (the audit)."""

    __tablename__ = "rubric_event"

    id: int | None = Field(default=None, primary_key=True)
    rubric_version_id: int = Field(foreign_key="rubric_version.id", index=True)
    action: RubricAction = Field(sa_type=SAEnum(RubricAction, native_enum=False, length=20))
    user_id: int | None = Field(default=None, foreign_key="user.id")
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    detail: str = Field(default="", max_length=300)
