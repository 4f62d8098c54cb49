"""Imports every table model so the metadata (Alembic, tests) sees all of them."""

from app.accounts.models import LoginFailure, School, Teacher, User

__all__ = ["LoginFailure", "School", "Teacher", "User"]
