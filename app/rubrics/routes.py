"""Rubric library pages, version pages, side-by-side comparison, and the JSON API."""

import hashlib
import json
from itertools import groupby
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.accounts.deps import AdminUser, CurrentUser
from app.db import Id, SessionDep
from app.errors import BadRequest, Invalid
from app.rubrics import service
from app.rubrics.loader import compare_versions, to_yaml
from app.rubrics.models import RubricStatus, RubricVersion
from app.web import render

router = APIRouter()

IMMUTABLE = "private, max-age=31536000, immutable"


@router.get("/rubrics", response_class=HTMLResponse)
def library(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Every rubric with its versions and their status."""
    rows = service.list_versions(session=session, user=user)
    rubrics = [(slug, list(versions)) for slug, versions in groupby(rows, key=lambda r: r.slug)]
    return render(request, "rubrics/library.html", {"rubrics": rubrics})


@router.get("/rubrics/{slug}/versions/{version}", response_class=HTMLResponse)
def version_page(
    request: Request, user: CurrentUser, session: SessionDep, slug: str, version: Id
) -> Response:
    """One version with every item and level descriptor."""
    row = service.get_version(session=session, user=user, slug=slug, version=version)
    siblings = [r for r in service.list_versions(session=session, user=user) if r.slug == slug]
    return render(
        request,
        "rubrics/version.html",
        {"row": row, "rubric": service.definition(row), "siblings": siblings},
    )


@router.get("/rubrics/{slug}/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    slug: str,
    a: Id | None = None,
    b: Id | None = None,
) -> Response:
    """Two versions side by side: items added, removed, reworded, scale changed."""
    siblings = [r for r in service.list_versions(session=session, user=user) if r.slug == slug]
    if len(siblings) < 2:
        raise BadRequest(f"'{slug}' has fewer than two versions you can compare.")
    a = a if a is not None else siblings[-2].version
    b = b if b is not None else siblings[-1].version
    old_row = service.get_version(session=session, user=user, slug=slug, version=a)
    new_row = service.get_version(session=session, user=user, slug=slug, version=b)
    old, new = service.definition(old_row), service.definition(new_row)
    changes = compare_versions(old, new)
    changed_keys = {c.key for c in changes}
    unchanged = [item for _s, item in new.items() if item.key not in changed_keys]
    return render(
        request,
        "rubrics/compare.html",
        {
            "slug": slug,
            "siblings": siblings,
            "old_row": old_row,
            "new_row": new_row,
            "old": old,
            "new": new,
            "changes": changes,
            "unchanged": unchanged,
        },
    )


# --- JSON API -----------------------------------------------------------------------------------


def _etag_response(request: Request, body: Any, etag: str, cache_control: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Cookie, Authorization"}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return JSONResponse(body, headers=headers)


def _summary(row: RubricVersion) -> dict[str, Any]:
    return {
        "slug": row.slug,
        "version": row.version,
        "title": row.title,
        "status": row.status.value,
        "content_hash": row.content_hash,
        "published_at": row.published_at.isoformat() if row.published_at else None,
        "url": f"/api/rubrics/{row.slug}/versions/{row.version}",
    }


@router.get("/api/rubrics", tags=["rubrics"])
def api_list(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Every rubric version you may see: slug, version, title, status and content hash."""
    body = {"rubrics": [_summary(r) for r in service.list_versions(session=session, user=user)]}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
    return _etag_response(request, body, f'W/"{digest}"', "private, no-cache")


@router.get("/api/rubrics/{slug}/versions/{version}.yaml", tags=["rubrics"])
def api_version_yaml(user: CurrentUser, session: SessionDep, slug: str, version: Id) -> Response:
    """Any version you may see in the YAML format, to keep, share or import elsewhere."""
    row = service.get_version(session=session, user=user, slug=slug, version=version)
    return Response(
        to_yaml(row.content),
        media_type="application/yaml; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{slug}-v{version}.yaml"'},
    )


@router.get("/api/rubrics/{slug}/versions/{version}", tags=["rubrics"])
def api_version(
    request: Request, user: CurrentUser, session: SessionDep, slug: str, version: Id
) -> Response:
    """The full version as JSON. Published content never changes, so it is cached for good;
    its status (which can move to retired) is in /api/rubrics, not here."""
    row = service.get_version(session=session, user=user, slug=slug, version=version)
    content = {k: v for k, v in row.content.items() if k != "status"}
    body = {"content_hash": row.content_hash, **content}
    draft = row.status == RubricStatus.draft
    return _etag_response(
        request, body, f'"{row.content_hash}"', "private, no-cache" if draft else IMMUTABLE
    )


# --- the builder's API (admins; bearer tokens of admins too) ------------------------------------

MAX_RUBRIC_BYTES = 1_000_000
_BODY = {
    "required": True,
    "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}},
    },
    "description": "A rubric in the YAML format of docs/rubrics.md (JSON is accepted too).",
}


