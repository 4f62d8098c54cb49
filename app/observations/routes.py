"""Observation pages: start, capture, review and submit, read, history, lists, teacher pages
and tombstones."""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from app.accounts import service as accounts
from app.accounts.deps import CurrentUser, require_roles
from app.accounts.models import GRADES, Role, Teacher, User
from app.db import Count, Id, SessionDep, parse_day, parse_id, parse_int
from app.errors import Forbidden, NotFound
from app.feedback import service as feedback
from app.feedback.models import FeedbackState
from app.observations import participation, service
from app.observations.models import Observation, ObservationStatus, new_observation_id
from app.rubrics import service as rubrics
from app.rubrics.models import RubricStatus, RubricVersion
from app.web import page_url, render, templates

router = APIRouter()
# A participation map's figures, for every page that shows a recorded map (observation, review,
# print, and the teacher's shared view).
templates.env.globals["participation_summary"] = participation.summarise
Recorder = Annotated[User, Depends(require_roles(Role.observer, Role.principal, Role.admin))]


def _tz(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.settings.timezone)


def _local_input(dt: datetime, tz: ZoneInfo) -> str:
    return dt.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


def _parse_local(raw: str, offset_minutes: str, tz: ZoneInfo) -> datetime | None:
    """A datetime-local value with the browser's offset (JS), else the district time zone."""
    try:
        naive = datetime.strptime(raw.strip()[:16], "%Y-%m-%dT%H:%M")
    except ValueError:
        return None
    offset = parse_int(offset_minutes, minimum=-18 * 60, maximum=18 * 60)
    if offset is not None:
        # getTimezoneOffset() is minutes *behind* UTC: 360 means UTC-06:00.
        return naive.replace(tzinfo=timezone(timedelta(minutes=-offset)))
    return naive.replace(tzinfo=tz)


def _school_scoped(user: User) -> bool:
    return user.role in (Role.observer, Role.principal)


def _teachers_for(session: Session, user: User) -> list[Teacher]:
    """The whole roster a school-based observer picks from (and keeps offline); a district's
    roster is searched on the server instead (see /api/roster/search)."""
    if not _school_scoped(user):
        return []
    return [
        t for t in accounts.list_teachers(session=session, school_id=user.school_id) if t.active
    ]


# --- start ---------------------------------------------------------------------------------------


@router.get("/observations/new", response_class=HTMLResponse)
def start_page(request: Request, user: Recorder, session: SessionDep) -> Response:
    """Start a walk-through: teacher, rubric, grade and subject; the time defaults to now."""
    return _start_page(request, session, user, {}, {})


