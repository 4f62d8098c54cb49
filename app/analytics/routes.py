"""Implementation data pages: the dashboard of every item kind (and a CSV of its figures),
trends by month, and coverage of who has been visited."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlmodel import Session

from app.accounts import service as accounts
from app.accounts.deps import CurrentUser, require_roles
from app.accounts.models import GRADES, Role, User
from app.analytics import service
from app.charts import stacked_bars, trend_line, value_bars
from app.db import SessionDep, district_timezone, parse_day, parse_id, utcnow
from app.exports.csv import CsvWriter
from app.rubrics import service as rubrics
from app.rubrics.crosswalk import origin
from app.rubrics.models import RubricStatus, RubricVersion
from app.web import render

router = APIRouter()
Lead = Depends(require_roles(Role.principal, Role.facilitator, Role.admin))
CHART_ROWS = 30  # a chart shows at most this many groups; the table beside it lists every one


@dataclass
class Query:
    """A dashboard request as read from its query string: bad values are ignored and named."""

    params: dict[str, str]
    notes: dict[str, str]
    versions: list[RubricVersion]
    chosen: RubricVersion | None
    filters: service.Filters | None
    by: str
    school_scoped: bool


def _read(request: Request, session: Session, user: User, *, default_by: str) -> Query:
    params = {k: v[:200] for k, v in request.query_params.items()}
    notes: dict[str, str] = {}
    versions = [
        v
        for v in rubrics.list_versions(session=session, user=user)
        if v.status != RubricStatus.draft  # drafts have no visits (facilitators see them)
    ]
    wanted = parse_id(params.get("rubric_version_id", ""))
    chosen = next((v for v in versions if v.id == wanted), None)
    if chosen is None:
        recent = service.latest_rubric_version(session=session, user=user)
        chosen = next((v for v in versions if v.id == recent), versions[0] if versions else None)

    def day(name: str) -> date | None:
        raw = params.get(name, "").strip()
        if not raw:
            return None
        found = parse_day(raw)
        if found is None:
            notes[name] = "Use a date like 2026-11-22."
        return found

    today = utcnow().astimezone(district_timezone(session)).date()
    start = day("from")
    if "from" not in params:
        start = service.school_year_start(today)
        params["from"] = start.isoformat()
    end = day("to")
    school_scoped = user.role in (Role.observer, Role.principal)
    school_id = user.school_id if school_scoped else parse_id(params.get("school_id", ""))
    grade = params.get("grade") or None
    if grade is not None and grade not in GRADES:
        notes["grade"] = "Choose a grade from the list."
        grade = None
    by = params.get("by") or default_by
    if by not in service.GROUP_BYS:
        notes["by"] = "Group by one of: " + ", ".join(service.GROUP_BYS) + "."
        by = default_by
    if by == "teacher" and school_id is None:
        notes["by"] = "Choose a school to see its teachers; shown by school meanwhile."
        by = "school"
    filters = None
    if chosen is not None and chosen.id is not None:
        filters = service.Filters(
            rubric_version_id=chosen.id,
            date_from=start,
            date_to=end,
            school_id=school_id,
            grade=grade,
            subject=(params.get("subject") or "").strip() or None,
            observer_id=parse_id(params.get("observer_id", "")),
            teacher_id=parse_id(params.get("teacher_id", "")),
        )
    return Query(params, notes, versions, chosen, filters, by, school_scoped)


def _default_by(user: User) -> str:
    """A principal reads their school by teacher, a coach their own visits by month, the
    district by school."""
    return {Role.principal: "teacher", Role.observer: "month"}.get(user.role, "school")


def _figures(request: Request, session: Session, user: User, q: Query) -> service.Dashboard:
    assert q.chosen is not None and q.filters is not None
    return service.figures(
        session=session,
        user=user,
        rubric=q.chosen,
        filters=q.filters,
        by=q.by,
        small_below=request.app.state.settings.small_group_visits,
    )


def _charts(dashboard: service.Dashboard) -> dict[str, Markup]:
    """One chart per item, of the figure its kind is read by."""
    shown = dashboard.groups[:CHART_ROWS]
    out: dict[str, Markup] = {}
    for figures in dashboard.items:
        item = figures.item
        cells = [(g, figures.cells.get(g.key) or service.Cell()) for g in shown]
        if item.kind == "scale":
            levels = [(lv.value, lv.label) for lv in item.levels]
            svg = stacked_bars(
                [
                    (
                        g.label + (" (small)" if g.small else ""),
                        [c.levels.get(v, 0) for v, _ in levels],
                    )
                    for g, c in cells
                ],
                [f"{v} {label}" for v, label in levels],
                title=item.title,
            )
        elif item.kind == "count":
            rows = [(g.label, c.per_visit, c.visits, g.small) for g, c in cells]
            top = max((v for _g, v, _n, _s in rows if v is not None), default=1.0)
            svg = value_bars(rows, title=item.title, maximum=top, fmt="{:.1f}")
        elif item.kind == "participation":
            # n: the lessons mapped, which the share rests on (not every visit)
            rows = [(g.label, c.speakers_share, c.filled, g.small) for g, c in cells]
            svg = value_bars(rows, title=f"{item.title}: students who spoke", maximum=1.0)
        else:
            rows = [
                (
                    g.label,
                    c.share_seen if item.kind == "check" else c.share_filled,
                    c.visits,
                    g.small,
                )
                for g, c in cells
            ]
            svg = value_bars(rows, title=item.title, maximum=1.0)
        out[item.key] = Markup(svg)  # noqa: S704 (the chart functions escape every text)
    return out


def _choices(session: Session, user: User) -> dict[str, Any]:
    schools = accounts.list_schools(session=session)
    return {
        "schools": schools,
        "grades": GRADES,
        "group_bys": service.GROUP_BYS,
        "observers": service.observers_in_scope(session=session, user=user),
    }


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Every item of a rubric version by school, grade, teacher, observer, month or week."""
    q = _read(request, session, user, default_by=_default_by(user))
    dashboard = _figures(request, session, user, q) if q.filters is not None else None
    return render(
        request,
        "analytics/dashboard.html",
        {
            **_choices(session, user),
            "q": q,
            "dashboard": dashboard,
            "charts": _charts(dashboard) if dashboard else {},
            "chart_rows": CHART_ROWS,
            "csv_query": request.url.query,
        },
    )


