"""Implementation data: the analytics rows the write path keeps, and the dashboards, trends and
coverage aggregated from them in SQL (GROUP BY), never by loading observations into Python."""

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session
from sqlmodel import select as select_models

from app.accounts.models import GRADES, Role, School, Teacher, User
from app.analytics.models import ObservationItem, ObservationItemSum
from app.db import district_timezone
from app.observations import participation
from app.observations.models import Observation
from app.rubrics.crosswalk import Trace, lineage
from app.rubrics.loader import AnyItem, ParticipationItem, RubricDefinition, ScaleItem
from app.rubrics.models import RubricVersion
from app.rubrics.service import definition as rubric_definition

_TABLE = ObservationItem.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Visit:
    """What the analytics rows copy from an observation as stored."""

    id: uuid.UUID
    observer_id: int
    school_id: int
    teacher_id: int | None
    grade: str
    subject: str
    rubric_version_id: int
    observed_at: datetime
    duration_seconds: int | None
    status: str
    deleted: bool = False


def local_days(observed_at: datetime, tz: ZoneInfo) -> tuple[date, date, date]:
    """The visit's day, week (its Monday) and month (its first day) in the district's zone."""
    day = observed_at.astimezone(tz).date()
    return day, day - timedelta(days=day.weekday()), day.replace(day=1)


def item_rows(
    visit: Visit, definition: RubricDefinition, values: Mapping[str, Any], tz: ZoneInfo
) -> list[dict[str, Any]]:
    """One row per item of the rubric version, answered or not (the denominator of every rate).

    Unset tallies count 0 and unset look-fors "not seen", as the capture page shows them."""
    day, week, month = local_days(visit.observed_at, tz)
    common = {
        "observation_id": visit.id,
        "rubric_version_id": visit.rubric_version_id,
        "status": visit.status,
        "deleted": visit.deleted,
        "school_id": visit.school_id,
        "teacher_id": visit.teacher_id,
        "observer_id": visit.observer_id,
        "grade": visit.grade,
        "subject": visit.subject,
        "observed_at": visit.observed_at,
        "observed_on": day,
        "observed_week": week,
        "observed_month": month,
        "duration_seconds": visit.duration_seconds,
    }
    rows = []
    for _section, item in definition.items():
        entry = values.get(item.key) or {}
        raw = entry.get("value")
        not_observed = bool(entry.get("not_observed"))
        value: int | None = None
        figures: dict[str, int | None] = {}
        if isinstance(item, ParticipationItem):
            mapped = participation.laid_out(raw)
            lesson = participation.summarise(item, mapped)
            value = lesson.contributions if mapped else None
            filled = mapped is not None
            if mapped:
                figures = {
                    "students": lesson.students,
                    "speakers": lesson.speakers,
                    "top_share": _thousandths(lesson.top_share),
                    "gini": _thousandths(lesson.gini),
                }
        elif item.kind == "scale":
            value = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
            filled = value is not None or not_observed
        elif item.kind == "count":
            value = raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
            filled = True
        elif item.kind == "check":
            value = 1 if raw is True else 0
            filled = True
        else:
            filled = isinstance(raw, str) and raw.strip() != ""
        rows.append(
            {
                **common,
                "item_key": item.key,
                "kind": item.kind,
                "value": value,
                "not_observed": not_observed,
                "filled": filled,
                "has_evidence": bool(str(entry.get("evidence") or "").strip()),
                "students": figures.get("students"),
                "speakers": figures.get("speakers"),
                "top_share": figures.get("top_share"),
                "gini": figures.get("gini"),
            }
        )
    return rows


def _thousandths(x: float | None) -> int | None:
    return None if x is None else round(x * 1000)


def replace_rows(
    session: Session,
    ids: Iterable[uuid.UUID],
    rows: list[dict[str, Any]],
    *,
    new: set[uuid.UUID] = frozenset(),  # type: ignore[assignment]
) -> None:
    """Make these observations' analytics rows the given ones (their current revision), and
    move the sums by the difference. `new`: ids just created, which have no rows yet."""
    had_rows = [i for i in ids if i not in new]
    conn = session.connection()
    delta = _Sums()
    if had_rows:
        delta.add(_counted(conn, had_rows), sign=-1)
        conn.execute(delete(_TABLE).where(_TABLE.c.observation_id.in_(had_rows)))
    if rows:
        conn.execute(insert(_TABLE), rows)
        delta.add([r for r in rows if r["status"] == "submitted" and not r["deleted"]], sign=1)
    delta.apply(conn)


def mark_deleted(session: Session, obs_id: uuid.UUID, deleted: bool) -> None:
    """A tombstone leaves the dashboards; a restore brings it back. Only rows not already in
    that state move the sums, so a second delete or restore changes nothing."""
    conn = session.connection()
    changing = _counted(conn, [obs_id], deleted=not deleted)
    conn.execute(
        update(_TABLE)
        .where(_C.observation_id == obs_id, _C.deleted == (not deleted))
        .values(deleted=deleted)
    )
    delta = _Sums()
    delta.add(changing, sign=-1 if deleted else 1)
    delta.apply(conn)


