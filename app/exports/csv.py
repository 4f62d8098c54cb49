"""CSV exports of observation and calibration data: streamed from a server-side cursor in
constant memory, RFC 4180 with CRLF line ends, formula-safe, with a codebook.

Decisions (see docs/exports.md):
- Long (tidy) format: one row per observation x item; the observation's overall notes and
  tags are columns of their own, repeated on each of its rows, so every row stands alone.
- Numbers are written as numbers; only text cells are neutralised against spreadsheet
  formulas (a leading =, +, -, @, tab or carriage return gets a leading apostrophe).
- Times are ISO 8601 with an offset, in UTC.
- Participation maps: in the long and wide formats a map's value is the number of student
  contributions (the wide format adds the lesson's figures); each contribution is a row of
  the participation events data set. Markers are numbered, never named.
"""

import csv
import io
import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, literal_column, select, true
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from app.accounts.models import Role, School, Teacher, User
from app.calibration.models import CalibrationSession, MasterScore, Rater, Rating, Stimulus
from app.feedback.models import FeedbackShare
from app.observations import participation
from app.observations.models import Observation, ObservationStatus
from app.rubrics.crosswalk import lineage
from app.rubrics.loader import ParticipationItem, RubricDefinition, ScaleItem
from app.rubrics.models import RubricStatus, RubricVersion

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2000

Kind = Literal["observations_long", "observations_wide", "participation_events"]

CALIBRATION_COLUMNS: list[tuple[str, str, str]] = [
    ("session_id", "integer", "Calibration session."),
    ("session_title", "string", "Its title."),
    ("rubric_slug", "string", "Rubric identifier."),
    ("rubric_version", "integer", "Rubric version number."),
    ("round", "integer", "Rating round (1, then 2 after discussion, ...)."),
    ("rater", "string", "Rater's display name."),
    ("rater_kind", "string", "account or guest."),
    ("stimulus", "string", "The excerpt rated."),
    ("item_key", "string", "Item identifier."),
    ("value", "integer", "The level given."),
    ("master_value", "integer", "The master (anchor) score, when set."),
    ("reason", "string", "The rater's optional one-line reason for the level."),
    ("rated_at", "datetime", "When the rating was last changed (ISO 8601, UTC)."),
]