@router.get("/dashboard.csv")
def dashboard_csv(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """The dashboard's figures as CSV, one row per group x item x measure."""
    q = _read(request, session, user, default_by=_default_by(user))
    out = CsvWriter(bom=request.query_params.get("bom") == "1")
    out.row(service.FIGURE_COLUMNS)
    if q.filters is not None and q.chosen is not None:
        for row in service.figure_rows(_figures(request, session, user, q), q.chosen):
            out.row(row)
    slug = f"{q.chosen.slug}-v{q.chosen.version}" if q.chosen else "none"
    return Response(
        out.drain(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="dashboard-{slug}-by-{q.by}.csv"'},
    )


@router.get("/dashboard/trends", response_class=HTMLResponse)
def trends_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Per item, its headline figure by month across the school year, with the change."""
    q = _read(request, session, user, default_by="month")
    if q.by not in ("month", "week"):
        q.by = "month"
        q.notes.pop("by", None)  # trends are by month or week, whatever else was asked
    # Earlier versions join through the crosswalk unless asked for this version alone.
    across = request.query_params.get("across", "1") != "0"
    earlier = (
        rubrics.earlier_versions(session=session, row=q.chosen) if q.chosen is not None else {}
    )
    origins: dict[str, str] = {}
    dashboard = None
    if q.filters is not None and q.chosen is not None and across and earlier:
        dashboard = service.figures_across(
            session=session,
            user=user,
            rubric=q.chosen,
            earlier=earlier,
            filters=q.filters,
            by=q.by,
            small_below=request.app.state.settings.small_group_visits,
        )
        origins = origin(
            rubrics.definition(q.chosen), {v: rubrics.definition(r) for v, r in earlier.items()}
        )
    elif q.filters is not None:
        dashboard = _figures(request, session, user, q)
    toggle = {k: v[:200] for k, v in request.query_params.items() if k != "across"}
    if across:
        toggle["across"] = "0"
    lines: dict[str, Markup] = {}
    points = service.trends(dashboard) if dashboard else {}
    if dashboard is not None:
        for figures in dashboard.items:
            kind = figures.item.kind
            series = [(p.label, p.value, p.visits) for p in points[figures.item.key]]
            if kind == "scale":
                top = float(max(lv.value for lv in figures.item.levels))  # type: ignore[union-attr]
                fmt = "{:.2f}"
            elif kind == "count":
                top = max((v for _l, v, _n in series if v is not None), default=1.0) or 1.0
                fmt = "{:.1f}"
            else:
                top, fmt = 1.0, "{:.0%}"
            lines[figures.item.key] = Markup(  # noqa: S704 (the chart escapes every text)
                trend_line(
                    [
                        (_short_period(p.period, q.by), v, n)
                        for p, (_l, v, n) in zip(points[figures.item.key], series, strict=True)
                    ],
                    title=figures.item.title,
                    maximum=top,
                    fmt=fmt,
                )
            )
    return render(
        request,
        "analytics/trends.html",
        {
            **_choices(session, user),
            "q": q,
            "dashboard": dashboard,
            "points": points,
            "lines": lines,
            "across": across and bool(earlier),
            "earlier": sorted(earlier),
            "origins": origins,
            "toggle": urlencode(toggle),
        },
    )


def _short_period(period: Any, by: str) -> str:
    if not isinstance(period, date):
        return "—"
    return period.strftime("%b") if by == "month" else period.strftime("%d %b")


def _local_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


@router.get("/dashboard/coverage", response_class=HTMLResponse, dependencies=[Lead])
def coverage_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """Is the tool used widely enough: teachers visited per school, who has not been visited
    since a date, visits per observer per week, and the spread over grades and subjects."""
    params = {k: v[:200] for k, v in request.query_params.items()}
    notes: dict[str, str] = {}
    tz = district_timezone(session)
    today = utcnow().astimezone(tz).date()
    weeks = request.app.state.settings.coverage_weeks
    since_day = today - timedelta(weeks=weeks)
    if params.get("since"):
        chosen = parse_day(params["since"])
        if chosen is None:
            notes["since"] = "Use a date like 2026-11-22."
        else:
            since_day = chosen
    school_id = (
        user.school_id if user.role == Role.principal else parse_id(params.get("school_id", ""))
    )
    since = _local_start(since_day, tz)
    schools = service.coverage_by_school(session=session, user=user, since=since)
    unvisited, unvisited_total = service.not_visited_since(
        session=session,
        user=user,
        since=since,
        school_id=school_id,
        total=sum(c.teachers - c.visited for c in schools if school_id in (None, c.school_id)),
    )
    spread = service.spread(
        session=session,
        user=user,
        start=since,
        end=_local_start(today + timedelta(days=1), tz),
        school_id=school_id,
    )
    names = {s.school_id: s.name for s in schools}
    return render(
        request,
        "analytics/coverage.html",
        {
            "params": params,
            "notes": notes,
            "since": since_day,
            "weeks": weeks,
            "schools": schools,
            "school_id": school_id,
            "school_names": names,
            "all_schools": accounts.list_schools(session=session),
            "unvisited": unvisited,
            "unvisited_total": unvisited_total,
            "spread": spread,
            "tz": tz,
        },
    )
