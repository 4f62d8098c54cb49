"""Export pages and downloads (admins: all schools; principals: their own), the token API,
and the export audit log."""

import logging
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.accounts import service as accounts
from app.accounts.deps import require_roles
from app.accounts.models import Role, School, User
from app.calibration import service as calibration_service
from app.calibration.models import Rating
from app.db import Id, SessionDep, parse_day, parse_id, utcnow, write_turn
from app.errors import Invalid
from app.exports import csv as exports
from app.exports.models import ExportLog
from app.observations.models import ObservationStatus
from app.rubrics.models import RubricVersion
from app.web import render

router = APIRouter()
log = logging.getLogger("walkthrough")
Exporter = Annotated[User, Depends(require_roles(Role.admin, Role.principal))]
Admin = Annotated[User, Depends(require_roles(Role.admin))]
Facilitator = Annotated[User, Depends(require_roles(Role.facilitator, Role.admin))]
DATASETS = {
    "observations_long": "Observations, long (one row per observation × item)",
    "observations_wide": "Observations, wide (one row per observation; one rubric version)",
    "participation_events": (
        "Participation events (one row per contribution logged on a participation map)"
    ),
    "calibration": "Calibration ratings (one row per session × round × rater × stimulus × item)",
}


def _filters(request: Request, user: User) -> tuple[exports.Filters, dict[str, Any]]:
    q = request.query_params
    tz = ZoneInfo(request.app.state.settings.timezone)
    f = exports.Filters()

    def day(name: str) -> datetime | None:
        raw = q.get(name, "")
        if not raw:
            return None
        found = parse_day(raw)
        if found is None:
            raise Invalid(f"{name}: use a date like 2026-11-22.")
        return datetime.combine(found, time.min, tzinfo=tz)

    f.date_from = day("from")
    end = day("to")
    f.date_to = end + timedelta(days=1) if end else None
    f.school_ids = [i for i in map(parse_id, q.getlist("school_id")) if i is not None]
    if user.role == Role.principal:
        f.school_ids = [user.school_id] if user.school_id else [-1]
    rubric = q.get("rubric", "")
    if ":" in rubric:
        slug, _, version = rubric.partition(":")
        f.rubric_slug, f.rubric_version = slug, parse_id(version)
    elif rubric:
        f.rubric_slug = rubric
    observer = q.get("observer_id", "")
    f.observer_id = parse_id(observer)
    if q.get("status") in ("draft", "submitted"):
        f.status = ObservationStatus(q["status"])
    return f, dict(q)


def _dataset(request: Request) -> str:
    dataset = request.query_params.get("dataset", "observations_long")
    if dataset not in DATASETS:
        raise Invalid(f"Choose one of: {', '.join(DATASETS)}.")
    return dataset


@router.get("/exports", response_class=HTMLResponse)
def export_page(request: Request, user: Exporter, session: SessionDep) -> Response:
    """Choose a data set and filters, see how many rows it gives, download."""
    f, params = _filters(request, user)
    dataset = _dataset(request)
    engine: Engine = request.app.state.engine
    problem, rows = None, 0
    if dataset == "calibration":
        if user.role != Role.admin:
            problem = "Calibration data is exported by district admins."
        else:
            rows = _count_calibration(engine)
    else:
        versions = exports.rubric_versions(engine, user, f)
        if dataset == "observations_wide" and len(versions) > 1:
            problem = (
                "The wide format has one column per item, so it needs a single rubric version; "
                f"this choice has {len(versions)}. Choose a rubric version, or use the long format."
            )
        else:
            rows = exports.count_rows(engine, user, f, dataset)  # type: ignore[arg-type]
    schools = accounts.list_schools(session=session)
    if user.role == Role.principal:
        schools = [s for s in schools if s.id == user.school_id]
    return render(
        request,
        "exports/page.html",
        {
            "datasets": DATASETS,
            "dataset": dataset,
            "params": params,
            "schools": schools,
            "rubrics": list(session.exec(select(RubricVersion).order_by(col(RubricVersion.slug)))),
            "observers": list(session.exec(select(User).order_by(col(User.name)))),
            "rows": rows,
            "problem": problem,
            "query": request.url.query,
        },
        block="preview",
    )


def _count_calibration(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa_select(func.count()).select_from(Rating.__table__)).scalar_one())  # type: ignore[attr-defined]


def _log(engine: Engine, user: User, dataset: str, filters: dict[str, Any], via_token: bool) -> int:
    assert user.id is not None
    with write_turn(engine) as writer:
        entry = ExportLog(user_id=user.id, kind=dataset, filters=filters, via_token=via_token)
        writer.add(entry)
        writer.flush()
        assert entry.id is not None
        return entry.id