LONG_COLUMNS: list[tuple[str, str, str]] = [
    ("observation_id", "string", "The observation's UUID (minted by the observer's device)."),
    ("revision", "integer", "The observation's revision number at export time."),
    ("status", "string", "draft or submitted."),
    ("observed_at", "datetime", "When the visit started (ISO 8601, UTC)."),
    ("submitted_at", "datetime", "When it was first submitted (ISO 8601, UTC); empty for drafts."),
    ("school", "string", "School name."),
    ("teacher", "string", "Teacher's name (from the roster, or as typed)."),
    (
        "teacher_district_id",
        "string",
        "The district's staff id, when the teacher is on the roster.",
    ),
    ("observer", "string", "Who recorded the observation."),
    ("grade", "string", "Grade observed."),
    ("subject", "string", "Subject or course."),
    ("rubric_slug", "string", "Rubric identifier."),
    ("rubric_version", "integer", "Rubric version number (every record pins its version)."),
    ("section", "string", "Rubric section of the item."),
    ("item_key", "string", "Item identifier within the rubric version."),
    ("item_title", "string", "Item wording."),
    ("item_kind", "string", "scale, count, check, text or participation."),
    (
        "value",
        "any",
        "Level (scale), tally (count), true/false (check), text, or for a participation map the "
        "number of student contributions logged (the teacher's talk moves not counted); empty "
        "if unrated or no map was laid out.",
    ),
    ("level_label", "string", "The label of the level, for scale items."),
    (
        "not_observed",
        "boolean",
        "true when the observer marked the item not observed (not a score).",
    ),
    ("evidence", "string", "The observer's evidence note for the item."),
    ("tags", "string", "The observation's tags, separated by '; '."),
    ("overall_notes", "string", "The observation's overall notes (repeated on each of its rows)."),
    ("observed_date", "date", "The day of the visit in the district's time zone (YYYY-MM-DD)."),
    ("duration_seconds", "integer", "How long the visit lasted in seconds; empty if not recorded."),
    (
        "timed_notes",
        "string",
        'The time-stamped evidence notes as JSON: [{"minute": 3, "text": "..."}, ...].',
    ),
    (
        "feedback_state",
        "string",
        "Feedback to the teacher: not_shared, shared, opened, reflected or acknowledged.",
    ),
    ("feedback_shared_at", "datetime", "When the feedback was shared (its live link)."),
    ("feedback_opened_at", "datetime", "When the teacher first opened it."),
    ("feedback_reflected_at", "datetime", "When the teacher wrote their reflection."),
    ("feedback_acknowledged_at", "datetime", "When the teacher acknowledged it."),
    (
        "feedback_reflection",
        "string",
        "The teacher's reflection: empty unless the district exports it "
        "(WALKTHROUGH_EXPORT_REFLECTIONS).",
    ),
]
# The long format's option `harmonised=1` adds these: each row's item and value on the scale
# of its rubric's latest version, through the crosswalk (docs/rubrics.md).
HARMONISED_COLUMNS: list[tuple[str, str, str]] = [
    (
        "harmonised_version",
        "integer",
        "The rubric's latest version, onto which the harmonised columns map each row.",
    ),
    (
        "harmonised_item_key",
        "string",
        "The latest version's item this row's item continues (the crosswalk); empty when it is "
        "not comparable (changed or dropped since).",
    ),
    (
        "harmonised_value",
        "any",
        "The value on the latest version's scale (levels mapped by the crosswalk); empty when "
        "not comparable or unrated.",
    ),
]
# Columns added later go at the end, so a script that reads columns by position keeps working:
# in the wide format, after the item columns.
WIDE_BASE = [*LONG_COLUMNS[:13], LONG_COLUMNS[21], LONG_COLUMNS[22]]
WIDE_TAIL = LONG_COLUMNS[23:]
# The data type of an item's value column in the wide format, by item kind (a participation
# map's value is its number of student contributions).
ITEM_TYPES = {
    "scale": "integer",
    "count": "integer",
    "check": "boolean",
    "text": "string",
    "participation": "integer",
}
# The participation events data set: one row per contribution logged on a participation map,
# after the observation's columns (as the long format begins) and its local day.
EVENT_COLUMNS: list[tuple[str, str, str]] = [
    *LONG_COLUMNS[:13],
    LONG_COLUMNS[23],
    ("item_key", "string", "The participation item (map) within the rubric version."),
    (
        "map_markers",
        "integer",
        "How many student markers the lesson's map had, silent students included: what the "
        "share of students who spoke is out of.",
    ),
    (
        "sequence",
        "integer",
        "The contribution's place in the order the observer logged them on this map (1, 2, ...).",
    ),
    (
        "marker",
        "integer",
        "Who spoke: 0 the teacher, 1..N an anonymous student marker. Markers are numbered per "
        "lesson, never named: marker 3 in two lessons is not known to be the same student.",
    ),
    ("speaker", "string", "student or teacher (marker 0)."),
    (
        "talk_type",
        "string",
        "The talk type's key (for the teacher: the teacher talk move's key), from the rubric.",
    ),
    ("talk_label", "string", "The talk type's (or talk move's) label in the rubric version."),
    ("second", "integer", "The second of the lesson it was logged at (the lesson timer)."),
    ("minute", "integer", "The minute of the lesson it was logged in: second // 60, from 0."),
    (
        "group_key",
        "string",
        "The district-defined grouping label of the student's marker, where the district uses "
        "them (the rubric item's groups); empty for the teacher and for unlabelled markers.",
    ),
]


