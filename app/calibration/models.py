"""Calibration sessions: stimuli, master scores, raters (accounts or guests), ratings by round."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class SessionStatus(StrEnum):
    """open: raters rate blind; closed: no more changes; revealed: everyone sees the report."""

    open = "open"
    closed = "closed"
    revealed = "revealed"


class CalibrationSession(SQLModel, table=True):
    """A calibration session run by a facilitator on one rubric version."""

    __tablename__ = "calibration_session"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    code: str = Field(max_length=12, unique=True)
    rubric_version_id: int = Field(foreign_key="rubric_version.id", index=True)
    item_keys: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    facilitator_id: int = Field(foreign_key="user.id", index=True)
    status: SessionStatus = Field(sa_type=SAEnum(SessionStatus, native_enum=False, length=20))
    current_round: int = 1
    # Bumped by every change the report depends on but ratings (stimuli, master scores, items,
    # raters joining, status): with the ratings' aggregates, what says the report is current.
    revision: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # The latest round whose report was revealed, and when it first was: what certification
    # counts, and the date it counts from (a re-reveal of the same round moves neither).
    revealed_round: int | None = None
    revealed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class Stimulus(SQLModel, table=True):
    """What everyone rates: a transcript excerpt, or a video with a time range."""

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="calibration_session.id", index=True)
    position: int
    title: str = Field(max_length=200)
    kind: str = Field(max_length=20)  # "transcript" | "video"
    transcript: str = ""
    video_url: str = Field(default="", max_length=500)
    start_seconds: int | None = None
    end_seconds: int | None = None


class MasterScore(SQLModel, table=True):
    """The anchor score for one stimulus x item, with its rationale; hidden until reveal."""

    __tablename__ = "master_score"
    __table_args__ = (UniqueConstraint("stimulus_id", "item_key"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="calibration_session.id", index=True)
    stimulus_id: int = Field(foreign_key="stimulus.id")
    item_key: str = Field(max_length=63)
    value: int
    rationale: str = ""


class Rater(SQLModel, table=True):
    """Someone rating in a session: a signed-in user, or a guest with a display name."""

    __table_args__ = (UniqueConstraint("session_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="calibration_session.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id")
    display_name: str = Field(max_length=100)
    done_round: int = 0
    joined_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class Rating(SQLModel, table=True):
    """One rater's level for one stimulus x item in one round (changeable until done)."""

    __table_args__ = (UniqueConstraint("rater_id", "round", "stimulus_id", "item_key"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="calibration_session.id", index=True)
    round: int
    rater_id: int = Field(foreign_key="rater.id", index=True)
    stimulus_id: int = Field(foreign_key="stimulus.id")
    item_key: str = Field(max_length=63)
    value: int
    # An optional one-line "why", shown next to the distribution at reveal.
    reason: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
