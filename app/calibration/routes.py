"""The public agreement calculator: JSON API and a page with CSV upload."""

import csv
import io
import re
import threading
from collections import OrderedDict
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup, escape
from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr, ValidationError
from sqlmodel import Session, select

from app.accounts.deps import CurrentUser, OptionalUser, require_roles
from app.accounts.models import Role, User
from app.calibration import agreement, service
from app.calibration.models import CalibrationSession, Rater, SessionStatus, Stimulus
from app.charts import heatmap, legend, level_bars
from app.db import MAX_ID, Id, SessionDep, parse_id, parse_int, utcnow
from app.errors import Forbidden, Invalid, NotFound, TooManyRequests
from app.rubrics.service import offered_versions
from app.security import CSRF_EXEMPT_PATHS, RateLimiter
from app.web import render, templates

router = APIRouter()

MAX_BODY_BYTES = 1024 * 1024
MAX_CELLS = 200_000
calculator_limit = RateLimiter(limit=30, window_seconds=60)
CSRF_EXEMPT_PATHS.add("/api/agreement")  # stores nothing and acts for no one

Value = StrictInt | StrictFloat | StrictStr  # strict: JSON true/false are not categories


class AgreementRequest(BaseModel):
    """Ratings from anywhere (a spreadsheet, a form export) to analyse."""

    categories: list[Value] = Field(
        min_length=2, max_length=100, description="The scale, in order."
    )
    level: Literal["nominal", "ordinal", "interval"] = "ordinal"
    ratings: list[list[Value | None]] = Field(
        min_length=2,
        max_length=500,
        description="One list per rater: a value per unit, null when missing.",
    )
    raters: list[str] | None = Field(default=None, description="Optional rater names.")
    units: list[str] | None = Field(default=None, description="Optional unit names.")
    master: list[Value | None] | None = Field(
        default=None, description="Optional master score per unit."
    )
    resamples: int = Field(
        default=1000, ge=0, le=5000, description="Bootstrap resamples for alpha."
    )
    seed: int = Field(default=agreement.DEFAULT_SEED, description="Bootstrap seed (reproducible).")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limited(request: Request) -> None:
    wait = calculator_limit.check(_client(request))
    if wait is not None:
        raise TooManyRequests(
            f"The calculator takes at most {calculator_limit.limit} requests a minute from one "
            f"address. Try again in {wait} seconds.",
            retry_after=wait,
        )


def _bar(request: Request) -> tuple[float, float]:
    """The district's reliability bar (settings: minimum, tentative band), for the calculator
    and the session reports alike."""
    settings = request.app.state.settings
    return settings.reliability_minimum, settings.reliability_tentative


def _analyse(req: AgreementRequest, bar: tuple[float, float]) -> dict[str, Any]:
    cells = len(req.ratings) * max((len(r) for r in req.ratings), default=0)
    if cells > MAX_CELLS:
        raise Invalid(
            f"At most {MAX_CELLS:,} ratings (raters x units) per request; this had {cells:,}."
        )
    try:
        return agreement.report(
            req.ratings,
            req.categories,
            req.level,
            raters=req.raters,
            units=req.units,
            master=req.master,
            resamples=req.resamples,
            seed=req.seed,
            minimum=bar[0],
            tentative=bar[1],
        )
    except agreement.AgreementInputError as exc:
        raise Invalid(str(exc), details=[{"field": "ratings", "message": str(exc)}]) from exc


@router.post("/api/agreement", tags=["agreement"])
async def calculate(request: Request) -> JSONResponse:
    """Inter-rater agreement for any ratings: exact and within-one agreement, Krippendorff's
    alpha with a bootstrap 95% interval, Fleiss' kappa, Gwet's AC1/AC2, pairwise Cohen's
    kappas, agreement with master scores, per-unit distributions. Nothing is stored."""
    _limited(request)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return JSONResponse(
            {"error": "Too large", "detail": f"Send at most {MAX_BODY_BYTES // 1024} KB."},
            status_code=413,
        )
    try:
        req = AgreementRequest.model_validate_json(body)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()[:10]
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
        raise Invalid(summary or "The request is not valid JSON.", details=details) from exc
    return JSONResponse(await run_in_threadpool(_analyse, req, _bar(request)))