def cell(value: Any, safe: bool = True) -> Any:
    """A value ready for the csv module: numbers stay numbers, text is formula-safe (unless
    `safe` is False: the exact text, for scripts that ask for it)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    return "'" + text if safe and text.startswith(DANGEROUS) else text


class CsvWriter:
    """csv.writer over an in-memory buffer that is drained chunk by chunk."""

    def __init__(self, bom: bool, safe: bool = True) -> None:
        self.buffer = io.StringIO(newline="")
        self.writer = csv.writer(self.buffer, lineterminator="\r\n")
        self.prefix = "\ufeff" if bom else ""
        self.safe = safe

    def row(self, values: list[Any]) -> None:
        self.writer.writerow([cell(v, self.safe) for v in values])

    def drain(self) -> bytes:
        text = self.prefix + self.buffer.getvalue()
        self.prefix = ""
        self.buffer.seek(0)
        self.buffer.truncate()
        return text.encode("utf-8")


@dataclass
class Filters:
    """What to export. None means any; schools may be several."""

    date_from: datetime | None = None
    date_to: datetime | None = None
    school_ids: list[int] = field(default_factory=list)
    rubric_slug: str | None = None
    rubric_version: int | None = None
    observer_id: int | None = None
    status: ObservationStatus | None = None

    def as_dict(self) -> dict[str, Any]:
        """For the audit log."""
        return {
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "school_ids": self.school_ids,
            "rubric": self.rubric_slug,
            "version": self.rubric_version,
            "observer_id": self.observer_id,
            "status": self.status.value if self.status else None,
        }


_O = Observation.__table__.c  # type: ignore[attr-defined]
_S = School.__table__.c  # type: ignore[attr-defined]
_T = Teacher.__table__.c  # type: ignore[attr-defined]
_U = User.__table__.c  # type: ignore[attr-defined]
_R = RubricVersion.__table__.c  # type: ignore[attr-defined]
_F = FeedbackShare.__table__.c  # type: ignore[attr-defined]
_F2 = FeedbackShare.__table__.alias("later_share").c  # type: ignore[attr-defined]


def scope(user: User) -> ColumnElement[bool]:
    """Admins export every school; principals their own school only (submitted work)."""
    if user.role == Role.admin:
        return true()
    return and_(_O.school_id == user.school_id, _O.status == ObservationStatus.submitted)


def _base(*columns: Any) -> Any:
    return (
        select(*columns)
        .select_from(Observation.__table__)  # type: ignore[attr-defined]
        .join(RubricVersion.__table__, _R.id == _O.rubric_version_id)  # type: ignore[attr-defined]
    )


def _query(user: User, f: Filters, only: Collection[int] | None = None) -> Any:
    """The observations' columns; `only`: of these rubric versions only."""
    stmt = (
        _base(
            _O.id,
            _O.revision,
            _O.status,
            _O.observed_at,
            _O.submitted_at,
            _S.name,
            _O.teacher_name,
            _T.district_id,
            _U.name,
            _O.grade,
            _O.subject,
            _R.slug,
            _R.version,
            _O["values"],
            _O.tags,
            _O.overall_notes,
            _O.rubric_version_id,
            _O.duration_seconds,
            _O.notes,
        )
        .add_columns(
            _F.created_at,
            _F.first_opened_at,
            _F.reflected_at,
            _F.acknowledged_at,
            _F.reflection,
        )
        .join(School.__table__, _S.id == _O.school_id)  # type: ignore[attr-defined]
        .join(User.__table__, _U.id == _O.observer_id)  # type: ignore[attr-defined]
        .outerjoin(Teacher.__table__, _T.id == _O.teacher_id)  # type: ignore[attr-defined]
        # The observation's live share, if any (a new share revokes the one before).
        .outerjoin(
            FeedbackShare.__table__,  # type: ignore[attr-defined]
            and_(
                _F.observation_id == _O.id,
                _F.revoked_at.is_(None),
                _F.id
                == select(func.max(_F2.id))
                .where(_F2.observation_id == _O.id, _F2.revoked_at.is_(None))
                .correlate(Observation.__table__)  # type: ignore[attr-defined]
                .scalar_subquery(),
            ),
        )
        .where(_O.deleted_at.is_(None), scope(user))
    )
    if only is not None:
        stmt = stmt.where(_O.rubric_version_id.in_(sorted(only)))
    return _filtered(stmt, f).order_by(_O.observed_at, _O.id)


def _feedback_cells(
    shared: Any,
    opened: Any,
    reflected: Any,
    acknowledged: Any,
    reflection: Any,
    *,
    own: bool,
    safe: bool = True,
) -> list[Any]:
    if shared is None:
        state = "not_shared"
    elif acknowledged is not None:
        state = "acknowledged"
    elif reflected is not None:
        state = "reflected"
    elif opened is not None:
        state = "opened"
    else:
        state = "shared"
    return [
        state,
        cell(shared),
        cell(opened),
        cell(reflected),
        cell(acknowledged),
        cell(reflection, safe) if own and reflection else "",
    ]


def _filtered(stmt: Any, f: Filters) -> Any:
    if f.date_from:
        stmt = stmt.where(_O.observed_at >= f.date_from)
    if f.date_to:
        stmt = stmt.where(_O.observed_at < f.date_to)
    if f.school_ids:
        stmt = stmt.where(_O.school_id.in_(f.school_ids))
    if f.observer_id is not None:
        stmt = stmt.where(_O.observer_id == f.observer_id)
    if f.status is not None:
        stmt = stmt.where(_O.status == f.status)
    if f.rubric_slug:
        stmt = stmt.where(_R.slug == f.rubric_slug)
    if f.rubric_version is not None:
        stmt = stmt.where(_R.version == f.rubric_version)
    return stmt


def rubric_versions(engine: Engine, user: User, f: Filters) -> list[RubricVersion]:
    """The rubric versions the filtered observations use."""
    from sqlmodel import Session
    from sqlmodel import select as sm_select

    ids = _filtered(_base(_O.rubric_version_id).where(_O.deleted_at.is_(None), scope(user)), f)
    with Session(engine) as session:
        found = session.exec(
            sm_select(RubricVersion).where(_R.id.in_(ids.distinct())).order_by(_R.slug, _R.version)
        )
        return list(found)


def count_rows(engine: Engine, user: User, f: Filters, kind: Kind) -> int:
    """How many data rows the export will have (the page shows it before downloading)."""
    if kind == "participation_events":
        return _count_events(engine, user, f)
    stmt = _filtered(
        _base(_O.rubric_version_id, func.count()).where(_O.deleted_at.is_(None), scope(user)), f
    ).group_by(_O.rubric_version_id)
    with engine.connect() as conn:
        per_version: dict[int, int] = {row[0]: row[1] for row in conn.execute(stmt)}
        if kind == "observations_wide":
            return int(sum(per_version.values()))
        total = 0
        for rv_id, n in per_version.items():
            content = conn.execute(select(_R.content).where(_R.id == rv_id)).scalar_one()
            total += n * sum(1 for _ in RubricDefinition.model_validate(content).items())
        return total


