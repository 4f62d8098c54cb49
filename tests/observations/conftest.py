"""Helpers for observation tests: make observations through the service, like any client."""

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from app.accounts.models import Teacher, User
from app.observations import service
from app.observations.models import Observation, ObservationStatus


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
) -> Observation:
    payload = service.ObservationPayload(
        rubric_slug=rubric[0],
        rubric_version=rubric[1],
        teacher_id=teacher.id if teacher else None,
        teacher_name=teacher_name,
        school_id=school_id,
        observed_at=observed_at or datetime(2026, 11, 2, 15, 0, tzinfo=UTC),
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