def _start_page(
    request: Request,
    session: Session,
    user: User,
    form: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    offered = rubrics.offered_versions(session=session)
    return render(
        request,
        "observations/start.html",
        {
            "teachers": _teachers_for(session, user),
            "schools": accounts.list_schools(session=session),
            "school_names": {s.id: s.name for s in accounts.list_schools(session=session)},
            "roster": [
                {"id": t.id, "name": t.name, "school_id": t.school_id}
                for t in _teachers_for(session, user)
            ],
            "rubrics": offered,
            "grades": GRADES,
            "form": {
                "observed_at": _local_input(datetime.now(UTC), _tz(request)),
                "id": str(new_observation_id()),
                "school_id": str(user.school_id or ""),
                "rubric": f"{offered[0].slug}:{offered[0].version}" if offered else "",
                **form,
            },
            "errors": errors,
            "fixed_school": _school_scoped(user),
        },
        status_code=status_code,
    )


@router.post("/observations", response_class=HTMLResponse)
async def start(request: Request, user: Recorder, session: SessionDep) -> Response:
    """Create the draft and open the capture page."""
    form = await request.form()
    raw = {
        k: str(form.get(k, ""))
        for k in (
            "id",
            "teacher",
            "school_id",
            "rubric",
            "grade",
            "subject",
            "observed_at",
            "tz_offset",
        )
    }
    errors: dict[str, str] = {}
    try:
        obs_id = uuid.UUID(raw["id"])
    except ValueError:
        obs_id = new_observation_id()
    slug, _, version = raw["rubric"].partition(":")
    observed_at = _parse_local(raw["observed_at"], raw["tz_offset"], _tz(request))
    if observed_at is None:
        errors["observed_at"] = "Enter the date and time of the visit."
    version_number = parse_id(version)
    if version_number is None:
        errors["rubric"] = "Choose a rubric."
    school_id = parse_id(raw["school_id"]) or user.school_id
    if not raw["teacher"].strip():
        errors["teacher"] = "Choose a teacher or type their name."
    if errors:
        return _start_page(request, session, user, raw, errors, status_code=422)
    assert observed_at is not None and version_number is not None
    started = service.start(
        session=session,
        author=user,
        obs_id=obs_id,
        teachers=accounts.teachers_named(
            session=session,
            name=raw["teacher"],
            school_id=user.school_id if _school_scoped(user) else None,
        ),
        teacher_name=raw["teacher"],
        school_id=school_id,
        rubric_slug=slug,
        rubric_version=version_number,
        grade=raw["grade"],
        subject=raw["subject"],
        observed_at=observed_at,
    )
    if started.outcome is not None and started.outcome.status == "rejected":
        outcome = started.outcome
        errors = {d["field"]: d["message"] for d in outcome.details} or {
            "teacher": outcome.reason or "The observation could not be started."
        }
        return _start_page(request, session, user, raw, errors, status_code=422)
    return RedirectResponse(f"/observations/{started.obs_id}/edit", status_code=303)


@router.get("/api/roster/search")
def roster_search(user: Recorder, session: SessionDep, q: str = "", school_id: str = "") -> Any:
    """Active teachers whose name or district id contains q (20 at most, with how many match),
    within the roster this user may observe: for a district's roster, searched as one types."""
    school = user.school_id if _school_scoped(user) else parse_id(school_id)
    page = accounts.page_teachers(
        session=session, school_id=school, q=q[:100], active_only=True, size=20
    )
    names = {s.id: s.name for s in accounts.list_schools(session=session)}
    return {
        "total": page.total,
        "teachers": [
            {
                "id": t.id,
                "name": t.name,
                "school_id": t.school_id,
                "school": names.get(t.school_id, ""),
                "grades": t.grade_list,
            }
            for t in page.items
        ],
    }


# --- capture -------------------------------------------------------------------------------------


def _capture_context(
    session: Session, obs: Observation, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    rubric = session.get(RubricVersion, obs.rubric_version_id)
    assert rubric is not None
    definition = rubrics.definition(rubric)
    return {
        "obs": obs,
        "rubric": rubric,
        "definition": definition,
        "state": state or _state_from(obs),
        "errors": {},
        "server_payload": service.payload_of(obs, rubric).snapshot(),
    }


def _state_from(obs: Observation) -> dict[str, Any]:
    """The form's fields as strings, from a saved observation."""
    values: dict[str, dict[str, str]] = {}
    for key, entry in obs.values.items():
        value = entry.get("value")
        if entry.get("not_observed"):
            shown = "na"
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, dict):  # a participation map travels as JSON in the form
            shown = json.dumps(value, separators=(",", ":"))
        else:
            shown = "" if value is None else str(value)
        values[key] = {"value": shown, "evidence": entry.get("evidence", "")}
    return {
        "values": values,
        "notes": obs.notes,
        "tags": ", ".join(obs.tags),
        "overall_notes": obs.overall_notes,
        "duration_minutes": ""
        if obs.duration_seconds is None
        else str(round(obs.duration_seconds / 60)),
    }


EMPTY_STATE: dict[str, Any] = {
    "values": {},
    "notes": [],
    "tags": "",
    "overall_notes": "",
    "duration_minutes": "",
}


@router.get("/capture/{slug}/{version}", response_class=HTMLResponse)
def capture_shell(
    request: Request, user: Recorder, session: SessionDep, slug: str, version: Id
) -> Response:
    """The capture page of a rubric version with no observation in it: devices keep it for
    offline use and fill it from their own storage (capture.js)."""
    rubric = rubrics.get_version(session=session, user=user, slug=slug, version=version)
    if rubric.status != RubricStatus.published:
        raise NotFound(f"{rubric.title} v{rubric.version} is not offered for new observations.")
    context = {
        "obs": None,
        "rubric": rubric,
        "definition": rubrics.definition(rubric),
        "state": EMPTY_STATE,
        "errors": {},
        "shell": True,  # kept on the device for whoever signs in next: names nobody
    }
    return render(request, "observations/capture.html", context)


@router.get("/observations/{obs_id}/edit", response_class=HTMLResponse)
def capture_page(
    request: Request, user: CurrentUser, session: SessionDep, obs_id: uuid.UUID
) -> Response:
    """The capture page: one card per item, large controls, evidence and timed notes."""
    obs = service.get_own(session=session, user=user, obs_id=obs_id)
    return render(request, "observations/capture.html", _capture_context(session, obs))


@router.post("/observations/{obs_id}", response_class=HTMLResponse)
async def save_capture(
    request: Request, user: CurrentUser, session: SessionDep, obs_id: uuid.UUID
) -> Response:
    """Save the capture form (draft, review, or submit); errors come back beside each item."""
    obs = service.get_own(session=session, user=user, obs_id=obs_id)
    context = _capture_context(session, obs)
    form = await request.form()
    action = str(form.get("action", "draft"))
    payload, state, errors = service.payload_from_form(
        {k: v for k, v in form.items() if isinstance(v, str)},
        [str(m) for m in form.getlist("note_minute")],
        [str(t) for t in form.getlist("note_text")],
        context["definition"],
        service.payload_of(obs, context["rubric"]),
    )
    context["state"] = state
    if payload is not None and not errors:
        if action == "submit":
            payload = payload.with_status(ObservationStatus.submitted)
        outcome = service.amend(session=session, author=user, obs=obs, payload=payload)
        if outcome.status == "rejected":
            errors = {d["field"]: d["message"] for d in outcome.details} or {
                "overall_notes": outcome.reason or "The observation could not be saved."
            }
        elif outcome.status == "conflict":
            return RedirectResponse(f"/observations/{obs.id}/conflicts", status_code=303)
    if errors:
        context["errors"] = errors
        context["problem"] = "Nothing was lost: fix the marked items and save again."
        return render(request, "observations/capture.html", context, status_code=422)
    if action == "review":
        return RedirectResponse(f"/observations/{obs.id}/review", status_code=303)
    if action == "submit":
        return RedirectResponse(f"/observations/{obs.id}?submitted=1", status_code=303)
    return RedirectResponse(f"/observations/{obs.id}/edit?saved=1", status_code=303)


# --- review, read, history -----------------------------------------------------------------------


@router.get("/observations/{obs_id}/review", response_class=HTMLResponse)
def review_page(
    request: Request, user: CurrentUser, session: SessionDep, obs_id: uuid.UUID
) -> Response:
    """Everything recorded, with unanswered items listed before Submit."""
    obs = service.get_own(session=session, user=user, obs_id=obs_id)
    context = _read_context(session, obs)
    context["missing"] = service.unanswered(context["definition"], obs.values)
    return render(request, "observations/review.html", context)


@router.post("/observations/{obs_id}/submit")
def submit(
    user: CurrentUser,
    session: SessionDep,
    obs_id: uuid.UUID,
    revision: Annotated[Count, Form()],
) -> Response:
    """Submit the reviewed revision (a stale review page is sent back to the capture page)."""
    obs = service.get_own(session=session, user=user, obs_id=obs_id)
    if revision != obs.revision:
        return RedirectResponse(f"/observations/{obs.id}/review?stale=1", status_code=303)
    rubric = session.get(RubricVersion, obs.rubric_version_id)
    assert rubric is not None
    payload = service.payload_of(obs, rubric).with_status(ObservationStatus.submitted)
    outcome = service.amend(session=session, author=user, obs=obs, payload=payload)
    service.raise_if_rejected(outcome)
    if outcome.status == "conflict":
        return RedirectResponse(f"/observations/{obs.id}/conflicts", status_code=303)
    return RedirectResponse(f"/observations/{obs.id}?submitted=1", status_code=303)


def _read_context(session: Session, obs: Observation) -> dict[str, Any]:
    rubric = session.get(RubricVersion, obs.rubric_version_id)
    assert rubric is not None
    definition = rubrics.definition(rubric)
    observer = session.get(User, obs.observer_id)
    school = accounts.get_school(session=session, school_id=obs.school_id)
    return {
        "obs": obs,
        "rubric": rubric,
        "definition": definition,
        "observer": observer,
        "school": school,
        "display": service.display_value,
    }


@router.get("/observations/{obs_id}", response_class=HTMLResponse)
def read_page(
    request: Request, user: CurrentUser, session: SessionDep, obs_id: uuid.UUID
) -> Response:
    """One observation as recorded."""
    obs = service.get_visible(session=session, user=user, obs_id=obs_id, deleted=True)
    context = _read_context(session, obs)
    context["can_edit"] = obs.observer_id == user.id and obs.deleted_at is None
    context["open_conflicts"] = (
        service.count_open_conflicts(session=session, obs=obs) if context["can_edit"] else 0
    )
    context["fb"] = _feedback_context(request, session, user, obs, context["definition"])
    return render(request, "observations/read.html", context)


FEEDBACK_LABELS = {
    FeedbackState.not_shared: "Not shared",
    FeedbackState.shared: "Shared",
    FeedbackState.opened: "Opened",
    FeedbackState.reflected: "Reflected",
    FeedbackState.acknowledged: "Acknowledged",
}


def _feedback_context(
    request: Request, session: Session, user: User, obs: Observation, definition: Any
) -> dict[str, Any]:
    """The feedback card: the loop's state, and (for the observer) what can be shared."""
    share = feedback.latest_share(session, obs.id)
    state = feedback.state_of(share)
    settings = request.app.state.settings
    items = feedback.feedback_items(definition)
    may = (
        feedback.may_share(user, obs)
        and obs.deleted_at is None
        and obs.status == ObservationStatus.submitted
    )
    return {
        "share": share,
        "state": state,
        "state_label": FEEDBACK_LABELS[state],
        "thread": feedback.thread(session, share) if share is not None else [],
        "mail": feedback.mail_of(session, share) if share is not None else [],
        "may_share": may,
        "feedback_items": items,
        "checked": {i.key for i in items if feedback.offered_by_default(i)},
        "scores_default": settings.feedback_scores_default,
        "email": feedback.teacher_email(session, obs) if may else "",
        "mail_server": bool(settings.smtp_host),
    }


@router.get("/observations/{obs_id}/history", response_class=HTMLResponse)
def history_page(
    request: Request, user: CurrentUser, session: SessionDep, obs_id: uuid.UUID
) -> Response:
    """Every revision: who changed what, and when."""
    obs = service.get_visible(session=session, user=user, obs_id=obs_id, deleted=True)
    context = _read_context(session, obs)
    context["revisions"] = service.history(
        session=session, obs=obs, definition=context["definition"]
    )
    context["feedback_events"] = feedback.events(session, obs.id)
    return render(request, "observations/history.html", context)


@router.post("/observations/{obs_id}/delete")
def delete(user: CurrentUser, session: SessionDep, obs_id: uuid.UUID) -> Response:
    """Admins tombstone an observation: hidden from lists and exports, restorable."""
    if user.role != Role.admin:
        raise Forbidden("Only an admin may delete observations.")
    obs = service.get_visible(session=session, user=user, obs_id=obs_id)
    service.set_deleted(session=session, admin=user, obs=obs, deleted=True)
    return RedirectResponse(f"/observations/{obs.id}", status_code=303)


@router.post("/observations/{obs_id}/restore")
def restore(user: CurrentUser, session: SessionDep, obs_id: uuid.UUID) -> Response:
    """Admins bring a deleted observation back."""
    if user.role != Role.admin:
        raise Forbidden("Only an admin may restore observations.")
    obs = service.get_visible(session=session, user=user, obs_id=obs_id, deleted=True)
    service.set_deleted(session=session, admin=user, obs=obs, deleted=False)
    return RedirectResponse(f"/observations/{obs.id}", status_code=303)


# --- lists ---------------------------------------------------------------------------------------


def _filters(request: Request, params: dict[str, str]) -> tuple[service.Filters, dict[str, str]]:
    """Filters from query parameters; bad values are ignored and reported, never a 500."""
    tz = _tz(request)
    f = service.Filters()
    notes: dict[str, str] = {}

    def day(name: str) -> datetime | None:
        raw = params.get(name, "")
        if not raw:
            return None
        found = parse_day(raw)
        if found is None:
            notes[name] = "Use a date like 2026-11-22."
            return None
        return datetime.combine(found, datetime.min.time(), tzinfo=tz)

    f.date_from = day("from")
    end = day("to")
    f.date_to = end + timedelta(days=1) if end else None
    for name in ("school_id", "teacher_id", "observer_id", "rubric_version_id"):
        setattr(f, name, parse_id(params.get(name, "")))
    if params.get("status") in ("draft", "submitted"):
        f.status = ObservationStatus(params["status"])
    f.rubric_slug = params.get("rubric") or None
    f.deleted = params.get("deleted") == "1"
    f.q = params.get("q", "").strip()
    if params.get("feedback") in {s.value for s in FeedbackState}:
        f.feedback = params["feedback"]
    return f, notes


@router.get("/observations", response_class=HTMLResponse)
def list_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Observations this role may read, with filters; the table is an htmx block."""
    params = {k: v[:100] for k, v in request.query_params.items()}
    filters, notes = _filters(request, params)
    page = service.list_observations(
        session=session, user=user, filters=filters, cursor=request.query_params.get("cursor")
    )
    return render(
        request,
        "observations/list.html",
        {
            **_lookups(session, user),
            "page": page,
            "observations": page.items,
            "params": params,
            "notes": notes,
            "page_url": page_url(request),
        },
        block="results",
    )


def _lookups(session: Session, user: User) -> dict[str, Any]:
    scoped_school = user.school_id if user.role in (Role.observer, Role.principal) else None
    schools = accounts.list_schools(session=session)
    return {
        "schools": {s.id: s for s in schools},
        "school_choices": [s for s in schools if scoped_school is None or s.id == scoped_school],
        "observers": {u.id: u for u in session.exec(select(User))},
        "rubric_versions": {
            r.id: r for r in session.exec(select(RubricVersion).order_by(col(RubricVersion.slug)))
        },
    }


@router.get("/teachers/{teacher_id}", response_class=HTMLResponse)
def teacher_page(
    request: Request, user: CurrentUser, session: SessionDep, teacher_id: Id
) -> Response:
    """One teacher's observations over time (only those this role may read)."""
    teacher = session.get(Teacher, teacher_id)
    if teacher is None or (
        user.role in (Role.observer, Role.principal) and teacher.school_id != user.school_id
    ):
        raise NotFound("There is no teacher at this address on your roster.")
    page = service.list_observations(
        session=session,
        user=user,
        filters=service.Filters(teacher_id=teacher_id),
        cursor=request.query_params.get("cursor"),
    )
    return render(
        request,
        "observations/teacher.html",
        {
            **_lookups(session, user),
            "teacher": teacher,
            "page": page,
            "observations": page.items,
            "page_url": page_url(request),
        },
    )
