"""Templates and htmx helpers: render a whole page, or one block of it for htmx."""

import contextlib
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

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


class NulInText(ValueError):
    """A request carried a NUL character in its path, query or form fields."""


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
        form = await request.form()
        for key, value in form.multi_items():
            if "\x00" in key or (isinstance(value, str) and "\x00" in value):
                raise NulInText("A form field contains a NUL character.")


HTMX_FILE = "vendor/htmx-2.0.11.min.js"


def _page_context(request: Request) -> dict[str, Any]:
    from app.security import csrf_token  # late: security imports errors, which imports us

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