@dataclass
class _Item:
    section: str
    key: str
    title: str
    kind: str
    labels: dict[Any, str]
    safe: bool = True
    participation: ParticipationItem | None = None  # a participation item's codes

    @property
    def cells(self) -> list[Any]:
        """The item's own columns, formula-safe (computed once per rubric version)."""
        return self._cells

    def __post_init__(self) -> None:
        safe = self.safe
        self._cells = [cell(self.section, safe), cell(self.key, safe), cell(self.title, safe)]
        self._cells.append(self.kind)
        self.label_cells = {value: cell(label, safe) for value, label in self.labels.items()}
        codes = self.participation
        # A participation map's talk types (students) and teacher talk moves, by key.
        self.talk_cells = {c.key: cell(c.label, safe) for c in codes.talk_types} if codes else {}
        self.move_cells = {c.key: cell(c.label, safe) for c in codes.teacher_moves} if codes else {}


def _items(content: dict[str, Any], safe: bool = True) -> list[_Item]:
    definition = RubricDefinition.model_validate(content)
    return [
        _Item(
            section.title,
            item.key,
            item.title,
            item.kind,
            {lv.value: lv.label for lv in item.levels} if isinstance(item, ScaleItem) else {},
            safe,
            item if isinstance(item, ParticipationItem) else None,
        )
        for section, item in definition.items()
    ]


@dataclass
class _Obs:
    """One observation's columns, the cells shared by all its rows already formula-safe."""

    head: list[Any]
    tags: str
    notes: Any
    values: dict[str, Any]
    rubric_version_id: int
    tail: list[Any]  # local date, duration, timed notes


def _observations(
    engine: Engine,
    user: User,
    f: Filters,
    *,
    tz: ZoneInfo,
    safe: bool = True,
    reflections: bool = False,
    only: Collection[int] | None = None,
) -> Iterator[_Obs]:
    """The filtered observations in order, from a server-side cursor. `reflections`: the
    teachers' reflection text too (a district setting); `only`: of these rubric versions."""
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=1000).execute(
            _query(user, f, only)
        )
        for row in result:
            (
                obs_id,
                revision,
                status,
                observed_at,
                submitted_at,
                school,
                teacher,
                district_id,
                observer,
                grade,
                subject,
                slug,
                version,
                values,
                tags,
                notes,
                rv_id,
                duration,
                timed_notes,
                *shared,
            ) = row
            head = [
                cell(v, safe)
                for v in (
                    str(obs_id),
                    revision,
                    _status(status),
                    observed_at,
                    submitted_at,
                    school,
                    teacher,
                    district_id,
                    observer,
                    grade,
                    subject,
                    slug,
                    version,
                )
            ]
            tail = [
                observed_at.astimezone(tz).date().isoformat(),
                cell(duration),
                cell(json.dumps(timed_notes, ensure_ascii=False), safe) if timed_notes else "",
                *_feedback_cells(*shared, own=reflections, safe=safe),
            ]
            yield _Obs(
                head,
                cell("; ".join(tags or []), safe),
                cell(notes, safe),
                values or {},
                rv_id,
                tail,
            )


def _items_of(engine: Engine, rubric_version_id: int, safe: bool) -> list[_Item]:
    with engine.connect() as conn:
        content = conn.execute(select(_R.content).where(_R.id == rubric_version_id)).scalar_one()
    return _items(content, safe)


# Per rubric version id: the latest version's number, and each item's (key, levels) there.
Harmony = dict[int, tuple[int, dict[str, tuple[str, dict[int, int] | None]]]]


def harmony(engine: Engine, versions: list[RubricVersion]) -> Harmony:
    """How the rows of each of these versions map onto their rubric's latest published or
    retired version, through the crosswalk (app.rubrics.crosswalk)."""
    slugs = sorted({v.slug for v in versions})
    with engine.connect() as conn:
        rows = conn.execute(
            select(_R.id, _R.slug, _R.version, _R.content).where(
                _R.slug.in_(slugs), _R.status != RubricStatus.draft.value
            )
        ).all()
    out: Harmony = {}
    for slug in slugs:
        own = {version: (rv_id, content) for rv_id, s, version, content in rows if s == slug}
        if not own:
            continue
        latest = max(own)
        target = RubricDefinition.model_validate(own[latest][1])
        earlier = {
            v: RubricDefinition.model_validate(content)
            for v, (_id, content) in own.items()
            if v != latest
        }
        maps: dict[int, dict[str, tuple[str, dict[int, int] | None]]] = {
            own[latest][0]: {item.key: (item.key, None) for _s, item in target.items()}
        }
        for key, trace in lineage(target, earlier).items():
            for step in trace:
                # Two items continuing one earlier item: its rows go to the first of them.
                maps.setdefault(own[step.version][0], {}).setdefault(step.key, (key, step.levels))
        for rv_id, _content in own.values():
            out[rv_id] = (latest, maps.get(rv_id, {}))
    return out