async def _definition(request: Request) -> service.RubricDefinition:
    raw = await request.body()
    if len(raw) > MAX_RUBRIC_BYTES:
        raise Invalid(f"A rubric is at most {MAX_RUBRIC_BYTES // 1000} KB; this one is larger.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"The body is not UTF-8 text (byte {exc.start}).") from None
    if "\x00" in text:
        raise Invalid("The body contains a NUL character.")
    return service.parse(text, source="request body")


def _written(row: RubricVersion, status_code: int = 200) -> Response:
    body = {**_summary(row), "content": {k: v for k, v in row.content.items() if k != "status"}}
    headers = {"Location": f"/api/rubrics/{row.slug}/versions/{row.version}"}
    return JSONResponse(body, status_code=status_code, headers=headers)


@router.post(
    "/api/rubrics/drafts", tags=["rubrics"], status_code=201, openapi_extra={"requestBody": _BODY}
)
async def api_create_draft(request: Request, user: AdminUser, session: SessionDep) -> Response:
    """A new draft: a new rubric, or the next version of one (YAML or JSON; 422 names each
    problem's field and line; 409 while the rubric already has a draft)."""
    definition = await _definition(request)
    return _written(service.create_draft(session=session, user=user, definition=definition), 201)


@router.put(
    "/api/rubrics/{slug}/versions/{version}", tags=["rubrics"], openapi_extra={"requestBody": _BODY}
)
async def api_replace_draft(
    request: Request, user: AdminUser, session: SessionDep, slug: str, version: Id
) -> Response:
    """A draft's whole content, replaced (409 for a published or retired version)."""
    definition = await _definition(request)
    row = service.replace_draft(
        session=session, user=user, slug=slug, version=version, definition=definition
    )
    return _written(row)


@router.post("/api/rubrics/{slug}/versions/{version}/publish", tags=["rubrics"])
def api_publish(user: AdminUser, session: SessionDep, slug: str, version: Id) -> Response:
    """The draft becomes published: offered to observers, and never changed again."""
    return _written(service.publish(session=session, user=user, slug=slug, version=version))


@router.post("/api/rubrics/{slug}/versions/{version}/retire", tags=["rubrics"])
def api_retire(user: AdminUser, session: SessionDep, slug: str, version: Id) -> Response:
    """No longer offered for new observations; every record that used it still works."""
    return _written(service.retire(session=session, user=user, slug=slug, version=version))


@router.post(
    "/api/rubrics/{slug}/versions/{version}/new-version", tags=["rubrics"], status_code=201
)
def api_new_version(user: AdminUser, session: SessionDep, slug: str, version: Id) -> Response:
    """A draft copy of a published or retired version, as the rubric's next version."""
    row = service.new_version(session=session, user=user, slug=slug, version=version)
    return _written(row, 201)


@router.get("/api/rubrics/{slug}/versions/{version}/history", tags=["rubrics"])
def api_history(user: AdminUser, session: SessionDep, slug: str, version: Id) -> Response:
    """Who created, changed, published and retired this version, and when."""
    row = service.get_version(session=session, user=user, slug=slug, version=version)
    events = [
        {
            "action": event.action.value,
            "at": event.at.isoformat(),
            "user": who.email if who else None,
        }
        for event, who in service.history(session=session, row=row)
    ]
    return JSONResponse({"slug": slug, "version": version, "events": events})
