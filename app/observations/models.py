"""Observations (one per classroom visit) and their revisions (every save, kept forever)."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class ObservationStatus(StrEnum):
    """A draft may still change freely; a submitted observation is amended by new revisions."""

    draft = "draft"
    submitted = "submitted"


class Observation(SQLModel, table=True):
    """The current state of one classroom visit. The id is minted by the observer's device."""

    id: uuid.UUID = Field(primary_key=True)
    observer_id: int = Field(foreign_key="user.id", index=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    teacher_id: int | None = Field(default=None, foreign_key="teacher.id", index=True)
    teacher_name: str = Field(max_length=200)
    grade: str = Field(default="", max_length=10)
    subject: str = Field(default="", max_length=200)
    rubric_version_id: int = Field(foreign_key="rubric_version.id", index=True)
    observed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    duration_seconds: int | None = None
    status: ObservationStatus = Field(
        sa_type=SAEnum(ObservationStatus, native_enum=False, length=20)
    )
    values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    notes: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    overall_notes: str = ""
    revision: int = 1
    content_hash: str = Field(max_length=64)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    submitted_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    deleted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    deleted_by_id: int | None = Field(default=None, foreign_key="user.id")
    # Position in the server's change sequence (see app.db.next_seq), for pull.
    change_seq: int = Field(default=0, index=True)


class ObservationRevision(SQLModel, table=True):
    """A full snapshot of an observation as saved at one revision, with who saved it."""

    __tablename__ = "observation_revision"
    __table_args__ = (UniqueConstraint("observation_id", "revision"),)

    id: int | None = Field(default=None, primary_key=True)
    observation_id: uuid.UUID = Field(foreign_key="observation.id", index=True)
    revision: int
    author_id: int = Field(foreign_key="user.id")
    status: ObservationStatus = Field(
        sa_type=SAEnum(ObservationStatus, native_enum=False, length=20)
    )
    snapshot: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    content_hash: str = Field(max_length=64)
    device_id: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class ObservationConflict(SQLModel, table=True):
    """A version pushed from a device that had not seen the server's newer revision.

    It is kept (never dropped) until its observer resolves it: keep the server's version, or
    apply this one as a new revision.
    """

    __tablename__ = "observation_conflict"

    id: int | None = Field(default=None, primary_key=True)
    observation_id: uuid.UUID = Field(foreign_key="observation.id", index=True)
    base_revision: int
    server_revision: int
    snapshot: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    content_hash: str = Field(max_length=64)
    device_id: str | None = Field(default=None, max_length=100)
    received_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    resolved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    resolution: str | None = Field(default=None, max_length=20)


def new_observation_id() -> uuid.UUID:
    """A fresh random id (the browser mints its own with crypto.randomUUID())."""
    return uuid.uuid4()