def _harmonised(harmonised: Harmony, rubric_version_id: int, key: str, value: Any) -> list[Any]:
    latest, mapped = harmonised.get(rubric_version_id, (None, {}))
    found = mapped.get(key)
    if found is None:
        return [latest if latest is not None else "", "", ""]
    target_key, levels = found
    if value is None or isinstance(value, bool) or not isinstance(value, int) or levels is None:
        shown = value if value is not None else ""
    else:
        shown = levels.get(value, "")
    return [latest, target_key, shown]


def stream_long(
    engine: Engine,
    user: User,
    f: Filters,
    *,
    bom: bool,
    counter: list[int],
    tz: ZoneInfo,
    safe: bool = True,
    harmonised: Harmony | None = None,
    reflections: bool = False,
) -> Iterator[bytes]:
    """The long (tidy) CSV, a chunk at a time; counter[0] ends as the number of data rows.
    `safe` False leaves text exactly as typed (no apostrophe before a leading =, +, - or @).
    `harmonised` (see harmony()) adds each row's item and value on the latest version."""
    out = CsvWriter(bom, safe)
    columns = LONG_COLUMNS + (HARMONISED_COLUMNS if harmonised is not None else [])
    out.row([c[0] for c in columns])
    items_by_version: dict[int, list[_Item]] = {}
    pending = 0
    for obs in _observations(engine, user, f, tz=tz, safe=safe, reflections=reflections):
        items = items_by_version.get(obs.rubric_version_id)
        if items is None:
            items = items_by_version[obs.rubric_version_id] = _items_of(
                engine, obs.rubric_version_id, safe
            )
        batch = []
        for item in items:
            entry = obs.values.get(item.key) or {}
            value = entry.get("value")
            if item.participation is not None:
                value = _contributions(item.participation, value)
            evidence = entry.get("evidence")
            batch.append(
                [
                    *obs.head,
                    *item.cells,
                    value if type(value) is int else cell(value, safe),  # the common case first
                    item.label_cells.get(value, "") if value is not None else "",
                    "true" if entry.get("not_observed") else "false",
                    cell(evidence, safe) if evidence else "",
                    obs.tags,
                    obs.notes,
                    *obs.tail,
                ]
            )
            if harmonised is not None:
                batch[-1] += _harmonised(
                    harmonised,
                    obs.rubric_version_id,
                    item.key,
                    value if type(value) is int else cell(value, safe),
                )
        out.writer.writerows(batch)
        counter[0] += len(batch)
        pending += len(batch)
        if pending >= CHUNK_ROWS:
            pending = 0
            yield out.drain()
    yield out.drain()


def stream_wide(
    engine: Engine,
    user: User,
    f: Filters,
    *,
    bom: bool,
    counter: list[int],
    tz: ZoneInfo,
    safe: bool = True,
    reflections: bool = False,
) -> Iterator[bytes]:
    """The wide CSV (one row per observation) for a single rubric version."""
    versions = rubric_versions(engine, user, f)
    if len(versions) > 1:
        raise ValueError("mixed")
    out = CsvWriter(bom, safe)
    items = _items(versions[0].content, safe) if versions else []
    out.row([c[0] for c in data_columns("observations_wide", versions)])
    pending = 0
    for obs in _observations(engine, user, f, tz=tz, safe=safe, reflections=reflections):
        line = [*obs.head, obs.tags, obs.notes]
        for item in items:
            entry = obs.values.get(item.key) or {}
            value = entry.get("value")
            lesson = _lesson(item.participation, value) if item.participation else None
            if item.participation is not None:
                value = lesson.contributions if lesson else None
            line += [
                cell(value, safe),
                "true" if entry.get("not_observed") else "false",
                cell(entry.get("evidence", ""), safe),
            ]
            if item.participation is not None:
                line += _figures(item.participation, lesson)
        line += obs.tail
        out.writer.writerow(line)
        counter[0] += 1
        pending += 1
        if pending >= CHUNK_ROWS:
            pending = 0
            yield out.drain()
    yield out.drain()


def _status(status: Any) -> str:
    return status.value if isinstance(status, ObservationStatus) else str(status)


def _lesson(item: ParticipationItem, value: Any) -> participation.Summary | None:
    """A map's figures; None when no map was laid out (as the dashboards count it)."""
    mapped = participation.laid_out(value)
    return participation.summarise(item, mapped) if mapped else None


def _contributions(item: ParticipationItem, value: Any) -> int | None:
    """A participation map's value in the long and wide formats: its number of student
    contributions (None when no map was laid out)."""
    lesson = _lesson(item, value)
    return lesson.contributions if lesson else None


def _share(x: float | None) -> float | str:
    return "" if x is None else round(x, 4)