@router.get("/agreement", response_class=HTMLResponse)
def calculator_page(request: Request, _user: OptionalUser) -> Response:
    """The calculator with a CSV upload: one column per rater, one row per unit (public; a
    signed-in visitor keeps their navigation)."""
    return render(
        request,
        "calibration/calculator.html",
        {"form": {"categories": "1, 2, 3, 4, 5", "level": "ordinal"}},
    )


@router.post("/agreement", response_class=HTMLResponse)
async def calculator_upload(
    request: Request,
    _user: OptionalUser,
    file: Annotated[UploadFile | None, File()] = None,
    categories: Annotated[str, Form(max_length=2000)] = "",
    level: Annotated[str, Form(max_length=20)] = "ordinal",
) -> Response:
    """Analyse an uploaded CSV and show the report."""
    _limited(request)
    form = {"categories": categories, "level": level}
    data = await file.read(MAX_BODY_BYTES + 1) if file is not None else b""
    try:
        req = _request_from_csv(data, categories, level)
        report = await run_in_threadpool(_analyse, req, _bar(request))
    except Invalid as exc:
        return render(
            request,
            "calibration/calculator.html",
            {"form": form, "problem": exc.message},
            status_code=422,
        )
    return render(request, "calibration/calculator.html", {"form": form, "report": report})


