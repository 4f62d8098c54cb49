"""Templates and htmx helpers: render a whole page, or one block of it for htmx; the CSRF
token pages carry; and the one handler that renders every error."""

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from sqlalchemy.exc import DataError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import AppError, NotAuthenticated, NulInText, TooManyRequests

log = logging.getLogger("walkthrough")

APP_DIR = Path(__file__).resolve().parent

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    ),
]


async def reject_nul_text(request: Request) -> None:
    """App-wide dependency: no text from a request may hold NUL (PostgreSQL cannot store it,
    and no person types it). JSON bodies are checked by their models."""
    if "\x00" in request.url.path or b"%00" in request.scope.get("query_string", b"").lower():
        raise NulInText("The address contains a NUL character.")
    content_type = request.headers.get("content-type", "")
    if request.method in ("POST", "PUT", "PATCH") and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        with contextlib.suppress(RuntimeError):  # FastAPI may have read it as a form
            await request.body()  # kept, so a route that reads the raw body still can
        form = await request.form(max_fields=MAX_FORM_FIELDS)
        for key, value in form.multi_items():
            if "\x00" in key or (isinstance(value, str) and "\x00" in value):
                raise NulInText("A form field contains a NUL character.")


# The most fields a form may have (the first reader of a form sets it for every later one):
# the rubric builder sends about four per level of every scale item.
MAX_FORM_FIELDS = 5000

HTMX_FILE = "vendor/htmx-2.0.11.min.js"
# Vendored by scripts/vendor-swagger-ui into app/static/vendor/ (version in the file names).
SWAGGER_UI_VERSION = "5.35.0"


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser session, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def _page_context(request: Request) -> dict[str, Any]:
    return {
        "current_user": getattr(request.state, "user", None),
        "csrf_token": csrf_token(request) if "session" in request.scope else "",
        "district_name": request.app.state.settings.district_name,
    }


templates = Jinja2Templates(directory=APP_DIR / "templates", context_processors=[_page_context])
templates.env.globals["HTMX_FILE"] = HTMX_FILE


@pass_context
def _localtime(context: Any, value: datetime | None, fmt: str = "%a %-d %b %Y, %H:%M") -> str:
    """A UTC timestamp shown in the district's time zone."""
    if value is None:
        return ""
    request: Request = context["request"]
    return value.astimezone(ZoneInfo(request.app.state.settings.timezone)).strftime(fmt)


templates.env.filters["localtime"] = _localtime


def half_up(value: float | None, places: int = 2, percent: bool = False) -> str:
    """A figure rounded as the browser rounds it (halves up: JavaScript's toFixed and
    Math.round), so a page and the capture page beside it never differ by the last digit:
    0.125 is 0.13, and 12.5% is 13%. None is "—"."""
    if value is None:
        return "—"
    exact = Decimal(value) * (100 if percent else 1)
    shown = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{shown}%" if percent else str(shown)


templates.env.filters["half_up"] = half_up
templates.env.filters["percent"] = lambda value: half_up(value, 0, percent=True)


def compute_build_id() -> str:
    """A short hash of the static files and templates: what devices cache for offline use."""
    digest = hashlib.sha256()
    for folder in ("static", "templates"):
        for path in sorted((APP_DIR / folder).rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(APP_DIR)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def is_htmx(request: Request) -> bool:
    """True for requests made by htmx (HX-Request header)."""
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page; for an htmx request naming a block, render only that block."""
    context = dict(context or {})
    headers = {"Vary": "HX-Request"}
    if block and is_htmx(request):
        template = templates.env.get_template(name)
        full = {"request": request, **_page_context(request), **context}
        html = "".join(template.blocks[block](template.new_context(full)))
        return HTMLResponse(html, status_code=status_code, headers=headers)
    response = templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=headers
    )
    assert isinstance(response, HTMLResponse)
    return response


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


def page_url(request: Request) -> Callable[[str], str]:
    """The address of the same list at another page cursor (the filters kept)."""

    def at(cursor: str) -> str:
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        return f"{request.url.path}?{urlencode([*kept, ('cursor', cursor)])}"

    return at
