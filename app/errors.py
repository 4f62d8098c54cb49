"""The application's error types and the one handler that renders them."""

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.web import SECURITY_HEADERS, NulInText, is_htmx, templates

log = logging.getLogger("walkthrough")


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


def wants_json(request: Request) -> bool:
    """API paths and clients that ask for JSON get JSON errors; browsers get pages."""
    if request.url.path.startswith("/api/") or request.url.path == "/healthz":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_response(
    request: Request,
    status_code: int,
    title: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render an error as JSON, as an htmx message fragment, or as a full page."""
    headers = dict(headers or {})
    if wants_json(request):
        body: dict[str, Any] = {"error": title, "detail": message}
        if details:
            body["errors"] = details
        return JSONResponse(body, status_code=status_code, headers=headers)
    context = {"title": title, "message": message, "details": details or [], "status": status_code}
    if is_htmx(request):
        headers.update({"HX-Retarget": "#messages", "HX-Reswap": "innerHTML", "Vary": "HX-Request"})
        return templates.TemplateResponse(
            request, "_message.html", context, status_code=status_code, headers=headers
        )
    return templates.TemplateResponse(
        request, "errors/error.html", context, status_code=status_code, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every error, expected or not, through error_response."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        if isinstance(exc, NotAuthenticated) and not wants_json(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if is_htmx(request):
                return Response(status_code=204, headers={"HX-Redirect": f"/login?next={target}"})
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        headers = {}
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after)
        return error_response(
            request, exc.status_code, exc.title, exc.message, exc.details, headers=headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Not allowed here", 413: "Too large"}
        message = {
            404: "There is nothing at this address.",
            405: "This address does not accept that kind of request.",
        }.get(exc.status_code, str(exc.detail))
        return error_response(
            request,
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            message,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        details = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                "message": err.get("msg", "invalid"),
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
        return error_response(request, 422, "Please fix the marked fields", summary, details)

    @app.exception_handler(NulInText)
    async def _nul(request: Request, exc: NulInText) -> Response:
        return error_response(request, 400, "Check what you sent", str(exc))

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> Response:
        # The database refused a value (out of range, unstorable text) that validation let
        # through: the sender's data is at fault, and the transaction was rolled back.
        log.warning("database refused a value on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            request,
            422,
            "Please fix the marked fields",
            "A value is too large or contains characters that cannot be stored.",
        )

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(request: Request, exc: PoolTimeout) -> Response:
        # Every database connection stayed busy for the pool's whole timeout: an overloaded
        # server, not a broken one. Devices retry a 503 with backoff.
        log.warning("no database connection free on %s %s", request.method, request.url.path)
        return error_response(
            request,
            503,
            "Busy",
            "The server is very busy; please try again in a moment. Nothing was lost.",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # This answer is made outside the middleware stack: it carries the headers itself.
        headers = {k.decode(): v.decode() for k, v in SECURITY_HEADERS}
        headers["Cache-Control"] = "no-store"
        return error_response(
            request,
            500,
            "Something went wrong on our side",
            "The error has been logged. Nothing you entered on this device was lost; "
            "please try again in a moment.",
            headers=headers,
        )