def _finish_log(engine: Engine, log_id: int, rows: int) -> None:
    # The download has been sent by now: a busy database may not cut it short. The audit
    # row exists already (written before the first byte); only its row count is missed.
    try:
        with write_turn(engine) as writer:
            entry = writer.get(ExportLog, log_id)
            if entry is not None:
                entry.rows, entry.finished_at = rows, utcnow()
                writer.add(entry)
    except Exception:
        log.warning("could not record the row count of export %s", log_id, exc_info=True)


def _stream(
    request: Request,
    user: User,
    session: Session,
    dataset: str,
    fmt: str,
    bom: bool,
    calibration_id: int | None = None,
) -> Response:
    """A download, recorded in the audit log before its first byte. `calibration_id`: the
    calibration export of that one session (its facilitator's download, authorised by the
    caller)."""
    engine: Engine = request.app.state.engine
    f, _params = _filters(request, user)
    if dataset == "calibration" and user.role != Role.admin and calibration_id is None:
        raise Invalid("Calibration data is exported by district admins.")
    versions: list[RubricVersion] = []
    if dataset != "calibration":
        versions = exports.rubric_versions(engine, user, f)
        if dataset == "observations_wide" and len(versions) > 1:
            raise Invalid(
                "The wide format needs a single rubric version; "
                "choose one (or use the long format)."
            )
        if dataset == "participation_events":  # the versions with a participation map
            versions = [v for v in versions if exports.has_participation(v)]
    via_token = request.headers.get("authorization", "").lower().startswith("bearer ")
    # Scripts may ask for the exact text (raw=1): spreadsheet safety puts an apostrophe before
    # a leading =, +, - or @, which R and pandas would read as part of the value.
    safe = not (via_token and request.query_params.get("raw") == "1")
    tz = ZoneInfo(request.app.state.settings.timezone)
    own = request.app.state.settings.export_reflections  # teachers' reflection text, or not
    # The long format can add each row's item and value on the rubric's latest version.
    harmonised = (
        exports.harmony(engine, versions)
        if dataset == "observations_long" and request.query_params.get("harmonised") == "1"
        else None
    )
    filters = {
        **f.as_dict(),
        "format": fmt,
        **({} if safe else {"raw": "1"}),
        **({"harmonised": "1"} if harmonised is not None else {}),
    }
    if dataset == "calibration":
        filters = {"format": fmt, **({"session_id": calibration_id} if calibration_id else {})}
    log_id = _log(engine, user, dataset, filters, via_token)
    counter = [0]
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    name = f"walkthrough-{dataset.replace('_', '-')}-{stamp}"
    if calibration_id is not None:
        name = f"walkthrough-calibration-session-{calibration_id}-{stamp}"

    def rows() -> Iterator[bytes]:
        if dataset == "calibration":
            yield from exports.stream_calibration(
                engine, bom=bom, counter=counter, session_id=calibration_id, safe=safe
            )
        elif dataset == "observations_wide":
            yield from exports.stream_wide(
                engine, user, f, bom=bom, counter=counter, tz=tz, safe=safe, reflections=own
            )
        elif dataset == "participation_events":
            yield from exports.stream_events(
                engine, user, f, bom=bom, counter=counter, tz=tz, safe=safe
            )
        else:
            yield from exports.stream_long(
                engine,
                user,
                f,
                bom=bom,
                counter=counter,
                tz=tz,
                safe=safe,
                harmonised=harmonised,
                reflections=own,
            )
        _finish_log(engine, log_id, counter[0])

    if fmt == "csv":
        return StreamingResponse(
            rows(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    columns = (
        exports.CALIBRATION_COLUMNS
        if dataset == "calibration"
        else exports.data_columns(dataset, versions, harmonised=harmonised is not None)  # type: ignore[arg-type]
    )
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (streamed below)
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(f"{name}.csv", "w", force_zip64=True) as data:
            for chunk in rows():
                data.write(chunk)
        archive.writestr("codebook.csv", exports.codebook_csv(columns))
        if versions:
            archive.writestr("rubric_items.csv", exports.rubric_items_csv(versions))
        if exports.has_maps(versions):
            archive.writestr("participation_codes.csv", exports.participation_codes_csv(versions))
        package = exports.datapackage(dataset, versions, f"{name}.csv", columns)  # type: ignore[arg-type]
        archive.writestr("datapackage.json", package)
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        with spool:
            while block := spool.read(256 * 1024):
                yield block

    return StreamingResponse(
        chunks(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
    )


@router.get("/exports/download")
def download(request: Request, user: Exporter, session: SessionDep) -> Response:
    """Download the chosen data set as CSV, or as a zip with its codebook."""
    fmt = request.query_params.get("format", "csv")
    if fmt not in ("csv", "zip"):
        raise Invalid("format: csv or zip.")
    return _stream(
        request, user, session, _dataset(request), fmt, request.query_params.get("bom") == "1"
    )


@router.get("/api/exports/observations.csv", tags=["exports"])
def api_observations(request: Request, user: Exporter, session: SessionDep) -> Response:
    """Observations as CSV for scripts (`Authorization: Bearer <token>`):
    `kind=long|wide|events` (events: one row per contribution logged on a participation map),
    `from`, `to`, `school_id` (repeatable), `rubric` (slug or slug:version), `observer_id`,
    `status`, `bom=1`, `harmonised=1` (long: each row's item and value on the rubric's latest
    version, through the crosswalk). Principals receive their own school only."""
    kind = request.query_params.get("kind", "long")
    if kind not in ("long", "wide", "events"):
        raise Invalid("kind: long, wide or events.")
    return _stream(
        request,
        user,
        session,
        "participation_events" if kind == "events" else f"observations_{kind}",
        "csv",
        request.query_params.get("bom") == "1",
    )


@router.get("/api/exports/calibration.csv", tags=["exports"])
def api_calibration(request: Request, user: Admin, session: SessionDep) -> Response:
    """Every calibration rating as CSV (admins)."""
    return _stream(
        request, user, session, "calibration", "csv", request.query_params.get("bom") == "1"
    )


@router.get("/admin/exports", response_class=HTMLResponse)
def audit_page(request: Request, user: Admin, session: SessionDep) -> Response:
    """Every export: who, when, which filters, how many rows."""
    entries = list(session.exec(select(ExportLog).order_by(col(ExportLog.id).desc()).limit(500)))
    users = {u.id: u for u in session.exec(select(User))}
    return render(request, "exports/audit.html", {"entries": entries, "users": users})


@router.get("/calibration/{session_id}/ratings.csv")
def calibration_session_csv(
    request: Request, user: Facilitator, session: SessionDep, session_id: Id
) -> Response:
    """One session's ratings for its facilitator (or an admin): the district calibration
    export filtered to that session, in the same layout, recorded in the audit log."""
    calibration = calibration_service.for_facilitator(
        session=session, user=user, session_id=session_id
    )
    fmt = request.query_params.get("format", "csv")
    if fmt not in ("csv", "zip"):
        raise Invalid("format: csv or zip.")
    return _stream(
        request,
        user,
        session,
        "calibration",
        fmt,
        request.query_params.get("bom") == "1",
        calibration_id=calibration.id,
    )


CERTIFICATION_COLUMNS = [
    "observer_id",
    "observer",
    "role",
    "school",
    "rubric_slug",
    "status",
    "certified_on",
    "expires_on",
    "sessions",
    "latest_session_id",
    "latest_session",
    "latest_session_on",
    "latest_ratings",
    "latest_exact",
    "latest_within_one",
    "rule_exact",
    "rule_within_one",
    "rule_sessions_in_a_row",
    "rule_valid_days",
]


@router.get("/exports/certification.csv")
def certification_csv(request: Request, user: Facilitator, session: SessionDep) -> Response:
    """The certification table as CSV (one row per observer x rubric), recorded in the
    export audit log."""
    rule = calibration_service.CertificationRule.from_settings(request.app.state.settings)
    chosen = request.query_params.get("rubric") or None
    if chosen is not None and chosen not in dict(
        calibration_service.rubric_choices(session=session)
    ):
        raise Invalid("rubric: choose one of the district's rubrics.")
    rows = calibration_service.certification(
        session=session, rule=rule, now=utcnow(), rubric_slug=chosen
    )
    schools = {s.id: s.name for s in session.exec(select(School))}
    tz = ZoneInfo(request.app.state.settings.timezone)

    def day(value: datetime | None) -> str:
        return value.astimezone(tz).date().isoformat() if value else ""

    out = exports.CsvWriter(bom=request.query_params.get("bom") == "1")
    out.row(CERTIFICATION_COLUMNS)
    for c in rows:
        latest = c["latest"]
        out.row(
            [
                c["user"].id,
                c["user"].name,
                c["user"].role.value,
                schools.get(c["user"].school_id, ""),
                c["rubric"],
                c["status"],
                day(c["certified_on"]),
                day(c["expires"]),
                len(c["sessions"]),
                latest["session"].id,
                latest["session"].title,
                day(latest["on"]),
                latest["n"],
                f"{latest['exact']:.4f}",
                f"{latest['within_one']:.4f}",
                rule.exact,
                rule.within_one,
                rule.in_a_row,
                rule.valid_days,
            ]
        )
    # Recorded like every export, through the write turn (a GET's own session must not
    # write: on SQLite its commit could meet a busy database after the work is done).
    engine: Engine = request.app.state.engine
    via_token = request.headers.get("authorization", "").lower().startswith("bearer ")
    log_id = _log(engine, user, "certification", {"rubric": chosen} if chosen else {}, via_token)
    _finish_log(engine, log_id, len(rows))
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    return Response(
        out.drain(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="walkthrough-certification-{stamp}.csv"'
        },
    )