def _figures(item: ParticipationItem, s: participation.Summary | None) -> list[Any]:
    """The lesson's figures for the wide format (see _participation_columns), all empty when
    no map was laid out; shares empty when no student contributed."""
    if s is None:
        return [""] * (5 + len(item.talk_types) + len(item.teacher_moves))
    return [
        s.students,
        s.speakers,
        _share(s.top_share),
        _share(s.top_fifth_share),
        _share(s.gini),
        *(n for _key, _label, n in s.by_talk),
        *(n for _key, _label, n in s.by_move),
    ]


def _participation_columns(item: _Item) -> list[tuple[str, str, str]]:
    """The wide format's columns of a participation item's figures, after its value,
    __not_observed and __evidence columns."""
    assert item.participation is not None
    k, t = item.key, item.title
    columns = [
        (
            f"{k}__students",
            "integer",
            f"{t}: student markers on the map (numbered, never named); "
            "empty when no map was laid out",
        ),
        (f"{k}__speakers", "integer", f"{t}: students who contributed at least once"),
        (
            f"{k}__top{participation.TOP}_share",
            "number",
            f"{t}: share (0 to 1) of the students' contributions made by the "
            f"{participation.TOP} most active students; empty when no student contributed",
        ),
        (
            f"{k}__top20_share",
            "number",
            f"{t}: share (0 to 1) of the students' contributions made by the most active 20% of "
            "the students (at least one student); empty when no student contributed",
        ),
        (
            f"{k}__gini",
            "number",
            f"{t}: Gini coefficient of contributions per student, 0 when every student "
            "contributed equally, (n-1)/n when one student made every contribution; empty "
            "when no student contributed",
        ),
    ]
    columns += [
        (f"{k}__talk_{c.key}", "integer", f"{t}: student contributions coded '{c.label}'")
        for c in item.participation.talk_types
    ]
    columns += [
        (
            f"{k}__move_{c.key}",
            "integer",
            f"{t}: the teacher's talk moves coded '{c.label}' (marker 0)",
        )
        for c in item.participation.teacher_moves
    ]
    return columns


def has_participation(rv: RubricVersion) -> bool:
    """Whether a rubric version has a participation item (a map)."""
    return any(i.participation is not None for i in _items(rv.content))


def _maps(engine: Engine, user: User, f: Filters, safe: bool = True) -> dict[int, list[_Item]]:
    """Per rubric version id among the filtered observations': its participation items."""
    found: dict[int, list[_Item]] = {}
    for rv in rubric_versions(engine, user, f):
        items = [i for i in _items(rv.content, safe) if i.participation is not None]
        if items and rv.id is not None:
            found[rv.id] = items
    return found


def _event_rows(item: _Item, values: dict[str, Any], safe: bool = True) -> Iterator[list[Any]]:
    """The participation events of one map (EVENT_COLUMNS from item_key on): the teacher's
    talk moves and the contributions of the students on the map, in the order logged."""
    value = participation.laid_out((values.get(item.key) or {}).get("value"))
    if value is None:
        return
    students = int(value["markers"])
    groups = value.get("groups") or {}
    for sequence, event in enumerate(value.get("events") or [], start=1):
        if not isinstance(event, dict):
            continue
        marker, talk, at = event.get("marker"), event.get("talk", ""), event.get("at")
        if marker == participation.TEACHER:
            speaker, labels, group = "teacher", item.move_cells, ""
        elif isinstance(marker, int) and 1 <= marker <= students:
            speaker, labels = "student", item.talk_cells
            group = cell(groups.get(str(marker), ""), safe)
        else:
            continue  # not on the map (the write path refuses these)
        yield [
            item.cells[1],
            students,
            sequence,
            marker,
            speaker,
            cell(talk, safe),
            labels.get(talk, ""),
            at if isinstance(at, int) else "",
            at // 60 if isinstance(at, int) else "",
            group,
        ]


def _count_events(engine: Engine, user: User, f: Filters) -> int:
    """How many rows the events data set will have, summed in the database (the page shows it
    before downloading): the length of each laid-out map's list of contributions (the write
    path keeps only contributions on the map, so each is a row)."""
    maps = _maps(engine, user, f)
    total = 0
    with engine.connect() as conn:
        for rv_id, items in maps.items():
            lengths = [_events_of(conn.dialect.name, item.key) for item in items]
            stmt = _filtered(
                _base(func.sum(sum(lengths[1:], lengths[0]))).where(
                    _O.deleted_at.is_(None), scope(user), _O.rubric_version_id == rv_id
                ),
                f,
            )
            total += int(conn.execute(stmt).scalar() or 0)
    return total


