"""Feedback to the observed teacher: a share of an observation (what the teacher sees, behind a
secret link), what happened to it (opened, reflected, acknowledged, replies), and the e-mail
outbox that carries the link."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class FeedbackState(StrEnum):
    """Where an observation's feedback stands, in the order it gets there."""

    not_shared = "not_shared"
    shared = "shared"
    opened = "opened"
    reflected = "reflected"
    acknowledged = "acknowledged"


class FeedbackShare(SQLModel, table=True):
    """One share of an observation with its teacher: what is shown, behind which link (only
    the token's hash is kept), until when, and what the teacher did with it."""

    __tablename__ = "feedback_share"

    id: int | None = Field(default=None, primary_key=True)
    observation_id: uuid.UUID = Field(foreign_key="observation.id", index=True)
    created_by_id: int = Field(foreign_key="user.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    # What the teacher sees: these text items, the overall notes, and (or not) the levels,
    # look-fors and tallies. Evidence notes never.
    items: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    include_notes: bool = True
    include_scores: bool = False
    email: str | None = Field(default=None, max_length=320)
    first_opened_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    opens: int = 0
    reflection: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    reflected_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    acknowledged_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    acknowledged_name: str = Field(default="", max_length=200)
    acknowledged_comment: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="")
    )

    @property
    def state(self) -> FeedbackState:
        if self.acknowledged_at is not None:
            return FeedbackState.acknowledged
        if self.reflected_at is not None:
            return FeedbackState.reflected
        if self.first_opened_at is not None:
            return FeedbackState.opened
        return FeedbackState.shared


class FeedbackEventKind(StrEnum):
    shared = "shared"
    opened = "opened"
    reflected = "reflected"
    acknowledged = "acknowledged"
    replied = "replied"
    revoked = "revoked"
    emailed = "emailed"
    email_failed = "email_failed"


class FeedbackEvent(SQLModel, table=True):
    """Everything that happened to a share, in order: every open of the link (logged), the
    teacher's reflection and acknowledgement, the replies both ways, e-mail sent or failed."""

    __tablename__ = "feedback_event"

    id: int | None = Field(default=None, primary_key=True)
    share_id: int = Field(foreign_key="feedback_share.id", index=True)
    kind: FeedbackEventKind = Field(sa_type=SAEnum(FeedbackEventKind, native_enum=False, length=20))
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    # The observer or admin who did it; None: the teacher, through the link.
    user_id: int | None = Field(default=None, foreign_key="user.id")
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class MailMessage(SQLModel, table=True):
    """An e-mail waiting to go, or gone: written in the transaction that made it, sent after
    it commits, retried with backoff while the mail server is away, never sent twice."""

    __tablename__ = "mail_message"

    id: int | None = Field(default=None, primary_key=True)
    share_id: int | None = Field(default=None, foreign_key="feedback_share.id", index=True)
    to_address: str = Field(max_length=320)
    subject: str = Field(max_length=300)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    attempts: int = 0
    next_attempt_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True)
    )
    # Taken by one sender (claim_id) until then: only it may mark the message sent or failed.
    claimed_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    claim_id: str | None = Field(default=None, max_length=32)
    # The link to put in the body ({link}), encrypted with the app's secret key, and wiped once
    # the message is sent, given up or its link withdrawn: the database never holds a usable
    # link in the clear.
    sealed_link: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    gave_up_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    last_error: str = Field(default="", max_length=500)
    headers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