_M = ObservationItemSum.__table__  # type: ignore[attr-defined]
_SUM_KEY = ("rubric_version_id", "dim", "dim_key", "month", "week", "item_key", "bucket", "level")
_SUMS = (
    "visits",
    "total",
    "timed_total",
    "timed_seconds",
    "timed_visits",
    "filled",
    "evidence",
    "students",
    "speakers",
    "spoken",
    "top_share",
    "gini",
)


def _dims(row: dict[str, Any]) -> list[tuple[str, str, date, date]]:
    """The sums one analytics row counts in: (dim, key, month, week-part)."""
    month, week = row["observed_month"], row["observed_week"]
    part = max(week, month)  # the part of the week inside the visit's month
    return [
        ("school", str(row["school_id"]), month, month),
        ("observer", str(row["observer_id"]), month, month),
        ("grade", row["grade"], month, part),
        ("district", "", month, part),
    ]


def _counted(conn: Any, ids: list[uuid.UUID], *, deleted: bool = False) -> list[dict[str, Any]]:
    """The submitted rows of these observations: those the sums hold (not deleted), or with
    deleted=True those a restore would add."""
    stmt = select(_TABLE).where(
        _C.observation_id.in_(ids), _C.status == "submitted", _C.deleted == deleted
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


class _Sums:
    """Changes to the sums, gathered per key, then applied with additive upserts."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[Any, ...], list[int]] = {}

    def add(self, rows: list[dict[str, Any]], *, sign: int) -> None:
        for row in rows:
            scale = row["kind"] == "scale"
            if row["not_observed"]:
                bucket, level = 1, 0
            elif scale and row["value"] is not None:
                bucket, level = 0, row["value"]
            else:
                bucket, level = 2, 0
            # A visit's time counts for a participation item only when a map was laid out.
            timed = (row["duration_seconds"] or 0) > 0 and (
                row["kind"] != "participation" or row["filled"]
            )
            value = 0 if scale else row["value"] or 0
            amounts = (
                1,
                value,
                value if timed else 0,
                row["duration_seconds"] if timed else 0,
                1 if timed else 0,
                1 if row["filled"] else 0,
                1 if row["has_evidence"] else 0,
                row["students"] or 0,
                row["speakers"] or 0,
                1 if row["gini"] is not None else 0,
                row["top_share"] or 0,
                row["gini"] or 0,
            )
            for dim, dim_key, month, week in _dims(row):
                key = (
                    row["rubric_version_id"],
                    dim,
                    dim_key,
                    month,
                    week,
                    row["item_key"],
                    bucket,
                    level,
                )
                sums = self.by_key.setdefault(key, [0] * len(_SUMS))
                for i, amount in enumerate(amounts):
                    sums[i] += sign * amount

    def apply(self, conn: Any) -> None:
        changes = [
            {**dict(zip(_SUM_KEY, key, strict=True)), **dict(zip(_SUMS, sums, strict=True))}
            for key, sums in self.by_key.items()
            if any(sums)
        ]
        if not changes:
            return
        dialect = conn.dialect.name
        insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert_fn(_M)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(_SUM_KEY),
            set_={name: _M.c[name] + stmt.excluded[name] for name in _SUMS},
        )
        # A fixed order of keys, so two writers touching the same months never deadlock.
        conn.execute(stmt, sorted(changes, key=lambda c: tuple(str(c[k]) for k in _SUM_KEY)))


# --- who sees what ------------------------------------------------------------------------------

GROUP_BYS: dict[str, str] = {
    "school": "School",
    "grade": "Grade",
    "teacher": "Teacher",
    "observer": "Observer",
    "month": "Month",
    "week": "Week",
}
_C = _TABLE.c


def scope(user: User) -> ColumnElement[bool]:
    """Dashboards count submitted, undeleted visits: an observer's own, a principal's school's,
    everyone's for facilitators and admins."""
    base = and_(_C.status == "submitted", _C.deleted == false())
    if user.role in (Role.admin, Role.facilitator):
        return base
    if user.role == Role.principal and user.school_id is not None:
        # Their school (where a principal records, too): one condition an index can serve.
        return and_(base, _C.school_id == user.school_id)
    return and_(base, _C.observer_id == (user.id or 0))


@dataclass
class Filters:
    """Dashboard filters; dates are the district's calendar days, both ends included."""

    rubric_version_id: int
    date_from: date | None = None
    date_to: date | None = None
    school_id: int | None = None
    grade: str | None = None
    subject: str | None = None
    observer_id: int | None = None
    teacher_id: int | None = None

    def where(self) -> list[ColumnElement[bool]]:
        """The filters as SQL conditions on the analytics table."""
        conditions = [_C.rubric_version_id == self.rubric_version_id]
        if self.date_from is not None:
            conditions.append(_C.observed_on >= self.date_from)
        if self.date_to is not None:
            conditions.append(_C.observed_on <= self.date_to)
        for column, value in (
            (_C.school_id, self.school_id),
            (_C.grade, self.grade),
            (_C.subject, self.subject),
            (_C.observer_id, self.observer_id),
            (_C.teacher_id, self.teacher_id),
        ):
            if value is not None:
                conditions.append(column == value)
        return conditions


# --- figures ----------------------------------------------------------------------------------


@dataclass
class Cell:
    """What one group's visits recorded on one item."""

    visits: int = 0
    levels: Counter[int] = field(default_factory=Counter)
    not_observed: int = 0
    seen: int = 0  # check: visits where it was seen
    total: int = 0  # count: the sum of tallies
    timed_total: int = 0  # count: the sum of tallies of visits with a duration
    timed_seconds: int = 0  # their observed time
    timed_visits: int = 0
    filled: int = 0  # text: visits with something written
    evidence: int = 0
    students: int = 0  # participation: students on the maps
    speakers: int = 0  # ... who spoke at least once
    spoken: int = 0  # ... lessons where someone spoke
    top_share: int = 0  # ... the top-3 shares of those lessons, in thousandths, summed
    gini: int = 0  # ... their Gini coefficients, in thousandths, summed

    @property
    def rated(self) -> int:
        """Scale: visits given a level ("not observed" and unanswered are not scores)."""
        return sum(self.levels.values())

    @property
    def unanswered(self) -> int:
        """Scale: visits with neither a level nor "not observed"."""
        return self.visits - self.rated - self.not_observed

    @property
    def mean_level(self) -> float | None:
        """Scale: the mean of the levels given."""
        return sum(v * n for v, n in self.levels.items()) / self.rated if self.rated else None

    @property
    def share_seen(self) -> float | None:
        """Check: the share of visits where it was seen."""
        return self.seen / self.visits if self.visits else None

    @property
    def per_visit(self) -> float | None:
        """Count: the mean tally per visit."""
        return self.total / self.visits if self.visits else None

    @property
    def per_10_minutes(self) -> float | None:
        """Count: tallies per 10 minutes of observed time (visits with a duration only)."""
        return self.timed_total * 600 / self.timed_seconds if self.timed_seconds else None

    @property
    def share_filled(self) -> float | None:
        """Text: the share of visits where something was written."""
        return self.filled / self.visits if self.visits else None

    @property
    def per_lesson(self) -> float | None:
        """Participation: contributions per lesson with a map."""
        return self.total / self.filled if self.filled else None

    @property
    def speakers_share(self) -> float | None:
        """Participation: the share of students on the maps who spoke at least once."""
        return self.speakers / self.students if self.students else None

    @property
    def mean_top_share(self) -> float | None:
        """Participation: the mean share of the most active 3 (lessons where someone spoke)."""
        return self.top_share / 1000 / self.spoken if self.spoken else None

    @property
    def mean_gini(self) -> float | None:
        """Participation: the mean Gini coefficient (lessons where someone spoke)."""
        return self.gini / 1000 / self.spoken if self.spoken else None

    def add(self, other: "Cell") -> None:
        """Fold another group's figures into this one (the all-groups row)."""
        self.levels.update(other.levels)
        for name in (f.name for f in fields(self) if f.name != "levels"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def headline(self, kind: str) -> float | None:
        """The one number a trend follows: mean level, share seen, tallies per visit, share
        filled."""
        return {
            "scale": self.mean_level,
            "check": self.share_seen,
            "count": self.per_visit,
            "text": self.share_filled,
            "participation": self.speakers_share,
        }[kind]


@dataclass
class Group:
    """One group of a dashboard (a school, a month, ...) in display order."""

    key: Any
    label: str
    visits: int
    small: bool


@dataclass
class ItemFigures:
    """One item's figures by group, and for all groups together."""

    item: AnyItem
    section: str
    cells: dict[Any, Cell]
    all: Cell


@dataclass
class Dashboard:
    """Every item of a rubric version by group: what the dashboard page, its CSV and the
    trends show."""

    by: str
    groups: list[Group]
    items: list[ItemFigures]
    visits: int
    small_below: int


def _group_column(by: str) -> Any:
    return {
        "school": _C.school_id,
        "grade": _C.grade,
        "teacher": _C.teacher_id,
        "observer": _C.observer_id,
        "month": _C.observed_month,
        "week": _C.observed_week,
    }[by]


def figures(
    *,
    session: Session,
    user: User,
    rubric: RubricVersion,
    filters: Filters,
    by: str,
    small_below: int = 5,
    sums: bool = True,
) -> Dashboard:
    """Every item's figures by group, in one GROUP BY: over the sums when they can answer
    (district-wide views over whole periods), else over the analytics rows in scope. `sums`
    False always reads the rows (tests compare the two)."""
    plan = _sums_plan(user, filters, by) if sums else None
    stmt = _sums_query(filters, by, *plan) if plan else _rows_query(user, filters, by)
    conn = session.connection()
    if plan is None and conn.dialect.name == "postgresql":
        # A report over many rows: hash the groups in memory rather than sort them on disk,
        # and skip JIT compilation, which costs more than it saves on a query this size.
        conn.execute(text("SET LOCAL work_mem = '64MB'"))
        conn.execute(text("SET LOCAL jit = off"))
    numeric_keys = plan is not None and by in ("school", "observer")
    definition = rubric_definition(rubric)
    kinds = {item.key: item.kind for _s, item in definition.items()}
    cells: dict[str, dict[Any, Cell]] = {key: {} for key in kinds}
    for grp, key, lv, not_observed, *figures_ in conn.execute(stmt):
        if key not in cells:
            continue
        if numeric_keys:
            grp = int(grp)
        elif plan is not None and by == "week":
            grp -= timedelta(days=grp.weekday())  # a week's two parts either side of a month
        # PostgreSQL sums integers as numeric (Decimal): these are all whole numbers.
        n, total, timed_total, seconds, timed_n, filled, ev, *talk = (int(x or 0) for x in figures_)
        cell = cells[key].setdefault(grp, Cell())
        cell.visits += n
        cell.filled += filled
        cell.evidence += ev
        if not_observed:
            cell.not_observed += n
        elif lv is not None:
            cell.levels[lv] += n
        kind = kinds[key]
        if kind == "check":
            cell.seen += total
        elif kind in ("count", "participation"):
            cell.total += total
            cell.timed_total += timed_total
            cell.timed_seconds += seconds
            cell.timed_visits += timed_n
        if kind == "participation":
            students, speakers, spoken, top_share, gini = talk
            cell.students += students
            cell.speakers += speakers
            cell.spoken += spoken
            cell.top_share += top_share
            cell.gini += gini
    visits: dict[Any, int] = {}
    for per_group in cells.values():
        for grp, cell in per_group.items():
            visits[grp] = max(visits.get(grp, 0), cell.visits)
    labels = _labels(session, by, list(visits))
    groups = [
        Group(key, labels.get(key, _fallback_label(by, key)), n, n < small_below)
        for key, n in visits.items()
    ]
    groups.sort(key=lambda g: _sort_key(by, g))
    items = []
    for section, item in definition.items():
        everyone = Cell()
        for cell in cells[item.key].values():
            everyone.add(cell)
        items.append(ItemFigures(item, section.title, cells[item.key], everyone))
    total_visits = max((i.all.visits for i in items), default=0)
    return Dashboard(by, groups, items, total_visits, small_below)


def figures_across(
    *,
    session: Session,
    user: User,
    rubric: RubricVersion,
    earlier: dict[int, RubricVersion],
    filters: Filters,
    by: str,
    small_below: int = 5,
) -> Dashboard:
    """The figures of `rubric` joined with those of the `earlier` versions its items continue
    (the crosswalk): an older version's visits count for each item it shares in meaning, its
    levels mapped onto this version's; items new or changed start with the version that
    brought them. The trends of a district survive a new version this way."""
    target = figures(
        session=session, user=user, rubric=rubric, filters=filters, by=by, small_below=small_below
    )
    traces = lineage(
        rubric_definition(rubric), {v: rubric_definition(r) for v, r in earlier.items()}
    )
    per_version: dict[int, dict[str, Trace]] = {}
    for key, trace in traces.items():
        for step in trace:
            per_version.setdefault(step.version, {})[key] = step
    visits = {g.key: g.visits for g in target.groups}
    labels = {g.key: g.label for g in target.groups}
    for version, mapped in sorted(per_version.items()):
        row = earlier[version]
        older = figures(
            session=session,
            user=user,
            rubric=row,
            filters=replace(filters, rubric_version_id=row.id or 0),
            by=by,
            small_below=small_below,
        )
        by_key = {f.item.key: f for f in older.items}
        for item in target.items:
            found = mapped.get(item.item.key)
            source = by_key.get(found.key) if found else None
            if found is None or source is None:
                continue
            for grp, cell in source.cells.items():
                moved = _remapped(cell, found.levels)
                item.cells.setdefault(grp, Cell()).add(moved)
                item.all.add(moved)
        for g in older.groups:
            visits[g.key] = visits.get(g.key, 0) + g.visits
            labels.setdefault(g.key, g.label)
    groups = [Group(k, labels[k], n, n < small_below) for k, n in visits.items()]
    groups.sort(key=lambda g: _sort_key(by, g))
    return Dashboard(by, groups, target.items, sum(visits.values()), small_below)


def _remapped(cell: Cell, levels: dict[int, int] | None) -> Cell:
    """A copy of the cell with its levels moved onto the newer version's scale."""
    moved = Cell()
    moved.add(cell)
    if levels is not None:
        moved.levels = Counter()
        for value, n in cell.levels.items():
            if value in levels:
                moved.levels[levels[value]] += n
    return moved


def _sums_plan(user: User, filters: Filters, by: str) -> tuple[str, str] | None:
    """Which sums answer this view, if any: (dim, grain). They hold every submitted visit of
    the district, so they answer admins and facilitators, over whole periods of their grain
    (months; or weeks and months for the finer grain), with the filters their dim keeps."""
    if user.role not in (Role.admin, Role.facilitator):
        return None
    if filters.subject is not None or filters.teacher_id is not None:
        return None
    others = {
        "school": filters.school_id,
        "grade": filters.grade,
        "observer": filters.observer_id,
    }
    if by in ("school", "grade", "observer"):
        dim = by
    elif by in ("month", "week"):
        # Over time: the district's sums, or one school's (which exist by month only).
        dim = "district" if filters.school_id is None else "school"
    else:
        return None
    if any(v is not None for k, v in others.items() if k != dim):
        return None
    grain = "month" if dim in ("school", "observer") else "part"
    if by == "week" and grain == "month":
        return None
    if not (
        _aligned(filters.date_from, grain, start=True)
        and _aligned(filters.date_to, grain, start=False)
    ):
        return None
    return dim, grain


def _aligned(day: date | None, grain: str, *, start: bool) -> bool:
    """Does a range end fall on a period boundary of this grain?"""
    if day is None:
        return True
    edge = day if start else day + timedelta(days=1)
    return edge.day == 1 or (grain == "part" and edge.weekday() == 0)


def _sums_query(filters: Filters, by: str, dim: str, grain: str) -> Any:
    m = _M.c
    group = {
        "school": m.dim_key,
        "grade": m.dim_key,
        "observer": m.dim_key,
        "month": m.month,
        "week": m.week,
    }[by].label("grp")
    level = case((m.bucket == 0, m.level), else_=None)
    stmt = select(
        group,
        m.item_key,
        level,
        m.bucket == 1,
        *(func.sum(m[name]) for name in _SUMS),
    ).where(m.rubric_version_id == filters.rubric_version_id, m.dim == dim, m.visits > 0)
    key = {
        "school": filters.school_id,
        "grade": filters.grade,
        "observer": filters.observer_id,
    }.get(dim)
    if key is not None:
        stmt = stmt.where(m.dim_key == str(key))
    for day, start in ((filters.date_from, True), (filters.date_to, False)):
        if day is None:
            continue
        edge = day if start else day + timedelta(days=1)
        # A whole month: compare months. Otherwise a week edge: compare the week parts.
        column = m.month if edge.day == 1 or grain == "month" else m.week
        if start:
            stmt = stmt.where(column >= day)
        else:
            stmt = stmt.where(column <= day if column is m.month else column < edge)
    return stmt.group_by(group, m.item_key, m.bucket, m.level)


def _rows_query(user: User, filters: Filters, by: str) -> Any:
    group = _group_column(by).label("grp")
    scale = _C.kind == "scale"
    timed = and_(_C.duration_seconds > 0, or_(_C.kind != "participation", _C.filled))
    level = case((scale, _C.value), else_=None).label("level")
    return (
        select(
            group,
            _C.item_key,
            level,
            _C.not_observed,
            func.count().label("n"),
            func.sum(case((scale, 0), else_=func.coalesce(_C.value, 0))),
            func.sum(case((timed, func.coalesce(_C.value, 0)), else_=0)),
            func.sum(case((timed, _C.duration_seconds), else_=0)),
            func.sum(case((timed, 1), else_=0)),
            func.sum(case((_C.filled, 1), else_=0)),
            func.sum(case((_C.has_evidence, 1), else_=0)),
            func.sum(func.coalesce(_C.students, 0)),
            func.sum(func.coalesce(_C.speakers, 0)),
            func.sum(case((_C.gini.is_not(None), 1), else_=0)),
            func.sum(func.coalesce(_C.top_share, 0)),
            func.sum(func.coalesce(_C.gini, 0)),
        )
        .where(scope(user), *filters.where())
        .group_by(group, _C.item_key, level, _C.not_observed)
    )


def _fallback_label(by: str, key: Any) -> str:
    if key is None or key == "":
        return {"teacher": "Not on the roster", "grade": "No grade"}.get(by, "—")
    if isinstance(key, date):
        return key.strftime("%b %Y") if by == "month" else f"Week of {key.isoformat()}"
    return str(key)


def _labels(session: Session, by: str, keys: list[Any]) -> dict[Any, str]:
    """Names for the groups' ids (only those present: a roster of 20,000 is not loaded)."""
    ids = [k for k in keys if isinstance(k, int)]
    if not ids:
        return {}
    model: Any = {"school": School, "teacher": Teacher, "observer": User}.get(by)
    if model is None:
        return {}
    rows = session.connection().execute(
        select(model.__table__.c.id, model.__table__.c.name).where(model.__table__.c.id.in_(ids))
    )
    return {row[0]: row[1] for row in rows}


def _sort_key(by: str, group: Group) -> tuple[Any, ...]:
    if by in ("month", "week"):
        return (0, group.key or date.min)
    if by == "grade":
        order = GRADES.index(group.key) if group.key in GRADES else len(GRADES)
        return (order, str(group.key))
    return (group.key is None, group.label.lower())


# --- trends ------------------------------------------------------------------------------------


@dataclass
class TrendPoint:
    """One period of an item's trend: visits, the headline figure and its change."""

    period: date
    label: str
    visits: int
    value: float | None
    change: float | None
    small: bool


def trends(dashboard: Dashboard) -> dict[str, list[TrendPoint]]:
    """Per item, its headline figure by period (a dashboard grouped by month or week), every
    period from the first visit to the last (one without visits has no value, not a zero), with
    the change from the period just before (None when either has no value)."""
    groups = {g.key: g for g in dashboard.groups if isinstance(g.key, date)}
    periods: list[date] = []
    if groups:
        day, last = min(groups), max(groups)
        while day <= last:
            periods.append(day)
            day = _next_period(day, dashboard.by)
    out: dict[str, list[TrendPoint]] = {}
    for figures_ in dashboard.items:
        points: list[TrendPoint] = []
        previous: float | None = None
        for period in periods:
            group = groups.get(period)
            cell = figures_.cells.get(period)
            value = cell.headline(figures_.item.kind) if cell else None
            change = value - previous if value is not None and previous is not None else None
            label = group.label if group else _fallback_label(dashboard.by, period)
            # The item's own visits: across versions, an item new in the latest one rests on
            # fewer visits than the period's total.
            visits = cell.visits if cell else 0
            if cell and figures_.item.kind == "participation":
                visits = cell.filled  # a map's figures rest on the lessons mapped
            small = bool(cell) and visits < dashboard.small_below
            points.append(TrendPoint(period, label, visits, value, change, small))
            previous = value
        out[figures_.item.key] = points
    return out


def _next_period(day: date, by: str) -> date:
    if by == "week":
        return day + timedelta(days=7)
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def school_year_start(today: date) -> date:
    """August 1st of the school year that today belongs to."""
    return date(today.year if today.month >= 8 else today.year - 1, 8, 1)


# --- coverage ----------------------------------------------------------------------------------

_O = Observation.__table__.c  # type: ignore[attr-defined]
_T_TABLE = Teacher.__table__  # type: ignore[attr-defined]
_T = _T_TABLE.c


def _visits(user: User) -> ColumnElement[bool]:
    """Submitted, undeleted visits this user may count (coverage is about schools)."""
    base = and_(_O.status == "submitted", _O.deleted_at.is_(None))
    if user.role in (Role.admin, Role.facilitator):
        return base
    return and_(base, _O.school_id == (user.school_id or 0))


def _schools_in_scope(user: User) -> ColumnElement[bool]:
    if user.role in (Role.admin, Role.facilitator):
        return true()
    return _T.school_id == (user.school_id or 0)


@dataclass
class SchoolCoverage:
    """How widely one school's teachers have been visited."""

    school_id: int
    name: str
    teachers: int
    visited: int
    visits: int

    @property
    def share(self) -> float | None:
        """The share of active teachers visited since the coverage date."""
        return self.visited / self.teachers if self.teachers else None


def _visited_since(user: User, since: datetime) -> ColumnElement[bool]:
    """The teacher (of the outer query) has a visit this user may count since `since`: an
    index probe per teacher, not a pass over every observation."""
    return (
        select(_O.id).where(_visits(user), _O.teacher_id == _T.id, _O.observed_at >= since).exists()
    )


def _last_visits(user: User, school_id: int | None) -> Any:
    """Each teacher's latest visit this user may count: one grouped pass, joined by teacher."""
    stmt = select(_O.teacher_id.label("teacher_id"), func.max(_O.observed_at).label("last")).where(
        _visits(user), _O.teacher_id.is_not(None)
    )
    if school_id is not None:
        stmt = stmt.where(_O.school_id == school_id)
    return stmt.group_by(_O.teacher_id).subquery()


def coverage_by_school(
    *, session: Session, user: User, since: datetime, school_id: int | None = None
) -> list[SchoolCoverage]:
    """Per school in scope: active teachers, those visited since `since`, and the visits since."""
    visited = func.sum(case((_visited_since(user, since), 1), else_=0))
    stmt = (
        select(_T.school_id, func.count(), visited)
        .where(_T.active == true(), _schools_in_scope(user))
        .group_by(_T.school_id)
    )
    if school_id is not None:
        stmt = stmt.where(_T.school_id == school_id)
    conn = session.connection()
    teachers = {row[0]: (int(row[1]), int(row[2] or 0)) for row in conn.execute(stmt)}
    visits_stmt = (
        select(_O.school_id, func.count())
        .where(_visits(user), _O.observed_at >= since)
        .group_by(_O.school_id)
    )
    if school_id is not None:
        visits_stmt = visits_stmt.where(_O.school_id == school_id)
    visits: dict[int, int] = {row[0]: row[1] for row in conn.execute(visits_stmt)}
    names = _labels(session, "school", list(teachers))
    out = [
        SchoolCoverage(sid, names.get(sid, str(sid)), n, seen, visits.get(sid, 0))
        for sid, (n, seen) in teachers.items()
    ]
    return sorted(out, key=lambda c: c.name.lower())


@dataclass
class Unvisited:
    """A teacher not visited since the coverage date, with their last visit if any."""

    teacher_id: int
    name: str
    school_id: int
    grades: str
    last: datetime | None


def not_visited_since(
    *,
    session: Session,
    user: User,
    since: datetime,
    school_id: int | None,
    limit: int = 100,
    total: int | None = None,
) -> tuple[list[Unvisited], int]:
    """Active teachers in scope not visited since `since` (never visited first), and how many
    (`total`, when the caller already counted them by school, is not counted again)."""
    conditions = [_T.active == true(), _schools_in_scope(user), ~_visited_since(user, since)]
    if school_id is not None:
        conditions.append(_T.school_id == school_id)
    conn = session.connection()
    if total is None:
        total = conn.execute(
            select(func.count()).select_from(_T_TABLE).where(*conditions)
        ).scalar_one()
    last = _last_visits(user, school_id)
    rows = conn.execute(
        select(_T.id, _T.name, _T.school_id, _T.grades, last.c.last)
        .select_from(_T_TABLE.outerjoin(last, last.c.teacher_id == _T.id))
        .where(*conditions)
        .order_by(last.c.last.is_not(None), last.c.last, _T.name)
        .limit(limit)
    )
    return [Unvisited(r[0], r[1], r[2], r[3], r[4]) for r in rows], int(total)


@dataclass
class Spread:
    """Visits in a date range: per observer (and per week), per grade and per subject."""

    weeks: float
    observers: list[tuple[str, int]]
    grades: list[tuple[str, int]]
    subjects: list[tuple[str, int]]


def spread(
    *, session: Session, user: User, start: datetime, end: datetime, school_id: int | None
) -> Spread:
    """How visits spread over observers, grades and subjects between start and end."""
    conditions = [_visits(user), _O.observed_at >= start, _O.observed_at < end]
    if school_id is not None:
        conditions.append(_O.school_id == school_id)
    # One pass: counts by observer x grade x subject, folded three ways here.
    stmt = (
        select(_O.observer_id, _O.grade, _O.subject, func.count())
        .where(*conditions)
        .group_by(_O.observer_id, _O.grade, _O.subject)
    )
    observers: Counter[int] = Counter()
    grades: Counter[str] = Counter()
    subjects: Counter[str] = Counter()
    for observer, grade, subject, n in session.connection().execute(stmt):
        observers[observer] += n
        grades[grade] += n
        subjects[subject] += n
    names = _labels(session, "observer", list(observers))
    return Spread(
        weeks=max((end - start).total_seconds() / (7 * 86400), 1 / 7),
        observers=sorted(
            ((names.get(o, str(o)), n) for o, n in observers.items()), key=lambda x: (-x[1], x[0])
        ),
        grades=[
            (g or "No grade", grades[g])
            for g in sorted(grades, key=lambda g: _sort_key("grade", Group(g, "", 0, False)))
        ],
        subjects=sorted(((s or "No subject", n) for s, n in subjects.items()), key=lambda x: -x[1]),
    )


# --- choices and the CSV of figures --------------------------------------------------------------


def latest_rubric_version(*, session: Session, user: User) -> int | None:
    """The rubric version of the latest visit this user may count (the dashboard's default)."""
    stmt = (
        select(_O.rubric_version_id)
        .where(_visits(user) if user.role != Role.observer else _O.observer_id == user.id)
        .order_by(_O.observed_at.desc())
        .limit(1)
    )
    return session.connection().execute(stmt).scalar()


def observers_in_scope(*, session: Session, user: User) -> list[tuple[int, str]]:
    """People whose visits this user may filter by: everyone who records, or the school's."""
    u = User.__table__.c  # type: ignore[attr-defined]
    stmt = select(u.id, u.name).where(u.role.in_(["observer", "principal", "admin"]))
    if user.role == Role.observer:
        stmt = stmt.where(u.id == user.id)
    elif user.role == Role.principal:
        # The school's own observers, and district coaches who have visited it.
        visited = select(_O.observer_id).where(_O.school_id == (user.school_id or 0)).distinct()
        stmt = stmt.where(or_(u.school_id == (user.school_id or 0), u.id.in_(visited)))
    return [(r[0], r[1]) for r in session.connection().execute(stmt.order_by(u.name))]


FIGURE_COLUMNS = [
    "rubric_slug",
    "rubric_version",
    "group_by",
    "group",
    "group_visits",
    "small_group",
    "item_key",
    "item_title",
    "item_kind",
    "measure",
    "value",
]


def figure_rows(dashboard: Dashboard, rubric: RubricVersion) -> Iterable[list[Any]]:
    """The figures a dashboard shows, one row per group (and "All") x item x measure."""
    groups = [*dashboard.groups, Group("all", "All", dashboard.visits, False)]
    for figures_ in dashboard.items:
        item = figures_.item
        for group in groups:
            cell = figures_.all if group.key == "all" else figures_.cells.get(group.key)
            if cell is None:
                continue
            measures: list[tuple[str, Any]] = [("visits", cell.visits)]
            if isinstance(item, ScaleItem):
                measures += [
                    (f"level_{lv.value}", cell.levels.get(lv.value, 0)) for lv in item.levels
                ]
                measures += [
                    ("not_observed", cell.not_observed),
                    ("unanswered", cell.unanswered),
                    ("mean_level", cell.mean_level),
                ]
            elif item.kind == "check":
                measures += [("seen", cell.seen), ("share_seen", cell.share_seen)]
            elif item.kind == "participation":
                measures += [
                    ("lessons_mapped", cell.filled),
                    ("contributions", cell.total),
                    ("contributions_per_lesson", cell.per_lesson),
                    ("per_10_minutes", cell.per_10_minutes),
                    ("students", cell.students),
                    ("speakers", cell.speakers),
                    ("share_spoke", cell.speakers_share),
                    ("lessons_with_talk", cell.spoken),
                    ("mean_top3_share", cell.mean_top_share),
                    ("mean_gini", cell.mean_gini),
                ]
            elif item.kind == "count":
                measures += [
                    ("total", cell.total),
                    ("mean_per_visit", cell.per_visit),
                    ("timed_visits", cell.timed_visits),
                    ("per_10_minutes", cell.per_10_minutes),
                ]
            else:
                measures += [("filled", cell.filled), ("share_filled", cell.share_filled)]
            measures.append(("with_evidence", cell.evidence))
            label = group.label
            for measure, value in measures:
                if isinstance(value, float):
                    value = round(value, 4)
                yield [
                    rubric.slug,
                    rubric.version,
                    dashboard.by,
                    label,
                    group.visits,
                    group.small,
                    item.key,
                    item.title,
                    item.kind,
                    measure,
                    value,
                ]


# --- rebuilding ------------------------------------------------------------------------------


def rebuild(*, session: Session) -> int:
    """Make the analytics rows and sums anew from every observation (after the district's time
    zone changed, or to repair them); returns how many observations were read."""
    conn = session.connection()
    conn.execute(delete(_M))
    conn.execute(delete(_TABLE))
    tz = district_timezone(session)
    rubrics = {r.id: rubric_definition(r) for r in session.exec(select_models(RubricVersion))}
    o = Observation.__table__.c  # type: ignore[attr-defined]
    last: uuid.UUID | None = None
    done = 0
    while True:  # a page at a time, so memory stays flat however many there are
        page = select(Observation.__table__).order_by(o.id).limit(500)  # type: ignore[attr-defined]
        if last is not None:
            page = page.where(o.id > last)
        found = conn.execute(page).mappings().all()
        if not found:
            return done
        last = found[-1]["id"]
        rows: list[dict[str, Any]] = []
        for obs in found:
            visit = Visit(
                id=obs["id"],
                observer_id=obs["observer_id"],
                school_id=obs["school_id"],
                teacher_id=obs["teacher_id"],
                grade=obs["grade"],
                subject=obs["subject"],
                rubric_version_id=obs["rubric_version_id"],
                observed_at=obs["observed_at"],
                duration_seconds=obs["duration_seconds"],
                status=str(
                    obs["status"].value if hasattr(obs["status"], "value") else obs["status"]
                ),
                deleted=obs["deleted_at"] is not None,
            )
            rows.extend(item_rows(visit, rubrics[visit.rubric_version_id], obs["values"], tz))
        conn.execute(insert(_TABLE), rows)
        sums = _Sums()
        sums.add([r for r in rows if r["status"] == "submitted" and not r["deleted"]], sign=1)
        sums.apply(conn)
        done += len(found)
