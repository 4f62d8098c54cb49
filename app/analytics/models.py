"""The analytics table: one row per observation x rubric item of the observation's current
revision, written by the one write path in the same transaction as the observation, so that
dashboards and trends aggregate in SQL however many observations a district has."""

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime


class ObservationItem(SQLModel, table=True):
    """One item of one observation as it stands now, with the keys dashboards filter on."""

    __tablename__ = "observation_item"
    __table_args__ = (
        # The dashboards' scan: one rubric version's submitted visits over a date range.
        Index(
            "ix_observation_item_rubric_version_id_status_observed_on",
            "rubric_version_id",
            "status",
            "observed_on",
        ),
        Index("ix_observation_item_school_id_observed_on", "school_id", "observed_on"),
    )

    observation_id: uuid.UUID = Field(foreign_key="observation.id", primary_key=True)
    item_key: str = Field(primary_key=True, max_length=100)
    kind: str = Field(max_length=20)
    # scale: the level; count: the tally; check: 1 seen, 0 not; participation: the students'
    # contributions; text and unanswered: None.
    value: int | None = Field(default=None, sa_type=BigInteger)  # tallies reach 2^53
    not_observed: bool = False
    # Answered at all: a level, a tally, a tick either way, non-empty text, or "not observed".
    filled: bool = False
    has_evidence: bool = False
    # Copied from the observation: what the dashboards group and filter on.
    rubric_version_id: int = Field(foreign_key="rubric_version.id")
    status: str = Field(max_length=20)
    deleted: bool = False
    school_id: int = Field(foreign_key="school.id")
    teacher_id: int | None = Field(default=None, foreign_key="teacher.id", index=True)
    observer_id: int = Field(foreign_key="user.id", index=True)
    grade: str = Field(default="", max_length=10)
    subject: str = Field(default="", max_length=200)
    observed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # The visit's day, and the first day of its week (Monday) and month, in the district's
    # time zone: what "November" means to the district, not to UTC.
    observed_on: date
    observed_week: date
    observed_month: date
    duration_seconds: int | None = None
    # A participation map (None for other kinds): students on the map, how many spoke, and
    # the most active 3 students' share and the Gini coefficient in thousandths (None when
    # nobody spoke).
    students: int | None = None
    speakers: int | None = None
    top_share: int | None = None
    gini: int | None = None


class ObservationItemSum(SQLModel, table=True):
    """The analytics rows of submitted, undeleted visits summed per rubric version, item (and
    level, for scale items) and period, along one dimension: what district-wide dashboards read
    instead of every row. Kept by the write path with additive upserts.

    dim "school" and "observer" sum by month (`week` equals `month`); "grade" and "district"
    by the part of a week that falls in one month, so both whole weeks and whole months add up.
    """

    __tablename__ = "observation_item_sum"

    rubric_version_id: int = Field(foreign_key="rubric_version.id", primary_key=True)
    dim: str = Field(primary_key=True, max_length=10)
    dim_key: str = Field(primary_key=True, max_length=20)  # school id, observer id, grade, ""
    month: date = Field(primary_key=True)
    week: date = Field(primary_key=True)
    item_key: str = Field(primary_key=True, max_length=100)
    # 0: a level (in `level`); 1: not observed; 2: no level (unanswered, or not a scale item).
    bucket: int = Field(primary_key=True)
    level: int = Field(primary_key=True, sa_type=BigInteger)
    visits: int = 0
    total: int = Field(default=0, sa_type=BigInteger)
    timed_total: int = Field(default=0, sa_type=BigInteger)
    timed_seconds: int = Field(default=0, sa_type=BigInteger)
    timed_visits: int = 0
    filled: int = 0
    evidence: int = 0
    # Participation maps: students and speakers summed, and over the lessons where someone
    # spoke (`spoken`), the top-3 shares and Gini coefficients in thousandths summed.
    students: int = Field(default=0, sa_type=BigInteger)
    speakers: int = Field(default=0, sa_type=BigInteger)
    spoken: int = 0
    top_share: int = Field(default=0, sa_type=BigInteger)
    gini: int = Field(default=0, sa_type=BigInteger)
