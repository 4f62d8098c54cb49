"""Templates and htmx helpers: render a whole page, or one block of it for htmx."""

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
