"""The sync API (push, pull, ping, session) and the page to resolve conflicting versions."""

import hashlib
import json
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from app.accounts.deps import CurrentUser, OptionalUser, ReadingUser
from app.db import Count, Id, SessionDep, parse_int, run_write
from app.errors import BadRequest, Forbidden, Invalid
from app.observations import service as observations
from app.rubrics.loader import RubricDefinition
from app.rubrics.models import RubricVersion
from app.rubrics.service import offered_versions
from app.sync import service
from app.web import APP_DIR, HTMX_FILE, csrf_token, render, templates

router = APIRouter()

MAX_BODY_BYTES = 5 * 1024 * 1024
NO_STORE = {"Cache-Control": "no-store"}


class PushRequest(BaseModel):
    """A batch from one device's outbox."""

    device_id: str = Field(max_length=100, description="A random id the device keeps.")
    account_id: int | None = Field(
        default=None,
        description="The account whose outbox this is. When given and not the signed-in "
        "account (a shared tablet whose sign-in changed mid-sync), nothing is written: 409.",
    )
    items: list[Any] = Field(
        description=f"At most {service.MAX_BATCH} PushItem objects; each is handled on its own.",
        json_schema_extra={"items": {"$ref": "#/components/schemas/PushItem"}},
    )


class PushResponse(BaseModel):
    """One result per pushed item, in the order sent."""

    results: list[service.ItemResult]


@router.post(
    "/api/sync/push",
    tags=["sync"],
    response_model=PushResponse,
    # The body is read item by item (one bad item never fails the others), so FastAPI does
    # not parse it; its schema is documented here.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PushRequest"}}
            },
        }
    },
)
async def push(request: Request, user: ReadingUser) -> Response:
    """Send observations made on a device. Each item gets its own result: created, updated,
    duplicate (already stored: an idempotent replay), conflict (the server moved on; both
    versions are kept) or rejected (with a reason). One bad item never fails the others."""
    length = parse_int(request.headers.get("content-length", ""), maximum=2**62)
    if length is not None and length > MAX_BODY_BYTES:
        return _too_large()
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _too_large()
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest("The request body is not JSON.") from exc
    except RecursionError as exc:
        raise BadRequest("The request body is nested too deeply.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise Invalid(
            'Send {"device_id": "...", "items": [{"id", "base_revision", "payload"}, ...]}.',
            details=[{"field": "items", "message": "a list of items is required"}],
        )
    device_id = data.get("device_id")
    if not isinstance(device_id, str) or not 0 < len(device_id) <= 100 or "\x00" in device_id:
        raise Invalid(
            "device_id must be a string of 1 to 100 characters.",
            details=[{"field": "device_id", "message": "required, at most 100 characters"}],
        )
    account_id = data.get("account_id")
    if account_id is not None and (type(account_id) is not int or account_id != user.id):
        return JSONResponse(
            {
                "error": "Another account",
                "detail": "These observations were recorded by another account on this device; "
                "they are sent when their author signs in. Nothing was written.",
            },
            status_code=409,
            headers=NO_STORE,
        )
    items = data["items"]
    if len(items) > service.MAX_BATCH:
        return JSONResponse(
            {
                "error": "Too many items",
                "detail": f"A push carries at most {service.MAX_BATCH} items; this one had "
                f"{len(items)}. Send the outbox in batches of {service.MAX_BATCH}.",
                "max_batch": service.MAX_BATCH,
                "max_bytes": MAX_BODY_BYTES,
            },
            status_code=413,
        )
    # Reading the items is work for a thread, not the event loop; the write then waits for
    # its turn and holds SQLite's write lock only while it writes.
    parsed = await run_in_threadpool(service.parse, items)
    results = await run_write(
        request.app.state.engine,
        lambda session: service.apply(
            session=session, user=user, device_id=device_id, parsed=parsed
        ),
    )
    return JSONResponse({"results": [r.model_dump() for r in results]}, headers=NO_STORE)


def _too_large() -> JSONResponse:
    return JSONResponse(
        {
            "error": "Too large",
            "detail": f"A push may be at most {MAX_BODY_BYTES // 1024 // 1024} MB.",
            "max_batch": service.MAX_BATCH,
            "max_bytes": MAX_BODY_BYTES,
        },
        status_code=413,
    )


@router.get("/api/sync/pull", tags=["sync"])
def pull(
    user: CurrentUser,
    session: SessionDep,
    since: Annotated[Count, Query(description="The cursor from the last pull; 0 at first.")] = 0,
) -> JSONResponse:
    """What changed for you since the cursor: your observations (with revisions and
    tombstones), open conflicts, your roster, rubric versions; and the next cursor. When
    `more` is true, pull again with the new cursor."""
    return JSONResponse(service.pull(session=session, user=user, since=since), headers=NO_STORE)


