"""Imports every table model so the metadata (Alembic, tests) sees all of them."""

from app.accounts.models import LoginFailure, School, Teacher, User
from app.observations.models import Observation, ObservationRevision
from app.rubrics.models import RubricVersion

__all__ = [
    "LoginFailure",
    "Observation",
    "ObservationRevision",
    "RubricVersion",
    "School",
    "Teacher",
    "User",
]
