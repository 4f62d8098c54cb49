"""Observations: the payload every client sends, validation against the rubric version,
saving with revisions, role scoping, lists, history diffs, tombstones and the dashboard."""

import hashlib
import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, field_validator
from sqlalchemy import ColumnElement, and_, false, func, or_, true
from sqlmodel import Session, col, select

from app.accounts.models import Role, School, Teacher, User
from app.db import next_seq, utcnow
from app.errors import Forbidden, Invalid, NotFound
from app.observations.models import (
    Observation,
    ObservationConflict,
    ObservationRevision,
    ObservationStatus,
)
from app.rubrics.loader import CheckItem, CountItem, RubricDefinition, ScaleItem, TextItem
from app.rubrics.models import RubricStatus, RubricVersion

RECORDING_ROLES = {Role.observer, Role.principal, Role.admin}
MAX_TEXT = 10_000
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class ItemValue(BaseModel):
    """The value recorded for one rubric item, with optional evidence."""

    model_config = ConfigDict(extra="forbid")

    value: bool | int | str | None = None
    not_observed: bool = False
    evidence: Annotated[str, StringConstraints(max_length=MAX_TEXT)] = ""


class TimedNote(BaseModel):
    """An evidence note taken at a minute of the lesson."""

    model_config = ConfigDict(extra="forbid")

    minute: int = Field(ge=0, le=1440)
    text: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT)
    ]