def _events_of(dialect: str, key: str) -> Any:
    """SQL: the number of contributions on one map item of an observation (0 with no map)."""
    assert re.fullmatch(r"[a-z][a-z0-9_]{0,62}", key)  # a rubric item key: safe to inline
    if dialect == "postgresql":
        events = f"""json_array_length(observation."values" #> '{{{key},value,events}}')"""
        markers = f"""(observation."values" #>> '{{{key},value,markers}}')::int"""
    else:
        events = f"""json_array_length(observation."values", '$.{key}.value.events')"""
        markers = f"""json_extract(observation."values", '$.{key}.value.markers')"""
    return literal_column(
        f"CASE WHEN coalesce({markers}, 0) > 0 THEN coalesce({events}, 0) ELSE 0 END"
    )


def stream_events(
    engine: Engine,
    user: User,
    f: Filters,
    *,
    bom: bool,
    counter: list[int],
    tz: ZoneInfo,
    safe: bool = True,
) -> Iterator[bytes]:
    """The participation events CSV (one row per contribution logged on a participation map),
    a chunk at a time; counter[0] ends as the number of data rows."""
    out = CsvWriter(bom, safe)
    out.row([c[0] for c in EVENT_COLUMNS])
    maps = _maps(engine, user, f, safe)
    pending = 0
    observations = _observations(engine, user, f, tz=tz, safe=safe, only=maps) if maps else ()
    for obs in observations:
        batch = [
            [*obs.head, obs.tail[0], *row]
            for item in maps.get(obs.rubric_version_id, [])
            for row in _event_rows(item, obs.values, safe)
        ]
        out.writer.writerows(batch)
        counter[0] += len(batch)
        pending += len(batch)
        if pending >= CHUNK_ROWS:
            pending = 0
            yield out.drain()
    yield out.drain()


CODEBOOK_COLUMNS: list[tuple[str, str, str]] = [
    ("column", "string", "A column of the data file."),
    ("type", "string", "Its type: string, integer, number, boolean, date, datetime or any."),
    ("meaning", "string", "What it holds."),
]
RUBRIC_ITEM_COLUMNS: list[tuple[str, str, str]] = [
    ("rubric_slug", "string", "Rubric identifier."),
    ("rubric_version", "integer", "Rubric version number."),
    ("section", "string", "Rubric section of the item."),
    ("item_key", "string", "Item identifier within the rubric version."),
    ("item_kind", "string", "scale, count, check, text or participation."),
    ("item_title", "string", "Item wording."),
    ("level_value", "integer", "A level of a scale item (one row per level); empty otherwise."),
    ("level_label", "string", "That level's label."),
]


def data_columns(
    kind: Kind, versions: list[RubricVersion], *, harmonised: bool = False
) -> list[tuple[str, str, str]]:
    """The data file's columns (name, type, meaning), the wide format's item columns too."""
    if kind == "observations_long":
        return list(LONG_COLUMNS) + (HARMONISED_COLUMNS if harmonised else [])
    if kind == "participation_events":
        return list(EVENT_COLUMNS)
    columns = list(WIDE_BASE)
    for item in _items(versions[0].content) if versions else []:
        meaning = f"{item.title} ({item.kind})"
        if item.participation is not None:
            meaning += (
                ": student contributions logged on the map (the teacher's talk moves not "
                "counted); empty when no map was laid out"
            )
        columns += [
            (item.key, ITEM_TYPES[item.kind], meaning),
            (f"{item.key}__not_observed", "boolean", f"{item.title}: marked not observed"),
            (f"{item.key}__evidence", "string", f"{item.title}: evidence note"),
        ]
        if item.participation is not None:
            columns += _participation_columns(item)
    return columns + WIDE_TAIL


def codebook_csv(columns: list[tuple[str, str, str]]) -> bytes:
    """One row per column of the data file: its name, type and meaning."""
    out = CsvWriter(bom=False)
    out.row([c[0] for c in CODEBOOK_COLUMNS])
    for name, typ, meaning in columns:
        out.row([name, typ, meaning])
    return out.drain()


def rubric_items_csv(versions: list[RubricVersion]) -> bytes:
    """Every exported rubric version's items, one row per level of a scale item."""
    out = CsvWriter(bom=False)
    out.row([c[0] for c in RUBRIC_ITEM_COLUMNS])
    for rv in versions:
        for item in _items(rv.content):
            head = [rv.slug, rv.version, item.section, item.key, item.kind, item.title]
            if item.labels:
                for value, label in item.labels.items():
                    out.row([*head, value, label])
            else:
                out.row([*head, "", ""])
    return out.drain()


PARTICIPATION_CODE_COLUMNS: list[tuple[str, str, str]] = [
    ("rubric_slug", "string", "Rubric identifier."),
    ("rubric_version", "integer", "Rubric version number."),
    ("item_key", "string", "The participation item (map) within the rubric version."),
    (
        "code_list",
        "string",
        "talk_type (students' contributions), teacher_move (marker 0), group (a district-"
        "defined grouping label of a marker), or groups_meaning (what the labels mean).",
    ),
    ("code_key", "string", "The code as the data sets write it (talk_type, group_key)."),
    ("code_label", "string", "Its label in the rubric version."),
    ("code_description", "string", "What it means (for groups_meaning: the district's text)."),
]


