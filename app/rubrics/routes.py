"""Rubric library pages, version pages, side-by-side comparison, and the JSON API."""

import hashlib
import json
from itertools import groupby
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session

from app.accounts.deps import AdminUser, CurrentUser, require_roles
from app.accounts.models import Role, User
from app.db import Id, SessionDep
from app.errors import AppError, BadRequest, Forbidden, Invalid, NotFound
from app.rubrics import builder, service
from app.rubrics.crosswalk import bridged_from, links
from app.rubrics.loader import compare_versions, to_yaml
from app.rubrics.models import RubricStatus, RubricVersion
from app.web import MAX_FORM_FIELDS, render

router = APIRouter()

IMMUTABLE = "private, max-age=31536000, immutable"
MAX_RUBRIC_BYTES = 1_000_000


# Facilitators may draft (make, change, preview, import, a new version); admins also publish
# and retire.
Builder = Annotated[User, Depends(require_roles(Role.facilitator, Role.admin))]


@router.get("/rubrics", response_class=HTMLResponse)
def library(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Every rubric with its versions and their status."""
    return _library(request, session, user)


def _library(
    request: Request,
    session: Session,
    user: User,
    extra: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    """The library page (with what a failed import or new rubric brings back to it)."""
    rows = service.list_versions(session=session, user=user)
    rubrics = [(slug, list(versions)) for slug, versions in groupby(rows, key=lambda r: r.slug)]
    context = {"rubrics": rubrics, **(extra or {})}
    return render(request, "rubrics/library.html", context, status_code=status_code)


@router.get("/rubrics/{slug}/versions/{version}", response_class=HTMLResponse)
def version_page(
    request: Request, user: CurrentUser, session: SessionDep, slug: str, version: Id
) -> Response:
    """One version with every item and level descriptor (for admins: its history and what
    can be done with it: edit, preview, publish, retire, a new version, the YAML)."""
    row = service.get_version(session=session, user=user, slug=slug, version=version)
    notice = "Saved the draft." if request.query_params.get("saved") == "1" else ""
    return _version_page(request, user, session, row, notice=notice)


def _version_page(
    request: Request, user: User, session: Session, row: RubricVersion, notice: str = ""
) -> Response:
    siblings = [r for r in service.list_versions(session=session, user=user) if r.slug == row.slug]
    builds = user.role in (Role.admin, Role.facilitator)
    history = service.history(session=session, row=row) if builds else []
    return render(
        request,
        "rubrics/version.html",
        {
            "row": row,
            "rubric": service.definition(row),
            "siblings": siblings,
            "history": history,
            "notice": notice,
        },
    )


# --- the builder's pages (admins) ---------------------------------------------------------------


def _uploaded_text(upload: UploadFile | None, data: bytes, typed: str) -> str:
    if upload is not None and upload.filename and data:
        if len(data) > MAX_RUBRIC_BYTES:
            raise Invalid(
                f"A rubric is at most {MAX_RUBRIC_BYTES // 1000} KB; this file is larger."
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("The file is not UTF-8 text: save it as UTF-8 and try again.") from None
    return typed


@router.post("/rubrics/import", response_class=HTMLResponse)
async def import_draft(
    request: Request,
    user: Builder,
    session: SessionDep,
    text: Annotated[str, Form(max_length=MAX_RUBRIC_BYTES)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """A draft from a YAML file or pasted YAML; every problem is listed with its field and
    line, and the text is kept for fixing."""
    data = await file.read(MAX_RUBRIC_BYTES + 1) if file is not None else b""
    try:
        raw = _uploaded_text(file, data, text)
        row = service.create_draft(
            session=session,
            user=user,
            definition=service.parse(raw, source=_source(file), session=session),
        )
    except AppError as exc:
        context = {"problem": exc.message, "errors": exc.details, "text": text}
        return _library(request, session, user, context, exc.status_code)
    return RedirectResponse(f"/rubrics/{row.slug}/versions/{row.version}", status_code=303)


def _source(upload: UploadFile | None) -> str:
    return upload.filename if upload is not None and upload.filename else "pasted YAML"


@router.get("/rubrics/{slug}/versions/{version}/edit", response_class=HTMLResponse)
def edit_page(
    request: Request, user: Builder, session: SessionDep, slug: str, version: Id
) -> Response:
    """A draft in the YAML format, to change and save."""
    row = service.draft_of(session=session, user=user, slug=slug, version=version)
    return render(request, "rubrics/edit.html", {"row": row, "text": to_yaml(row.content)})


@router.post("/rubrics/{slug}/versions/{version}/edit", response_class=HTMLResponse)
def save_edit(
    request: Request,
    user: Builder,
    session: SessionDep,
    slug: str,
    version: Id,
    text: Annotated[str, Form(max_length=MAX_RUBRIC_BYTES)] = "",
) -> Response:
    """Save the draft; on a problem, the page comes back with the text as typed."""
    row = service.draft_of(session=session, user=user, slug=slug, version=version)
    try:
        definition = service.parse(text, source=f"{slug} v{version}", session=session)
        service.replace_draft(
            session=session, user=user, slug=slug, version=version, definition=definition
        )
    except Invalid as exc:
        context = {"row": row, "text": text, "problem": exc.message, "errors": exc.details}
        return render(request, "rubrics/edit.html", context, status_code=422)
    return RedirectResponse(f"/rubrics/{slug}/versions/{version}?saved=1", status_code=303)


@router.post("/rubrics/new", response_class=HTMLResponse)
def new_rubric(
    request: Request,
    user: Builder,
    session: SessionDep,
    slug: Annotated[str, Form(max_length=200)] = "",
    title: Annotated[str, Form(max_length=4000)] = "",
    description: Annotated[str, Form(max_length=4000)] = "",
    attribution: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """A new rubric: its name and source; it starts as a draft with one look-for, to build."""
    content = {
        "slug": slug.strip(),
        "version": 1,
        "title": title,
        "description": description,
        "status": "draft",
        "source": {"attribution": attribution},
        "sections": [
            {
                "key": "section_1",
                "title": "Section 1",
                "items": [{"key": "check_1", "kind": "check", "title": "First look-for"}],
            }
        ],
    }
    fields = {"slug": slug, "title": title, "description": description, "attribution": attribution}
    try:
        if service.rubric_exists(session=session, slug=slug.strip()):
            taken = f"'{slug.strip()}' is already a rubric: make a new version of it from its page."
            raise Invalid(
                taken, details=[{"field": "slug", "line": None, "column": None, "message": taken}]
            )
        definition = service.parse(to_yaml(content), source="the new rubric")
        row = service.create_draft(session=session, user=user, definition=definition)
    except AppError as exc:
        errors = builder.error_fields(content, exc.details or [])
        context = {
            "new_problem": exc.message,
            "new_errors": {k.removeprefix("source."): v for k, v in errors.items()},
            "new": fields,
        }
        return _library(request, session, user, context, exc.status_code)
    return RedirectResponse(f"/rubrics/{row.slug}/versions/{row.version}/build", status_code=303)


@router.get("/rubrics/{slug}/versions/{version}/build", response_class=HTMLResponse)
def build_page(
    request: Request, user: Builder, session: SessionDep, slug: str, version: Id
) -> Response:
    """The draft as a form: sections, items of every kind, levels, prompts, order, and each
    item's crosswalk to the version before."""
    row = service.draft_of(session=session, user=user, slug=slug, version=version)
    return _builder(request, session, row, dict(row.content))


@router.post("/rubrics/{slug}/versions/{version}/build", response_class=HTMLResponse)
async def build_step(
    request: Request, user: Builder, session: SessionDep, slug: str, version: Id
) -> Response:
    """Save the draft, or take one step (add, remove, move) and show the form again, as typed;
    on a problem, each message is shown beside its field and nothing typed is lost."""
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    step = next((v for k, v in fields if k == "step"), "save")
    row = service.draft_of(session=session, user=user, slug=slug, version=version)
    content = builder.form_to_content([(k, v) for k, v in fields if k != "step"])
    content.update(slug=row.slug, version=row.version, status="draft")
    if step != "save":
        done = builder.apply(content, step)
        builder.tidy(content)
        return _builder(request, session, row, content, notice=done, unsaved=True)
    try:
        definition = service.parse(to_yaml(content), source=f"{slug} v{version}", session=session)
        service.replace_draft(
            session=session, user=user, slug=slug, version=version, definition=definition
        )
    except Invalid as exc:
        return _builder(
            request,
            session,
            row,
            content,
            problem=exc.message,
            errors=exc.details or [],
            unsaved=True,
            status_code=422,
        )
    return RedirectResponse(f"/rubrics/{slug}/versions/{version}?saved=1", status_code=303)


def _builder(
    request: Request,
    session: Session,
    row: RubricVersion,
    content: dict[str, Any],
    *,
    notice: str | None = None,
    problem: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    unsaved: bool = False,
    status_code: int = 200,
) -> Response:
    by_field = builder.error_fields(content, errors or [])
    shown = builder.input_names(content)
    elsewhere = [
        {"field": f, "message": m} for f, msgs in by_field.items() if f not in shown for m in msgs
    ]
    crosswalk = content.get("crosswalk")
    earlier = service.earlier_versions(session=session, row=row)
    from_version = crosswalk.get("from_version") if isinstance(crosswalk, dict) else None
    previous = earlier.get(from_version) if isinstance(from_version, int) else None
    return render(
        request,
        "rubrics/builder.html",
        {
            "row": row,
            "c": content,
            "cw": builder.crosswalk_of(content) if isinstance(crosswalk, dict) else None,
            "previous_keys": [i.key for _s, i in service.definition(previous).items()]
            if previous is not None
            else [],
            "errs": by_field,
            "elsewhere": elsewhere,
            "notice": notice,
            "problem": problem,
            "unsaved": unsaved,
            "kinds": builder.KINDS,
            "kind_names": builder.KIND_NAMES,
            "code_lists": builder.CODE_LISTS,
        },
        status_code=status_code,
    )


@router.get("/rubrics/{slug}/versions/{version}/preview", response_class=HTMLResponse)
def preview_page(
    request: Request, user: Builder, session: SessionDep, slug: str, version: Id
) -> Response:
    """The version as observers will see it: the real capture page, nothing saved."""
    row = service.get_version(session=session, user=user, slug=slug, version=version)
    context = {
        "obs": None,
        "rubric": row,
        "definition": service.definition(row),
        "state": {
            "values": {},
            "notes": [],
            "tags": "",
            "overall_notes": "",
            "duration_minutes": "",
        },
        "errors": {},
        "shell": True,
        "preview": True,
    }
    return render(request, "observations/capture.html", context)


@router.get("/rubrics/{slug}/versions/{version}/{step}", response_class=HTMLResponse)
def confirm_page(
    request: Request, user: Builder, session: SessionDep, slug: str, version: Id, step: str
) -> Response:
    """Publish or retire, after saying what it changes."""
    if step not in ("publish", "retire"):
        raise NotFound("There is no such page.")
    _admin_step(user, step)
    row = service.get_version(session=session, user=user, slug=slug, version=version)
    items = sum(1 for _ in service.definition(row).items())
    return render(request, "rubrics/confirm.html", {"row": row, "step": step, "items": items})


@router.post("/rubrics/{slug}/versions/{version}/{step}", response_class=HTMLResponse)
def take_step(
    request: Request, user: Builder, session: SessionDep, slug: str, version: Id, step: str
) -> Response:
    """Publish, retire, or make a new version (the same service steps as the API)."""
    _admin_step(user, step)
    if step == "publish":
        row = service.publish(session=session, user=user, slug=slug, version=version)
        note = (
            f"Published {row.title} v{row.version}: observers get it, and it never changes again."
        )
    elif step == "retire":
        row = service.retire(session=session, user=user, slug=slug, version=version)
        note = f"Retired {row.title} v{row.version}: no longer offered; its records stay."
    elif step == "new-version":
        row = service.new_version(session=session, user=user, slug=slug, version=version)
        return RedirectResponse(f"/rubrics/{row.slug}/versions/{row.version}/edit", status_code=303)
    else:
        raise NotFound("There is no such page.")
    return _version_page(request, user, session, row, notice=note)


def _admin_step(user: User, step: str) -> None:
    if step in ("publish", "retire") and user.role != Role.admin:
        raise Forbidden(
            "Facilitators draft rubric versions; publishing and retiring are for district admins."
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
    # The crosswalk, when the newer version bridges from the older one (stated, or read
    # from the keys for a version without one).
    bridge = None
    if (
        new_row.version > old_row.version
        and bridged_from(new, [s.version for s in siblings if s.version < new_row.version])
        == old_row.version
    ):
        titles = {item.key: item.title for _s, item in old.items()}
        bridge = [(link, titles.get(link.previous or "")) for link in links(new, old)]
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
            "bridge": bridge,
            "new_titles": {item.key: item.title for _s, item in new.items()},
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

_BODY = {
    "required": True,
    "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}},
    },
    "description": "A rubric in the YAML format of docs/rubrics.md (JSON is accepted too).",
}


async def _definition(request: Request, session: Session) -> service.RubricDefinition:
    raw = await request.body()
    if len(raw) > MAX_RUBRIC_BYTES:
        raise Invalid(f"A rubric is at most {MAX_RUBRIC_BYTES // 1000} KB; this one is larger.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"The body is not UTF-8 text (byte {exc.start}).") from None
    if "\x00" in text:
        raise Invalid("The body contains a NUL character.")
    return service.parse(text, source="request body", session=session)


def _written(row: RubricVersion, status_code: int = 200) -> Response:
    body = {**_summary(row), "content": {k: v for k, v in row.content.items() if k != "status"}}
    headers = {"Location": f"/api/rubrics/{row.slug}/versions/{row.version}"}
    return JSONResponse(body, status_code=status_code, headers=headers)


@router.post(
    "/api/rubrics/drafts", tags=["rubrics"], status_code=201, openapi_extra={"requestBody": _BODY}
)
async def api_create_draft(request: Request, user: Builder, session: SessionDep) -> Response:
    """A new draft: a new rubric, or the next version of one (YAML or JSON; 422 names each
    problem's field and line; 409 while the rubric already has a draft)."""
    definition = await _definition(request, session)
    return _written(service.create_draft(session=session, user=user, definition=definition), 201)


@router.put(
    "/api/rubrics/{slug}/versions/{version}", tags=["rubrics"], openapi_extra={"requestBody": _BODY}
)
async def api_replace_draft(
    request: Request, user: Builder, session: SessionDep, slug: str, version: Id
) -> Response:
    """A draft's whole content, replaced (409 for a published or retired version)."""
    definition = await _definition(request, session)
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
def api_new_version(user: Builder, session: SessionDep, slug: str, version: Id) -> Response:
    """A draft copy of a published or retired version, as the rubric's next version."""
    row = service.new_version(session=session, user=user, slug=slug, version=version)
    return _written(row, 201)


@router.get("/api/rubrics/{slug}/versions/{version}/history", tags=["rubrics"])
def api_history(user: Builder, session: SessionDep, slug: str, version: Id) -> Response:
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
