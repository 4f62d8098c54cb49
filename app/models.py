"""Imports every table model so the metadata (Alembic, tests) sees all of them."""

from app.accounts.models import ApiToken, LoginFailure, School, Teacher, User, UserSession
from app.analytics.models import ObservationItem, ObservationItemSum
from app.calibration.models import CalibrationSession, MasterScore, Rater, Rating, Stimulus
from app.exports.models import ExportLog
from app.feedback.models import FeedbackEvent, FeedbackShare, MailMessage
from app.observations.models import Observation, ObservationConflict, ObservationRevision
from app.rubrics.models import RubricVersion
from app.sync.models import ChangeCounter

__all__ = [
    "ApiToken",
    "CalibrationSession",
    "ChangeCounter",
    "ExportLog",
    "FeedbackEvent",
    "FeedbackShare",
    "LoginFailure",
    "MailMessage",
    "MasterScore",
    "Observation",
    "ObservationConflict",
    "ObservationItem",
    "ObservationItemSum",
    "ObservationRevision",
    "Rater",
    "Rating",
    "RubricVersion",
    "School",
    "Stimulus",
    "Teacher",
    "User",
    "UserSession",
]