def has_maps(versions: list[RubricVersion]) -> bool:
    """Does any of these rubric versions have a participation map?"""
    return any(item.participation is not None for rv in versions for item in _items(rv.content))


def participation_codes_csv(versions: list[RubricVersion]) -> bytes:
    """The codebook of every participation map in these versions: one row per talk type,
    teacher move and grouping label, and the district's meaning of the labels."""
    out = CsvWriter(bom=False)
    out.row([c[0] for c in PARTICIPATION_CODE_COLUMNS])
    for rv in versions:
        for item in _items(rv.content):
            codes = item.participation
            if codes is None:
                continue
            head = [rv.slug, rv.version, item.key]
            for name, listed in (
                ("talk_type", codes.talk_types),
                ("teacher_move", codes.teacher_moves),
                ("group", codes.groups),
            ):
                for code in listed:
                    out.row([*head, name, code.key, code.label, code.description or ""])
            if codes.groups_meaning:
                out.row([*head, "groups_meaning", "", "", codes.groups_meaning])
    return out.drain()


def _resource(name: str, path: str, columns: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "name": name,
        "path": path,
        "profile": "tabular-data-resource",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "dialect": {"delimiter": ",", "lineTerminator": "\r\n", "quoteChar": '"', "header": True},
        "schema": {
            "fields": [{"name": n, "type": t, "description": d} for n, t, d in columns],
            "missingValues": [""],
        },
    }


def datapackage(
    kind: Kind | Literal["calibration"],
    versions: list[RubricVersion],
    data_name: str,
    columns: list[tuple[str, str, str]],
) -> bytes:
    """A Frictionless Data package descriptor, so R and Python tools read the types: the data
    file, its codebook and (for observations) the rubric items and levels."""
    data = _resource(kind.replace("_", "-"), data_name, columns)
    data["schema"] |= {"trueValues": ["true"], "falseValues": ["false"]}
    resources = [data, _resource("codebook", "codebook.csv", CODEBOOK_COLUMNS)]
    if versions:
        resources.append(_resource("rubric-items", "rubric_items.csv", RUBRIC_ITEM_COLUMNS))
    if has_maps(versions):
        resources.append(
            _resource("participation-codes", "participation_codes.csv", PARTICIPATION_CODE_COLUMNS)
        )
    descriptor = {
        "profile": "tabular-data-package",
        "name": "walkthrough-" + kind.replace("_", "-"),
        "resources": resources,
        "rubric_versions": [
            {"slug": v.slug, "version": v.version, "content_hash": v.content_hash} for v in versions
        ],
    }
    return json.dumps(descriptor, indent=2, ensure_ascii=False).encode()


def stream_calibration(
    engine: Engine,
    *,
    bom: bool,
    counter: list[int],
    session_id: int | None = None,
    safe: bool = True,
) -> Iterator[bytes]:
    """Every calibration rating: one row per session x round x rater x stimulus x item (one
    session's, for its facilitator's download: the same layout)."""
    cs = CalibrationSession.__table__.c  # type: ignore[attr-defined]
    ra = Rater.__table__.c  # type: ignore[attr-defined]
    rt = Rating.__table__.c  # type: ignore[attr-defined]
    st = Stimulus.__table__.c  # type: ignore[attr-defined]
    ms = MasterScore.__table__.c  # type: ignore[attr-defined]
    stmt = (
        select(
            cs.id,
            cs.title,
            _R.slug,
            _R.version,
            rt.round,
            ra.display_name,
            ra.user_id,
            st.title,
            rt.item_key,
            rt.value,
            ms.value,
            rt.reason,
            rt.updated_at,
        )
        .select_from(Rating.__table__)  # type: ignore[attr-defined]
        .join(CalibrationSession.__table__, cs.id == rt.session_id)  # type: ignore[attr-defined]
        .join(RubricVersion.__table__, _R.id == cs.rubric_version_id)  # type: ignore[attr-defined]
        .join(Rater.__table__, ra.id == rt.rater_id)  # type: ignore[attr-defined]
        .join(Stimulus.__table__, st.id == rt.stimulus_id)  # type: ignore[attr-defined]
        .outerjoin(
            MasterScore.__table__,  # type: ignore[attr-defined]
            and_(ms.stimulus_id == rt.stimulus_id, ms.item_key == rt.item_key),
        )
        .order_by(cs.id, rt.round, ra.id, st.position, rt.item_key)
    )
    if session_id is not None:
        stmt = stmt.where(cs.id == session_id)
    out = CsvWriter(bom, safe)
    out.row([c[0] for c in CALIBRATION_COLUMNS])
    with engine.connect() as conn:
        for row in conn.execution_options(stream_results=True, yield_per=1000).execute(stmt):
            values = list(row)
            values[6] = "account" if values[6] is not None else "guest"
            out.row(values)
            counter[0] += 1
            if counter[0] % CHUNK_ROWS == 0:
                yield out.drain()
    yield out.drain()