def _request_from_csv(data: bytes, categories_text: str, level: str) -> AgreementRequest:
    """Columns are raters; optional columns 'unit' (names) and 'master'. Empty cell = missing."""
    if not data:
        raise Invalid("Choose a CSV file: one column per rater, one row per unit.")
    if len(data) > MAX_BODY_BYTES:
        raise Invalid(f"The file is larger than {MAX_BODY_BYTES // 1024} KB.")
    if level not in ("nominal", "ordinal", "interval"):
        raise Invalid("Choose nominal, ordinal or interval.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("The file is not UTF-8 text. In Excel use 'Save as: CSV UTF-8'.") from exc
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise Invalid("The file needs a header row (rater names) and at least one unit.")
    header = [h.strip() for h in rows[0]]
    lowered = [h.lower() for h in header]
    unit_col = lowered.index("unit") if "unit" in lowered else None
    master_col = lowered.index("master") if "master" in lowered else None
    rater_cols = [i for i in range(len(header)) if i not in (unit_col, master_col)]
    parsed = [_parse_value(c.strip()) for c in categories_text.split(",") if c.strip()]
    by_text = {str(c): c for c in parsed}
    ratings: list[list[Value | None]] = [[] for _ in rater_cols]
    units: list[str] = []
    master: list[Value | None] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise Invalid(f"Row {line} has {len(row)} cells but the header has {len(header)}.")
        units.append(row[unit_col].strip() if unit_col is not None else f"Unit {line - 1}")
        for k, column in enumerate(rater_cols):
            ratings[k].append(_cell(row[column], by_text, line, header[column]))
        if master_col is not None:
            master.append(_cell(row[master_col], by_text, line, "master"))
    try:
        return AgreementRequest(
            categories=parsed,
            level=level,
            ratings=ratings,
            raters=[header[c] or f"Rater {i + 1}" for i, c in enumerate(rater_cols)],
            units=units,
            master=master if master_col is not None else None,
        )
    except ValidationError as exc:
        raise Invalid(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        ) from exc


def _parse_value(text: str) -> Value:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _cell(raw: str, by_text: dict[str, Value], line: int, column: str) -> Value | None:
    raw = raw.strip()
    if raw == "":
        return None
    value = by_text.get(raw, by_text.get(str(_parse_value(raw))))
    if value is None:
        raise Invalid(
            f"Row {line}, column '{column}': '{raw}' is not one of the categories "
            f"({', '.join(by_text)})."
        )
    return value


# --- calibration sessions: the facilitator ------------------------------------------------------

Facilitator = Annotated[User, Depends(require_roles(Role.facilitator, Role.admin))]
join_limit = RateLimiter(limit=20, window_seconds=600)


def _int(raw: str) -> int | None:
    return parse_int(raw)


@router.get("/calibration", response_class=HTMLResponse)
def sessions_page(request: Request, user: Facilitator, session: SessionDep) -> Response:
    """Your calibration sessions, and a form to start one."""
    return render(
        request,
        "calibration/sessions.html",
        {
            "sessions": service.list_for(session=session, user=user),
            "rubrics": offered_versions(session=session),
            "form": {},
            "errors": {},
        },
    )


@router.post("/calibration", response_class=HTMLResponse)
async def create_session(request: Request, user: Facilitator, session: SessionDep) -> Response:
    """Create a session with its first stimulus; it opens at once with a join code."""
    form = {k: str(v) for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        calibration = service.create_session(
            session=session,
            facilitator=user,
            title=form.get("title", ""),
            rubric_version_id=_int(form.get("rubric_version_id", "")) or 0,
            item_keys=[],
            stimulus=_stimulus_fields(form),
        )
    except Invalid as exc:
        errors = {str(d["field"]): str(d["message"]) for d in exc.details}
        return render(
            request,
            "calibration/sessions.html",
            {
                "sessions": service.list_for(session=session, user=user),
                "rubrics": offered_versions(session=session),
                "form": form,
                "errors": errors,
            },
            status_code=422,
        )
    return RedirectResponse(f"/calibration/{calibration.id}", status_code=303)


def _stimulus_fields(form: dict[str, str]) -> dict[str, Any]:
    return {
        "title": form.get("stimulus_title", "")[:200],
        "kind": form.get("kind", "transcript"),
        "transcript": form.get("transcript", "")[:100_000],
        "video_url": form.get("video_url", "")[:500],
        "start_seconds": _int(form.get("start_seconds", "")),
        "end_seconds": _int(form.get("end_seconds", "")),
    }


def _setup_context(session: Session, calibration: CalibrationSession) -> dict[str, Any]:
    s = service.setup(session=session, calibration=calibration)
    return {
        "s": s,
        "c": calibration,
        "masters": service.masters(session=session, calibration=calibration),
        "board": service.progress(session=session, calibration=calibration),
        "all_items": service.scale_items(s.definition),
        "editable": not service.has_ratings(session=session, calibration=calibration),
        "errors": {},
    }


# Before /calibration/{session_id}, which would take the word for an id.
@router.get("/calibration/certification", response_class=HTMLResponse)
def certification_page(request: Request, user: Facilitator, session: SessionDep) -> Response:
    """Every observer's calibration history and certification status, per rubric."""
    rule = certification_rule(request)
    chosen, rubrics = rubric_filter(request, session)
    rows = service.certification(session=session, rule=rule, now=utcnow(), rubric_slug=chosen)
    return render(
        request,
        "calibration/certification.html",
        {"rule": rule, "rows": rows, "rubrics": rubrics, "chosen": chosen or ""},
    )


@router.get("/calibration/{session_id}", response_class=HTMLResponse)
def setup_page(
    request: Request, user: Facilitator, session: SessionDep, session_id: Id
) -> Response:
    """The facilitator's page: join code, items, stimuli, master scores, the live board."""
    calibration = service.for_facilitator(session=session, user=user, session_id=session_id)
    part = "actions" if request.headers.get("HX-Target") == "status-actions" else "board"
    context = _setup_context(session, calibration)
    if request.headers.get("hx-request") != "true":  # the polled parts do not show it
        join_url = f"{request.base_url}join?code={calibration.code}"
        context.update(join_url=join_url, join_qr=join_qr(join_url))
    return render(request, "calibration/setup.html", context, block=part)


def join_qr(url: str) -> Markup:
    """The join link as a QR code, an inline SVG drawn on the server (segno): a room points
    its phones at the board and joins in seconds."""
    out = io.BytesIO()
    segno.make(url, error="m").save(
        out,
        kind="svg",
        scale=6,
        border=2,
        xmldecl=False,
        svgns=True,
        nl=False,
        title="QR code: join this session",
        svgclass="join-qr",
    )
    return Markup(out.getvalue().decode())  # noqa: S704 (segno's SVG: it escapes the title)


@router.post("/calibration/{session_id}/items")
async def set_items(
    request: Request, user: Facilitator, session: SessionDep, session_id: Id
) -> Response:
    """Choose which items raters rate (before anyone has rated)."""
    calibration = service.for_facilitator(session=session, user=user, session_id=session_id)
    form = await request.form()
    service.set_items(
        session=session, calibration=calibration, keys=[str(k) for k in form.getlist("item")]
    )
    return RedirectResponse(f"/calibration/{calibration.id}", status_code=303)


@router.post("/calibration/{session_id}/stimuli")
async def add_stimulus(
    request: Request, user: Facilitator, session: SessionDep, session_id: Id
) -> Response:
    """Add another transcript excerpt or video clip (until the first rating)."""
    calibration = service.for_facilitator(session=session, user=user, session_id=session_id)
    form = {k: str(v) for k, v in (await request.form()).items() if isinstance(v, str)}
    service.add_stimulus(session=session, calibration=calibration, **_stimulus_fields(form))
    return RedirectResponse(f"/calibration/{calibration.id}#excerpts", status_code=303)


@router.post("/calibration/{session_id}/stimuli/{stimulus_id}")
async def update_stimulus(
    request: Request, user: Facilitator, session: SessionDep, session_id: Id, stimulus_id: Id
) -> Response:
    """Correct an excerpt's title, text or video (until the first rating)."""
    calibration = service.for_facilitator(session=session, user=user, session_id=session_id)
    form = {k: str(v) for k, v in (await request.form()).items() if isinstance(v, str)}
    service.update_stimulus(
        session=session,
        calibration=calibration,
        stimulus_id=stimulus_id,
        **_stimulus_fields(form),
    )
    return RedirectResponse(f"/calibration/{calibration.id}#excerpts", status_code=303)


@router.post("/calibration/{session_id}/stimuli/{stimulus_id}/remove")
def remove_stimulus(
    user: Facilitator, session: SessionDep, session_id: Id, stimulus_id: Id
) -> Response:
    """Remove an excerpt and its master scores (until the first rating)."""
    calibration = service.for_facilitator(session=session, user=user, session_id=session_id)
    service.remove_stimulus(session=session, calibration=calibration, stimulus_id=stimulus_id)
    return RedirectResponse(f"/calibration/{calibration.id}#excerpts", status_code=303)


@router.post("/calibration/{session_id}/master")
async def set_master(
    request: Request, user: Facilitator, session: SessionDep, session_id: Id
) -> Response:
    """Set the master (anchor) scores and their rationale, hidden until reveal."""
    calibration = service.for_facilitator(session=session, user=user, session_id=session_id)
    form = await request.form()
    entries: dict[tuple[int, str], tuple[int | None, str]] = {}
    for key, raw in form.items():
        if key.startswith("master-") and isinstance(raw, str):
            stimulus, _, item = key[len("master-") :].partition("-")
            stimulus_id = parse_id(stimulus)
            rationale = form.get(f"rationale-{key[len('master-') :]}", "")
            if stimulus_id is not None:
                entries[(stimulus_id, item[:63])] = (
                    parse_int(raw, minimum=-MAX_ID),
                    rationale if isinstance(rationale, str) else "",
                )
    service.set_masters(session=session, calibration=calibration, entries=entries)
    return RedirectResponse(f"/calibration/{calibration.id}#master", status_code=303)


@router.post("/calibration/{session_id}/status")
def change_status(
    request: Request,
    user: Facilitator,
    session: SessionDep,
    session_id: Id,
    action: Annotated[str, Form(pattern="^(close|reopen|reveal|next_round)$")],
) -> Response:
    """Close rating, reveal the report, reopen, or start the next round."""
    calibration = service.for_facilitator(session=session, user=user, session_id=session_id)
    service.set_status(session=session, calibration=calibration, action=action)
    if action == "reveal":
        # Build the report once, now, so the room that opens it a moment later is served from
        # the cache (the raters' pages reload within a few seconds of the reveal). The reveal
        # is committed first: its write lock must not hold up rating saves and device pushes
        # for the second the statistics take. (The one exception to "the dependency commits".)
        session.commit()
        _report_context(request, session, calibration, None, False)
        templates.env.get_template("calibration/report.html")  # compiled once, now
    target = (
        f"/calibration/{calibration.id}/report"
        if action == "reveal"
        else f"/calibration/{calibration.id}"
    )
    return RedirectResponse(target, status_code=303)


# A rater x rater grid is readable up to about this many raters (on a tablet; a phone
# scrolls it); a larger room gets the table of each rater against master instead.
HEATMAP_MAX_RATERS = 24

_LINE_REFERENCE = re.compile(
    r"\b(lines?|l\.)\s*(\d{1,4})(?:\s*(?:-|–|to)\s*(\d{1,4}))?", re.IGNORECASE
)


def link_lines(text: str, stimulus: Stimulus) -> Markup:
    """A rationale with its references to the excerpt's lines ("line 4", "lines 3-5",
    "l. 7") linked to those lines of the transcript shown beside the report."""
    count = len(stimulus.transcript.splitlines()) if stimulus.kind == "transcript" else 0
    out: list[str] = []
    last = 0
    for match in _LINE_REFERENCE.finditer(text):
        first = int(match.group(2))
        if not 1 <= first <= count:
            continue
        out.append(escape(text[last : match.start()]))
        out.append(
            f'<a href="#x{stimulus.id}-l{first}" data-line-link>{escape(match.group(0))}</a>'
        )
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("".join(out))  # noqa: S704 (every piece of text above is escaped)


# The report's body is the same for everyone in the room but for the viewer's own label, so
# it is rendered once per report version (and view: names or anonymous) and kept here; each
# page swaps in "You" for the viewer's label, marked `data-r` wherever a rater is named.
_BODIES: OrderedDict[tuple[int, str, bool], str] = OrderedDict()
_bodies_guard = threading.Lock()


def _report_body(
    session: Session,
    calibration: CalibrationSession,
    data: dict[str, Any],
    names: bool,
    bar: tuple[float, float],
) -> str:
    key = (calibration.id or 0, str(data.get("version")), names)
    with _bodies_guard:
        body = _BODIES.get(key)
    if body is not None:
        return body
    latest = data["latest"]
    s = service.setup(session=session, calibration=calibration)
    stimuli = {st.id: st for st in s.stimuli}
    show_masters = names or calibration.status == SessionStatus.revealed
    charts: dict[str, Markup] = {}
    for item_key, item in latest["items"].items():
        values = [v for v, _label in item["levels"]]
        level_names = [f"{v} {lab}" for v, lab in item["levels"]]
        rows = []
        for st in s.stimuli:
            per = item.get("by_stimulus", {}).get(st.id)
            if per is None:
                continue
            master = per["master"] if show_masters else None
            rows.append(
                (
                    st.title,
                    [per["counts"].get(v, 0) for v in values],
                    values.index(master) if master in values else None,
                )
            )
        charts[item_key] = Markup(  # noqa: S704 (the chart functions escape every text)
            legend(level_names) + level_bars(rows, level_names, title=item["title"])
        )
    heat = None
    # The grid is drawn from the anonymous report, whose labels are unique (display names may
    # repeat: two guests called Maria), then each label is given its name when names show.
    anonymous = service.report(
        session=session,
        calibration=calibration,
        viewer_rater_id=None,
        names_visible=False,
        bar=bar,
        anonymous_only=True,
    )["latest"]
    session_stats = anonymous.get("session") or {}
    if session_stats.get("pairwise") and len(anonymous["raters"]) <= HEATMAP_MAX_RATERS:
        index = {label: i for i, label in enumerate(anonymous["raters"])}
        cells: dict[tuple[int, int], float | None] = {(i, i): 1.0 for i in range(len(index))}
        for p in session_stats["pairwise"]:
            a, b = index[p["raters"][0]], index[p["raters"][1]]
            cells[(a, b)] = cells[(b, a)] = p["weighted_kappa_quadratic"]
        label_names = data.get("label_names", {}) if names else {}
        shown = [label_names.get(label, label) for label in anonymous["raters"]]
        heat = Markup(  # noqa: S704 (the chart functions escape every text)
            heatmap(shown, cells, title="Quadratic weighted kappa between raters")
        )
    body = templates.env.get_template("calibration/_report_body.html").render(
        c=calibration,
        s=s,
        r=data,
        latest=latest,
        stimuli=stimuli,
        charts=charts,
        heat=heat,
        heatmap_max=HEATMAP_MAX_RATERS,
        names=names,
        masters=service.masters(session=session, calibration=calibration),
        link_lines=link_lines,
    )
    with _bodies_guard:
        _BODIES[key] = body
        while len(_BODIES) > 64:
            _BODIES.popitem(last=False)
    return body


def _report_context(
    request: Request,
    session: Session,
    calibration: CalibrationSession,
    rater_id: int | None,
    names: bool,
) -> dict[str, Any]:
    data = service.report(
        session=session,
        calibration=calibration,
        viewer_rater_id=rater_id,
        names_visible=names,
        bar=_bar(request),
        anonymous_only=not names,  # the body is shared by the room: the viewer is marked below
    )
    body = _report_body(session, calibration, data, names, _bar(request))
    you = data.get("you")
    if you:
        label = escape(you["label"])
        body = body.replace(
            f'data-r="{label}">{label}</',
            f'data-r="{label}" data-you>You · {escape(you["name"])}</',
        )
    latest = data["latest"]
    page = Markup(body)  # noqa: S704 (a rendered template, the name escaped above)
    return {"c": calibration, "latest": latest, "body": page, "version": data["version"]}


@router.get("/calibration/{session_id}/report", response_class=HTMLResponse)
def facilitator_report(
    request: Request, user: Facilitator, session: SessionDep, session_id: Id
) -> Response:
    """The report with every rater's name (the facilitator may look before reveal)."""
    calibration = service.for_facilitator(session=session, user=user, session_id=session_id)
    return render(
        request,
        "calibration/report.html",
        _report_context(request, session, calibration, None, True),
    )


@router.get("/api/calibration/sessions/{session_id}/report", tags=["calibration"])
def facilitator_report_json(
    request: Request, user: Facilitator, session: SessionDep, session_id: Id
) -> JSONResponse:
    """The report as JSON, for the facilitator."""
    calibration = service.for_facilitator(session=session, user=user, session_id=session_id)
    return JSONResponse(
        service.report(
            session=session,
            calibration=calibration,
            viewer_rater_id=None,
            names_visible=True,
            bar=_bar(request),
        )
    )


# --- raters: joining and rating ---------------------------------------------------------------


def _joined(request: Request) -> dict[str, int]:
    raw = request.session.get("raters")
    return dict(raw) if isinstance(raw, dict) else {}


def _current_rater(
    request: Request, session: Session, calibration: CalibrationSession, user: User | None
) -> Rater | None:
    if user is not None:
        return session.exec(
            select(Rater).where(Rater.session_id == calibration.id, Rater.user_id == user.id)
        ).first()
    rater_id = _joined(request).get(calibration.code)
    rater = session.get(Rater, rater_id) if isinstance(rater_id, int) else None
    return rater if rater is not None and rater.session_id == calibration.id else None


@router.get("/join", response_class=HTMLResponse)
def join_page(request: Request, user: OptionalUser, code: str = "") -> Response:
    """Join a calibration session with its code, as yourself or as a guest."""
    return render(
        request, "calibration/join.html", {"code": service.normalise_code(code), "user": user}
    )


@router.post("/join", response_class=HTMLResponse)
def join(
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    code: Annotated[str, Form(max_length=20)] = "",
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check the code (guesses are rate-limited) and join."""
    calibration = service.by_code(session=session, code=code)
    if calibration is None:
        wait = join_limit.check(request.client.host if request.client else "unknown")
        if wait is not None:
            raise TooManyRequests(
                f"Too many wrong codes. Try again in {wait} seconds.", retry_after=wait
            )
        return render(
            request,
            "calibration/join.html",
            {
                "code": code,
                "user": user,
                "error": "There is no session with that code. Check it with your facilitator.",
            },
            status_code=404,
        )
    try:
        rater = service.join(session=session, calibration=calibration, user=user, guest_name=name)
    except Invalid as exc:
        return render(
            request,
            "calibration/join.html",
            {"code": code, "user": user, "error": exc.message},
            status_code=422,
        )
    if user is None:
        joined = _joined(request)
        joined[calibration.code] = rater.id  # type: ignore[assignment]
        request.session["raters"] = joined
    return RedirectResponse(f"/c/{calibration.code}", status_code=303)


def _rater_or_join(
    request: Request, session: Session, code: str, user: User | None
) -> tuple[CalibrationSession, Rater]:
    calibration = service.by_code(session=session, code=code)
    if calibration is None:
        raise NotFound("There is no session with that code.")
    rater = _current_rater(request, session, calibration, user)
    if rater is None:
        raise Forbidden("Join this session with its code first.")
    return calibration, rater


@router.get("/c/{code}", response_class=HTMLResponse)
def rate_page(request: Request, user: OptionalUser, session: SessionDep, code: str) -> Response:
    """Rate every stimulus x item, blind; after reveal, the report."""
    calibration = service.by_code(session=session, code=code)
    if calibration is None:
        raise NotFound("There is no session with that code.")
    rater = _current_rater(request, session, calibration, user)
    if rater is None:
        return RedirectResponse(f"/join?code={calibration.code}", status_code=303)
    if calibration.status == SessionStatus.revealed:
        context = _report_context(request, session, calibration, rater.id, False)
        context["rater"] = rater
        return render(request, "calibration/report.html", context)
    s = service.setup(session=session, calibration=calibration)
    return render(
        request,
        "calibration/rate.html",
        {
            "c": calibration,
            "s": s,
            "rater": rater,
            "mine": service.own_ratings(session=session, calibration=calibration, rater=rater),
            "done": rater.done_round >= calibration.current_round,
        },
    )


@router.get("/c/{code}/state")
def room_state(
    request: Request,
    user: OptionalUser,
    session: SessionDep,
    code: str,
    seen: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """What a rater's page polls (htmx, every few seconds): 204 while the session is as the
    page shows it (`seen`: "round:status"), and a reload (HX-Refresh) once the facilitator has
    revealed the report or opened a new round."""
    calibration, _rater = _rater_or_join(request, session, code, user)
    now = f"{calibration.current_round}:{calibration.status.value}"
    if seen == now:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    return Response(status_code=200, headers={"HX-Refresh": "true", "Cache-Control": "no-store"})


@router.post("/c/{code}/rate")
async def rate_form(
    request: Request, user: OptionalUser, session: SessionDep, code: str
) -> Response:
    """Save the rating form (without JavaScript)."""
    calibration, rater = _rater_or_join(request, session, code, user)
    form = await request.form()
    ratings: list[tuple[int, str, int, str | None]] = []
    for key, value in form.items():
        level = parse_int(value, minimum=-MAX_ID)
        if key.startswith("r-") and level is not None:
            stimulus, _, item = key[2:].partition("-")
            stimulus_id = parse_id(stimulus)
            why = form.get(f"why-{key[2:]}")
            if stimulus_id is not None:
                reason = why[:200] if isinstance(why, str) else None
                ratings.append((stimulus_id, item[:63], level, reason))
    service.rate(session=session, calibration=calibration, rater=rater, ratings=ratings)
    if form.get("done") == "1":
        service.mark_done(session=session, calibration=calibration, rater=rater)
    return RedirectResponse(f"/c/{calibration.code}?saved=1", status_code=303)


class RatingIn(BaseModel):
    """One level for one stimulus x item."""

    stimulus_id: Id
    item_key: str = Field(max_length=63)
    value: Annotated[int, Field(ge=-MAX_ID, le=MAX_ID)]
    reason: str | None = Field(
        default=None, max_length=200, description='An optional one-line "why" (null: unchanged).'
    )


@router.post("/api/calibration/{code}/ratings", tags=["calibration"])
def rate_json(
    request: Request, user: OptionalUser, session: SessionDep, code: str, ratings: list[RatingIn]
) -> JSONResponse:
    """Save ratings from the rating page's script (kept on the device until this succeeds)."""
    calibration, rater = _rater_or_join(request, session, code, user)
    saved = service.rate(
        session=session,
        calibration=calibration,
        rater=rater,
        ratings=[(r.stimulus_id, r.item_key, r.value, r.reason) for r in ratings[:1000]],
    )
    return JSONResponse({"saved": saved})


@router.get("/api/calibration/{code}/ratings", tags=["calibration"])
def my_ratings(
    request: Request, user: OptionalUser, session: SessionDep, code: str
) -> JSONResponse:
    """Your own ratings in the current round: before reveal, nobody sees anyone else's."""
    calibration, rater = _rater_or_join(request, session, code, user)
    mine = service.own_ratings(session=session, calibration=calibration, rater=rater)
    return JSONResponse(
        {
            "round": calibration.current_round,
            "ratings": [
                {"stimulus_id": s, "item_key": k, "value": v, "reason": why}
                for (s, k), (v, why) in mine.items()
            ],
        }
    )


@router.post("/c/{code}/done")
def done(request: Request, user: OptionalUser, session: SessionDep, code: str) -> Response:
    """Mark yourself done for this round."""
    calibration, rater = _rater_or_join(request, session, code, user)
    service.mark_done(session=session, calibration=calibration, rater=rater)
    return RedirectResponse(f"/c/{calibration.code}", status_code=303)


@router.get("/api/calibration/{code}/report", tags=["calibration"])
def participant_report(
    request: Request, user: OptionalUser, session: SessionDep, code: str
) -> JSONResponse:
    """The report for a participant, after reveal (others anonymised)."""
    calibration, rater = _rater_or_join(request, session, code, user)
    if calibration.status != SessionStatus.revealed:
        raise Forbidden("The report is shown after the facilitator reveals it.")
    return JSONResponse(
        service.report(
            session=session,
            calibration=calibration,
            viewer_rater_id=rater.id,
            names_visible=False,
            bar=_bar(request),
        )
    )


def certification_rule(request: Request) -> service.CertificationRule:
    """The district's certification rule, from its settings."""
    return service.CertificationRule.from_settings(request.app.state.settings)


@router.get("/calibration-history", response_class=HTMLResponse)
def history_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Your calibration history per rubric: agreement with master session by session, and
    whether you are certified (until when), by the district's rule."""
    rule = certification_rule(request)
    return render(
        request,
        "calibration/history.html",
        {
            "rule": rule,
            "certifications": service.certification(
                session=session, rule=rule, now=utcnow(), user_id=user.id
            ),
        },
    )


def rubric_filter(request: Request, session: Session) -> tuple[str | None, list[tuple[str, str]]]:
    """The rubric chosen in the query (`rubric=<slug>`), checked, and every rubric to offer."""
    rubrics = service.rubric_choices(session=session)
    chosen = request.query_params.get("rubric") or None
    if chosen is not None and chosen not in {slug for slug, _title in rubrics}:
        raise Invalid("rubric: choose one of the district's rubrics.")
    return chosen, rubrics
