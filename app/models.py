"""Imports every table model so the metadata (Alembic, tests) sees all of them."""

from app.accounts.models import ApiToken, LoginFailure, School, Teacher, User
from app.observations.models import Observation, ObservationConflict, ObservationRevision
from app.rubrics.models import RubricVersion
from app.sync.models import ChangeCounter

__all__ = [
    "ApiToken",
    "ChangeCounter",
    "LoginFailure",
    "Observation",
    "ObservationConflict",
    "ObservationRevision",
    "RubricVersion",
    "School",
    "Teacher",
    "User",
]