@router.get("/api/ping", tags=["sync"])
def ping() -> JSONResponse:
    """A no-cache answer that tells a device the server is really reachable."""
    return JSONResponse({"ok": True}, headers=NO_STORE)


@router.get("/api/session", tags=["sync"])
def session_info(request: Request, user: OptionalUser) -> JSONResponse:
    """Who is signed in (null when not), the CSRF token for this browser session, and the
    limits a push must keep (`sync_limits`: items and bytes per push)."""
    who = None
    if user is not None:
        who = {
            "id": user.id,
            "name": user.name,
            "role": user.role.value,
            "school_id": user.school_id,
            "label": f"{user.name} · {user.role.label}",
        }
    return JSONResponse(
        {
            "user": who,
            "csrf_token": csrf_token(request),
            "sync_limits": {"max_items": service.MAX_BATCH, "max_bytes": MAX_BODY_BYTES},
        },
        headers=NO_STORE,
    )


# --- conflicts --------------------------------------------------------------------------------


@router.get("/observations/{obs_id}/conflicts", response_class=HTMLResponse)
def conflicts_page(
    request: Request, user: CurrentUser, session: SessionDep, obs_id: uuid.UUID
) -> Response:
    """Each version a device sent after the server moved on, beside the server's, to choose."""
    obs = observations.get_own(session=session, user=user, obs_id=obs_id)
    rubric = session.get(RubricVersion, obs.rubric_version_id)
    assert rubric is not None
    definition = RubricDefinition.model_validate(rubric.content)
    current = observations.payload_of(obs, rubric).model_dump(mode="json")
    conflicts = [
        (c, observations.diff_snapshots(current, c.snapshot, definition))
        for c in service.open_conflicts(session=session, obs=obs)
    ]
    return render(request, "sync/conflicts.html", {"obs": obs, "conflicts": conflicts})


@router.post("/observations/{obs_id}/conflicts/{conflict_id}")
def resolve_conflict(
    user: CurrentUser,
    session: SessionDep,
    obs_id: uuid.UUID,
    conflict_id: Id,
    keep: Annotated[Literal["server", "device"], Form()],
) -> Response:
    """Keep the server's version or this device's; the other stays in the record."""
    obs = observations.get_own(session=session, user=user, obs_id=obs_id)
    if obs.deleted_at is not None:
        raise Forbidden("This observation was deleted.")
    service.resolve_conflict(
        session=session, user=user, obs=obs, conflict_id=conflict_id, keep=keep
    )
    return RedirectResponse(f"/observations/{obs.id}/conflicts", status_code=303)


def extra_openapi_schemas() -> dict[str, Any]:
    """Schemas the push body refers to (it is parsed item by item, so FastAPI cannot infer them)."""

    _, defs = models_json_schema(
        [(service.PushItem, "validation"), (PushRequest, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    return dict(defs.get("$defs", {}))


# --- the offline client: service worker and the device page -----------------------------------


@router.get("/sw.js", include_in_schema=False)
def service_worker(request: Request, session: SessionDep) -> Response:
    """The service worker, generated for this build and the published rubric versions."""
    versions = offered_versions(session=session)
    build = request.app.state.build_id
    fingerprint = hashlib.sha256(
        (build + "".join(v.content_hash for v in versions)).encode()
    ).hexdigest()[:12]
    static = [
        "/static/app.css",
        f"/static/{HTMX_FILE}",
        "/static/outbox-core.js",
        "/static/offline.js",
        "/static/capture.js",
        "/static/participation-core.js",
        "/static/participation.js",
        "/static/manifest.webmanifest",
        "/static/icons/icon-192.png",
    ]
    assert all((APP_DIR / s.removeprefix("/")).exists() for s in static)
    body = templates.env.get_template("sync/sw.js").render(
        cache_name=f"walkthrough-{fingerprint}",
        precache=static + [f"/capture/{v.slug}/{v.version}" for v in versions],
        personal=["/outbox", "/observations/new"],
    )
    return Response(
        body,
        media_type="application/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
    )


@router.get("/outbox", response_class=HTMLResponse)
def outbox_page(request: Request, user: CurrentUser) -> Response:
    """What this device keeps: observations waiting to be sent, drafts, storage; sync now,
    and move unsent observations by file as a last resort."""
    return render(request, "sync/outbox.html", {})
