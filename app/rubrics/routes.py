"""Rubric library pages, version pages, side-by-side comparison, and the JSON API."""

import hashlib
import json
from itertools import groupby
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.accounts.deps import CurrentUser
from app.db import Id, SessionDep
from app.errors import BadRequest
from app.rubrics import service
from app.rubrics.loader import compare_versions
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
