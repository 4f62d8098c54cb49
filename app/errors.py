"""The application's error types: exception classes only (app.web renders them)."""

from typing import Any


class AppError(Exception):
    """An error a person can act on; status and message reach them as-is."""

    status_code = 400
    title = "Something is not right"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class BadRequest(AppError):
    status_code = 400
    title = "Check what you sent"


class NotAuthenticated(AppError):
    status_code = 401
    title = "Please sign in"


class Forbidden(AppError):
    status_code = 403
    title = "Not allowed"


class NotFound(AppError):
    status_code = 404
    title = "Not found"


class Conflict(AppError):
    status_code = 409
    title = "Already changed"


class Invalid(AppError):
    status_code = 422
    title = "Please fix the marked fields"


class ServiceUnavailable(AppError):
    status_code = 503
    title = "Busy"


class TooManyRequests(AppError):
    status_code = 429
    title = "Too many attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NulInText(ValueError):
    """A request carried a NUL character in its path, query or form fields."""