class ObservationPayload(BaseModel):
    """One observation as a client sends it (the capture form, the sync API, a file)."""

    model_config = ConfigDict(extra="forbid")

    rubric_slug: Short
    rubric_version: int = Field(ge=1)
    teacher_id: int | None = None
    teacher_name: Short = ""
    school_id: int | None = None
    grade: Annotated[str, StringConstraints(strip_whitespace=True, max_length=10)] = ""
    subject: Short = ""
    observed_at: datetime
    duration_seconds: int | None = Field(default=None, ge=0, le=24 * 3600)
    status: ObservationStatus = ObservationStatus.draft
    values: dict[str, ItemValue] = Field(default_factory=dict, max_length=500)
    notes: list[TimedNote] = Field(default_factory=list, max_length=500)
    tags: list[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
    ] = Field(default_factory=list, max_length=30)
    overall_notes: Annotated[str, StringConstraints(max_length=MAX_TEXT)] = ""

    @field_validator("observed_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("observed_at needs a time-zone offset, e.g. 2026-11-22T09:30:00-06:00")
        return value.astimezone(UTC)

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))

    _snapshot: dict[str, Any] | None = PrivateAttr(default=None)

    def snapshot(self) -> dict[str, Any]:
        """The payload as JSON data (computed once; payloads are not mutated, only copied)."""
        if self._snapshot is None:
            self._snapshot = self.model_dump(mode="json")
        return self._snapshot

    def content_hash(self) -> str:
        """SHA-256 of the canonical content: equal payloads are the same observation state."""
        canonical = json.dumps(
            self.snapshot(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


# --- role scoping --------------------------------------------------------------------------------


def visible_filter(user: User) -> ColumnElement[bool]:
    """Which observations a user may read: their own; a principal their school's, a facilitator
    everyone's, once submitted (a draft is unfinished work); an admin all."""
    if user.role == Role.admin:
        return true()
    if user.id is None:
        return false()
    own = col(Observation.observer_id) == user.id
    submitted = col(Observation.status) == ObservationStatus.submitted
    if user.role == Role.facilitator:
        return or_(own, submitted)
    if user.role == Role.principal and user.school_id is not None:
        return or_(own, and_(col(Observation.school_id) == user.school_id, submitted))
    return own


def get_visible(
    *, session: Session, user: User, obs_id: uuid.UUID, deleted: bool = False
) -> Observation:
    """An observation the user may read, or NotFound (never a hint that it exists)."""
    stmt = select(Observation).where(col(Observation.id) == obs_id, visible_filter(user))
    if not deleted or user.role != Role.admin:
        stmt = stmt.where(col(Observation.deleted_at).is_(None))
    obs = session.exec(stmt).first()
    if obs is None:
        raise NotFound("There is no observation at this address, or it is not yours to see.")
    return obs


def get_own(*, session: Session, user: User, obs_id: uuid.UUID) -> Observation:
    """An observation the user may amend: only its author may."""
    obs = get_visible(session=session, user=user, obs_id=obs_id)
    if obs.observer_id != user.id:
        raise Forbidden("Only the observer who recorded this observation may change it.")
    return obs


# --- validation ----------------------------------------------------------------------------------


@dataclass
class Resolved:
    """What a payload refers to, checked: rubric version, definition, school and teacher."""

    rubric: RubricVersion
    definition: RubricDefinition
    school: School
    teacher: Teacher | None


class Resolver:
    """Looks up what payloads refer to, with caches so a batch of 100 costs a few queries."""

    def __init__(self, session: Session, user: User) -> None:
        self.session, self.user = session, user
        self._rubrics: dict[tuple[str, int], RubricVersion | None] = {}
        self._definitions: dict[int, tuple[RubricDefinition, dict[str, Any]]] = {}
        self._teachers: dict[int, Teacher | None] = {}
        self._schools: dict[int, School | None] = {}

    def rubric(self, slug: str, version: int) -> RubricVersion | None:
        """A rubric version by slug and number."""
        key = (slug, version)
        if key not in self._rubrics:
            self._rubrics[key] = self.session.exec(
                select(RubricVersion).where(
                    RubricVersion.slug == slug, RubricVersion.version == version
                )
            ).first()
        return self._rubrics[key]

    def definition(self, rubric: RubricVersion) -> tuple[RubricDefinition, dict[str, Any]]:
        """The validated definition of a version and its items by key."""
        assert rubric.id is not None
        if rubric.id not in self._definitions:
            definition = RubricDefinition.model_validate(rubric.content)
            self._definitions[rubric.id] = (
                definition,
                {item.key: item for _s, item in definition.items()},
            )
        return self._definitions[rubric.id]

    def teacher(self, teacher_id: int) -> Teacher | None:
        """A roster teacher by id."""
        if teacher_id not in self._teachers:
            self._teachers[teacher_id] = self.session.get(Teacher, teacher_id)
        return self._teachers[teacher_id]

    def school(self, school_id: int) -> School | None:
        """A school by id."""
        if school_id not in self._schools:
            self._schools[school_id] = self.session.get(School, school_id)
        return self._schools[school_id]

    def resolve(self, payload: ObservationPayload, pinned_rubric_id: int | None) -> Resolved:
        """Check the rubric version, teacher and school a payload names; raises Invalid.

        pinned_rubric_id: the version an existing observation already uses (it stays usable
        after it is retired).
        """
        user = self.user
        errors: list[dict[str, str]] = []
        rubric = self.rubric(payload.rubric_slug, payload.rubric_version)
        if rubric is None or rubric.status == RubricStatus.draft:
            raise Invalid(
                f"Unknown rubric version {payload.rubric_slug} v{payload.rubric_version}.",
                details=[{"field": "rubric", "message": "This rubric version is not published."}],
            )
        if rubric.status == RubricStatus.retired and rubric.id != pinned_rubric_id:
            raise Invalid(
                f"{rubric.title} v{rubric.version} is retired; "
                "start new observations on a current version.",
                details=[{"field": "rubric", "message": "This rubric version is retired."}],
            )
        teacher: Teacher | None = None
        school: School | None = None
        if payload.teacher_id is not None:
            teacher = self.teacher(payload.teacher_id)
            if teacher is None or not _may_observe_at(user, teacher.school_id):
                errors.append({"field": "teacher", "message": "Choose a teacher from your roster."})
            else:
                school = self.school(teacher.school_id)
        elif not payload.teacher_name:
            errors.append({"field": "teacher", "message": "Choose a teacher or type their name."})
        if school is None and not errors:
            school_id = payload.school_id if payload.school_id is not None else user.school_id
            school = self.school(school_id) if school_id is not None else None
            if school is None or not _may_observe_at(user, school.id):
                errors.append({"field": "school", "message": "Choose the school you observed in."})
        if errors:
            raise Invalid("The observation could not be saved.", details=errors)
        assert school is not None
        definition, _items = self.definition(rubric)
        return Resolved(rubric, definition, school, teacher)

    def item_errors(self, resolved: Resolved, values: dict[str, ItemValue]) -> dict[str, str]:
        """Per-item problems of values against the resolved rubric version."""
        _definition, items = self.definition(resolved.rubric)
        return _item_errors(resolved.definition, items, values)


def resolve(
    *, session: Session, user: User, payload: ObservationPayload, existing: Observation | None
) -> Resolved:
    """Check the rubric version, teacher and school a payload names; raises Invalid."""
    pinned = existing.rubric_version_id if existing is not None else None
    return Resolver(session, user).resolve(payload, pinned)


def _may_observe_at(user: User, school_id: int | None) -> bool:
    if user.role in (Role.admin, Role.facilitator):
        return True
    return school_id is not None and school_id == user.school_id


def item_errors(definition: RubricDefinition, values: dict[str, ItemValue]) -> dict[str, str]:
    """Per-item problems: a value must fit its item's kind and scale."""
    return _item_errors(definition, {item.key: item for _s, item in definition.items()}, values)


def _item_errors(
    definition: RubricDefinition, items: dict[str, Any], values: dict[str, ItemValue]
) -> dict[str, str]:
    errors: dict[str, str] = {}
    for key, entry in values.items():
        item = items.get(key)
        if item is None:
            errors[key] = f"'{key}' is not an item of {definition.title} v{definition.version}."
            continue
        message = _value_problem(item, entry)
        if message:
            errors[key] = message
    return errors


def _value_problem(
    item: ScaleItem | CountItem | CheckItem | TextItem, entry: ItemValue
) -> str | None:
    v = entry.value
    if entry.not_observed:
        if not isinstance(item, ScaleItem) or not item.allow_not_observed:
            return "This item cannot be marked 'not observed'."
        if v is not None:
            return "Choose a level or 'not observed', not both."
        return None
    if v is None:
        return None
    if isinstance(item, ScaleItem):
        allowed = [lv.value for lv in item.levels]
        if isinstance(v, bool) or not isinstance(v, int) or v not in allowed:
            return f"Choose one of the levels {', '.join(str(a) for a in allowed)}."
    elif isinstance(item, CountItem):
        if isinstance(v, bool) or not isinstance(v, int):
            return "Enter a whole number."
        if v < 0:
            return "A tally cannot be negative."
        if item.max is not None and v > item.max:
            return f"A tally can be at most {item.max}."
    elif isinstance(item, CheckItem):
        if not isinstance(v, bool):
            return "Mark it present or not present."
    elif isinstance(item, TextItem) and not isinstance(v, str):
        return "Enter text."
    return None


def unanswered(definition: RubricDefinition, values: dict[str, Any]) -> list[tuple[str, str]]:
    """Items with neither a value nor 'not observed' (counts and checks always have one)."""
    missing = []
    for _s, item in definition.items():
        entry = values.get(item.key) or {}
        if item.kind in ("count", "check"):
            continue
        has_value = entry.get("value") not in (None, "")
        if not has_value and not entry.get("not_observed"):
            missing.append((item.key, item.title))
    return missing


# --- saving --------------------------------------------------------------------------------------


SaveOutcome = Literal["created", "updated", "unchanged"]


def save(
    *,
    session: Session,
    user: User,
    obs_id: uuid.UUID,
    payload: ObservationPayload,
) -> tuple[Observation, SaveOutcome]:
    """Create or amend an observation; every change adds a revision. Raises Invalid per item."""
    existing = session.get(Observation, obs_id)
    if existing is not None:
        if existing.observer_id != user.id or existing.deleted_at is not None:
            raise Forbidden("Only the observer who recorded this observation may change it.")
        if (
            existing.status == ObservationStatus.submitted
            and payload.status == ObservationStatus.draft
        ):
            payload = payload.model_copy(update={"status": ObservationStatus.submitted})
    elif user.role not in RECORDING_ROLES:
        raise Forbidden("Your role does not record observations.")
    resolved = resolve(session=session, user=user, payload=payload, existing=existing)
    errors = item_errors(resolved.definition, payload.values)
    if errors:
        raise Invalid(
            "Some items need attention.",
            details=[{"field": k, "message": m} for k, m in errors.items()],
        )
    digest = payload.content_hash()
    if existing is not None and existing.content_hash == digest:
        return existing, "unchanged"
    now = utcnow()
    assert user.id is not None and resolved.school.id is not None and resolved.rubric.id is not None
    obs = existing or Observation(
        id=obs_id,
        observer_id=user.id,
        revision=0,
        created_at=now,
        school_id=resolved.school.id,
        rubric_version_id=resolved.rubric.id,
        teacher_name="",
        observed_at=payload.observed_at,
        status=payload.status,
        content_hash=digest,
    )
    apply_payload(obs, payload, resolved, digest, now)
    obs.revision += 1
    obs.change_seq = next_seq(session)
    session.add(obs)
    session.flush()
    session.add(
        ObservationRevision(
            observation_id=obs.id,
            revision=obs.revision,
            author_id=user.id,
            status=obs.status,
            snapshot=payload.model_dump(mode="json"),
            content_hash=digest,
            created_at=now,
        )
    )
    session.flush()
    return obs, "created" if existing is None else "updated"


def apply_payload(
    obs: Observation, payload: ObservationPayload, resolved: Resolved, digest: str, now: datetime
) -> None:
    """Copy a validated payload onto the observation row."""
    assert resolved.rubric.id is not None and resolved.school.id is not None
    obs.rubric_version_id = resolved.rubric.id
    obs.school_id = resolved.school.id
    obs.teacher_id = resolved.teacher.id if resolved.teacher else None
    obs.teacher_name = resolved.teacher.name if resolved.teacher else payload.teacher_name
    obs.grade, obs.subject = payload.grade, payload.subject
    obs.observed_at, obs.duration_seconds = payload.observed_at, payload.duration_seconds
    obs.values = {k: v.model_dump() for k, v in payload.values.items()}
    obs.notes = [n.model_dump() for n in payload.notes]
    obs.tags, obs.overall_notes = list(payload.tags), payload.overall_notes
    if payload.status == ObservationStatus.submitted and obs.submitted_at is None:
        obs.submitted_at = now
    obs.status = payload.status
    obs.content_hash = digest
    obs.updated_at = now


def payload_of(obs: Observation, rubric: RubricVersion) -> ObservationPayload:
    """The observation's current state as a payload (to amend it, or to compare)."""
    return ObservationPayload(
        rubric_slug=rubric.slug,
        rubric_version=rubric.version,
        teacher_id=obs.teacher_id,
        teacher_name=obs.teacher_name if obs.teacher_id is None else "",
        school_id=obs.school_id,
        grade=obs.grade,
        subject=obs.subject,
        observed_at=obs.observed_at,
        duration_seconds=obs.duration_seconds,
        status=obs.status,
        values={k: ItemValue.model_validate(v) for k, v in obs.values.items()},
        notes=[TimedNote.model_validate(n) for n in obs.notes],
        tags=list(obs.tags),
        overall_notes=obs.overall_notes,
    )


def count_open_conflicts(*, session: Session, obs: Observation) -> int:
    """How many versions sent from devices wait for the observer to choose."""
    stmt = (
        select(func.count())
        .select_from(ObservationConflict)
        .where(
            col(ObservationConflict.observation_id) == obs.id,
            col(ObservationConflict.resolved_at).is_(None),
        )
    )
    return int(session.exec(stmt).one())


def set_deleted(*, session: Session, admin: User, obs: Observation, deleted: bool) -> Observation:
    """Tombstone (or restore) an observation; it is never removed from the database."""
    obs.deleted_at = utcnow() if deleted else None
    obs.deleted_by_id = admin.id if deleted else None
    obs.updated_at = utcnow()
    obs.change_seq = next_seq(session)
    session.add(obs)
    session.flush()
    return obs


# --- history -------------------------------------------------------------------------------------


@dataclass
class Change:
    """One difference between two revisions."""

    label: str
    old: str
    new: str


@dataclass
class RevisionView:
    """A revision with who saved it and what changed from the one before."""

    revision: ObservationRevision
    author: str
    changes: list[Change] = field(default_factory=list)


def history(
    *, session: Session, obs: Observation, definition: RubricDefinition
) -> list[RevisionView]:
    """Every revision, newest first, with a per-item diff against the previous revision."""
    revisions = list(
        session.exec(
            select(ObservationRevision)
            .where(ObservationRevision.observation_id == obs.id)
            .order_by(col(ObservationRevision.revision))
        )
    )
    names = {
        u.id: u.name
        for u in session.exec(
            select(User).where(col(User.id).in_({r.author_id for r in revisions}))
        )
    }
    views: list[RevisionView] = []
    previous: dict[str, Any] | None = None
    for rev in revisions:
        view = RevisionView(rev, names.get(rev.author_id, "?"))
        if previous is not None:
            view.changes = diff_snapshots(previous, rev.snapshot, definition)
        views.append(view)
        previous = rev.snapshot
    return list(reversed(views))


def diff_snapshots(
    old: dict[str, Any], new: dict[str, Any], definition: RubricDefinition
) -> list[Change]:
    """What changed between two snapshots, item by item, in words."""
    changes: list[Change] = []
    for key, label in (
        ("status", "Status"),
        ("teacher_name", "Teacher"),
        ("teacher_id", "Teacher (roster)"),
        ("grade", "Grade"),
        ("subject", "Subject"),
        ("observed_at", "Observed at"),
        ("duration_seconds", "Duration (s)"),
        ("overall_notes", "Overall notes"),
    ):
        if old.get(key) != new.get(key):
            changes.append(Change(label, _text(old.get(key)), _text(new.get(key))))
    if old.get("tags") != new.get("tags"):
        changes.append(
            Change("Tags", ", ".join(old.get("tags", [])), ", ".join(new.get("tags", [])))
        )
    for _s, item in definition.items():
        before = old.get("values", {}).get(item.key, {})
        after = new.get("values", {}).get(item.key, {})
        if display_value(item, before) != display_value(item, after):
            changes.append(
                Change(item.title, display_value(item, before), display_value(item, after))
            )
        if before.get("evidence", "") != after.get("evidence", ""):
            changes.append(
                Change(
                    f"{item.title} (evidence)",
                    before.get("evidence", ""),
                    after.get("evidence", ""),
                )
            )
    if old.get("notes") != new.get("notes"):
        changes.append(
            Change("Timed notes", _notes(old.get("notes", [])), _notes(new.get("notes", [])))
        )
    return changes


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _notes(notes: list[dict[str, Any]]) -> str:
    return "; ".join(f"{n['minute']}′ {n['text']}" for n in notes)


def display_value(item: ScaleItem | CountItem | CheckItem | TextItem, entry: dict[str, Any]) -> str:
    """A value as a person reads it: '3 – Developing', 'Not observed', 'Present', '4'."""
    if entry.get("not_observed"):
        return "Not observed"
    value = entry.get("value")
    if value is None or value == "":
        return "—"
    if isinstance(item, ScaleItem):
        label = next((lv.label for lv in item.levels if lv.value == value), "")
        return f"{value} – {label}" if label else str(value)
    if isinstance(item, CheckItem):
        return "Present" if value else "Not present"
    return str(value)


# --- lists, teacher pages, dashboard -------------------------------------------------------------


@dataclass
class Filters:
    """List and dashboard filters; None means any."""

    date_from: datetime | None = None
    date_to: datetime | None = None
    school_id: int | None = None
    teacher_id: int | None = None
    observer_id: int | None = None
    rubric_version_id: int | None = None
    rubric_slug: str | None = None
    status: ObservationStatus | None = None
    deleted: bool = False


def list_observations(
    *, session: Session, user: User, filters: Filters, limit: int = 200
) -> list[Observation]:
    """Observations the user may read, newest first, filtered; tombstones only for admins."""
    stmt = select(Observation).where(visible_filter(user))
    if filters.deleted and user.role == Role.admin:
        stmt = stmt.where(col(Observation.deleted_at).is_not(None))
    else:
        stmt = stmt.where(col(Observation.deleted_at).is_(None))
    if filters.date_from:
        stmt = stmt.where(col(Observation.observed_at) >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(col(Observation.observed_at) < filters.date_to)
    for column, value in (
        (Observation.school_id, filters.school_id),
        (Observation.teacher_id, filters.teacher_id),
        (Observation.observer_id, filters.observer_id),
        (Observation.rubric_version_id, filters.rubric_version_id),
        (Observation.status, filters.status),
    ):
        if value is not None:
            stmt = stmt.where(col(column) == value)
    if filters.rubric_slug:
        stmt = stmt.join(
            RubricVersion, col(RubricVersion.id) == Observation.rubric_version_id
        ).where(RubricVersion.slug == filters.rubric_slug)
    stmt = stmt.order_by(col(Observation.observed_at).desc()).limit(limit)
    return list(session.exec(stmt))


@dataclass
class Distribution:
    """Counts of each level of one scale item, by group (school or month)."""

    item: ScaleItem
    levels: list[tuple[int, str]]
    groups: dict[str, Counter[int]]
    not_observed: Counter[str]

    def total(self, group: str) -> int:
        """Scored ratings in a group (not observed excluded)."""
        return sum(self.groups[group].values())


def dashboard(
    *,
    session: Session,
    user: User,
    rubric: RubricVersion,
    filters: Filters,
    by: Literal["school", "month"],
) -> tuple[list[Distribution], int]:
    """Per scale item, the distribution of levels by school or month; and how many observations."""
    filters.rubric_version_id = rubric.id
    filters.status = ObservationStatus.submitted
    observations = list_observations(session=session, user=user, filters=filters, limit=1_000_000)
    definition = RubricDefinition.model_validate(rubric.content)
    schools = {s.id: s.name for s in session.exec(select(School))}
    result: list[Distribution] = []
    for _s, item in definition.items():
        if not isinstance(item, ScaleItem):
            continue
        groups: dict[str, Counter[int]] = defaultdict(Counter)
        not_observed: Counter[str] = Counter()
        for obs in observations:
            group = (
                schools.get(obs.school_id, "?")
                if by == "school"
                else obs.observed_at.strftime("%Y-%m")
            )
            entry = obs.values.get(item.key) or {}
            if entry.get("not_observed"):
                not_observed[group] += 1
                groups.setdefault(group, Counter())
            elif isinstance(entry.get("value"), int):
                groups[group][entry["value"]] += 1
        result.append(
            Distribution(
                item,
                [(lv.value, lv.label) for lv in item.levels],
                dict(sorted(groups.items())),
                not_observed,
            )
        )
    return result, len(observations)
