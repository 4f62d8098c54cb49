"""Observations: the payload every client sends, validation against the rubric version,
saving with revisions, role scoping, lists, history diffs and tombstones."""

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
)
from sqlalchemy import ColumnElement, and_, bindparam, false, func, or_, true, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from app.accounts.models import Role, School, Teacher, User
from app.analytics import service as analytics
from app.db import (
    MAX_ID,
    Id,
    Page,
    UTCDateTime,
    contains,
    cursor_time,
    district_timezone,
    next_seq,
    no_nul,
    paginate,
    parse_int,
    utcnow,
)
from app.errors import Forbidden, Invalid, NotFound
from app.feedback import service as feedback
from app.observations import participation
from app.observations.models import (
    Observation,
    ObservationConflict,
    ObservationRevision,
    ObservationStatus,
    new_observation_id,
)
from app.observations.participation import ParticipationMap
from app.rubrics.loader import (
    AnyItem,
    CheckItem,
    CountItem,
    ParticipationItem,
    RubricDefinition,
    ScaleItem,
    TextItem,
)
from app.rubrics.models import RubricStatus, RubricVersion
from app.rubrics.service import definition as rubric_definition

RECORDING_ROLES = {Role.observer, Role.principal, Role.admin}
MAX_TEXT = 10_000
NoNul = AfterValidator(no_nul)
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NoNul]
LongText = Annotated[str, StringConstraints(max_length=MAX_TEXT), NoNul]


# Values live in JSON, not integer columns: any whole number a script can hold exactly.
PlainValue = bool | Annotated[int, Field(ge=-(2**53), le=2**53)] | LongText


def _value_shape(value: Any) -> str:
    return "map" if isinstance(value, (dict, ParticipationMap)) else "plain"


class ItemValue(BaseModel):
    """The value recorded for one rubric item, with optional evidence."""

    model_config = ConfigDict(extra="forbid")

    # A participation item's value is its map (markers and coded contributions): an object is
    # read as a map alone, so a bad map's reasons are about the map.
    value: (
        Annotated[
            Annotated[ParticipationMap, Tag("map")] | Annotated[PlainValue, Tag("plain")],
            Discriminator(_value_shape),
        ]
        | None
    ) = None
    not_observed: bool = False
    evidence: LongText = ""


class TimedNote(BaseModel):
    """An evidence note taken at a minute of the lesson."""

    model_config = ConfigDict(extra="forbid")

    minute: int = Field(ge=0, le=1440)
    text: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT), NoNul
    ]


class ObservationPayload(BaseModel):
    """One observation as a client sends it (the capture form, the sync API, a file)."""

    model_config = ConfigDict(extra="forbid")

    rubric_slug: Short
    rubric_version: Id
    teacher_id: Id | None = None
    teacher_name: Short = ""
    school_id: Id | None = None
    grade: Annotated[str, StringConstraints(strip_whitespace=True, max_length=10), NoNul] = ""
    subject: Short = ""
    observed_at: datetime
    duration_seconds: int | None = Field(default=None, ge=0, le=24 * 3600)
    status: ObservationStatus = ObservationStatus.draft
    values: dict[str, ItemValue] = Field(default_factory=dict, max_length=500)
    notes: list[TimedNote] = Field(default_factory=list, max_length=500)
    tags: list[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50), NoNul]
    ] = Field(default_factory=list, max_length=30)
    overall_notes: LongText = ""

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

    def with_status(self, status: ObservationStatus) -> "ObservationPayload":
        """A copy with another status (its snapshot and hash are computed afresh)."""
        if status == self.status:
            return self
        return self.model_copy(update={"status": status})

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> "ObservationPayload":
        """A copy that never carries the original's cached snapshot."""
        copy = super().model_copy(update=update, deep=deep)
        copy._snapshot = None
        return copy

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
            definition = rubric_definition(rubric)
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
        after it is retired); a new observation may use a retired version when it was started
        before the version was retired (on a device that was offline meanwhile).
        """
        user = self.user
        errors: list[dict[str, str]] = []
        rubric = self.rubric(payload.rubric_slug, payload.rubric_version)
        if rubric is None or rubric.status == RubricStatus.draft:
            raise Invalid(
                f"Unknown rubric version {payload.rubric_slug} v{payload.rubric_version}.",
                details=[{"field": "rubric", "message": "This rubric version is not published."}],
            )
        started_before_retired = (
            rubric.retired_at is not None and payload.observed_at <= rubric.retired_at
        )
        if (
            rubric.status == RubricStatus.retired
            and rubric.id != pinned_rubric_id
            and not started_before_retired
        ):
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


def _value_problem(item: AnyItem, entry: ItemValue) -> str | None:
    v = entry.value
    if isinstance(item, ParticipationItem) and entry.evidence.strip():
        # A map holds numbers and codes only: nothing on it can name a student.
        return "A participation map takes no evidence note: write what you noticed in the notes."
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
    elif isinstance(item, ParticipationItem):
        if not isinstance(v, ParticipationMap):
            return "A participation map: markers and contributions."
        return participation.problem(item, v)
    if isinstance(v, ParticipationMap) and not isinstance(item, ParticipationItem):
        return "A participation map fits only a participation item."
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


# --- the one write path ---------------------------------------------------------------------------

WriteStatus = Literal["created", "updated", "duplicate", "conflict", "rejected"]


@dataclass(frozen=True)
class Change:
    """One proposed state of an observation: its id, the revision it was edited from
    (0 for a new observation) and the full payload."""

    id: uuid.UUID
    base_revision: int
    payload: ObservationPayload


@dataclass
class Outcome:
    """What happened to one change. A device drops it from its outbox only after created,
    updated or duplicate."""

    id: uuid.UUID
    status: WriteStatus
    revision: int | None = None
    reason: str | None = None
    details: list[dict[str, str]] = field(default_factory=list)

    @property
    def stored(self) -> bool:
        """True when the server now holds this change (new, applied, or already there)."""
        return self.status in ("created", "updated", "duplicate")


@dataclass
class _State:
    observer_id: int
    revision: int
    content_hash: str
    status: ObservationStatus
    deleted: bool
    rubric_version_id: int


_OBS = Observation.__table__  # type: ignore[attr-defined]
_REV = ObservationRevision.__table__  # type: ignore[attr-defined]
_CONFLICT = ObservationConflict.__table__  # type: ignore[attr-defined]
_ROW_COLUMNS = (
    "school_id",
    "teacher_id",
    "teacher_name",
    "grade",
    "subject",
    "rubric_version_id",
    "observed_at",
    "duration_seconds",
    "status",
    "values",
    "notes",
    "tags",
    "overall_notes",
    "content_hash",
    "updated_at",
    "change_seq",
)
_statements: dict[str, tuple[Any, Any]] = {}


def _statements_for(dialect: str) -> tuple[Any, Any]:
    """Insert-if-absent and compare-and-set update, built once: a batch reuses the compiled
    statements with new parameters instead of building one statement per item."""
    if dialect not in _statements:
        insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
        create = insert_fn(_OBS).on_conflict_do_nothing(index_elements=["id"])
        set_columns = {
            name: bindparam(f"v_{name}", type_=_OBS.c[name].type) for name in _ROW_COLUMNS
        }
        compare_and_set = (
            update(_OBS)
            .where(_OBS.c.id == bindparam("w_id"), _OBS.c.revision == bindparam("w_base"))
            .values(
                revision=bindparam("v_revision"),
                # The first submission time is kept through later amendments.
                submitted_at=func.coalesce(
                    _OBS.c.submitted_at, bindparam("v_submitted_at", type_=UTCDateTime())
                ),
                **set_columns,
            )
        )
        _statements[dialect] = (create, compare_and_set)
    return _statements[dialect]


def write(
    *, session: Session, author: User, device: str | None, changes: list[Change]
) -> list[Outcome]:
    """Apply changes to observations: the only way an observation is created or changed.

    Every client goes through here: the capture form, review and submit, amendments, the sync
    push (a batch), conflict resolution and files of unsent observations. Each change is
    answered on its own, in order: created, updated, duplicate (the server already holds
    this content: a replay), conflict (the server moved on since base_revision; the change
    is kept for its observer to resolve) or rejected (with a reason and per-field details).
    New observations go in with one insert-if-absent, so two pushes of one id at the same
    moment still make one observation; edits are compare-and-set on the revision.
    """
    session.flush()
    outcomes: list[Outcome | None] = [None] * len(changes)
    states = _load_states(session, {c.id for c in changes})
    resolver = Resolver(session, author)
    ready: list[tuple[int, Change, Resolved, str]] = []
    for index, change in enumerate(changes):
        state = states.get(change.id)
        rejected = _check(resolver, author, change, state)
        if isinstance(rejected, Outcome):
            outcomes[index] = rejected
            continue
        ready.append((index, change, rejected, change.payload.content_hash()))
    if ready:
        _apply(session, author, device, ready, states, outcomes)
        _expire_loaded(session, {c.id for _i, c, _r, _h in ready})
    return [o for o in outcomes if o is not None]


def write_one(
    *,
    session: Session,
    author: User,
    device: str | None,
    obs_id: uuid.UUID,
    base_revision: int,
    payload: ObservationPayload,
) -> Outcome:
    """write() for a single change."""
    [outcome] = write(
        session=session,
        author=author,
        device=device,
        changes=[Change(obs_id, base_revision, payload)],
    )
    return outcome


@dataclass
class Started:
    """What starting a walk-through came to: the observation to open (`resumed` when the form
    was sent twice), or the outcome of a refusal."""

    obs_id: uuid.UUID
    outcome: Outcome | None = None
    resumed: bool = False


def start(
    *,
    session: Session,
    author: User,
    obs_id: uuid.UUID,
    teachers: list[Teacher],
    teacher_name: str,
    school_id: int | None,
    rubric_slug: str,
    rubric_version: int,
    grade: str,
    subject: str,
    observed_at: datetime,
) -> Started:
    """Create a draft through the one write path. The teacher is the roster teacher with
    exactly this name among `teachers` (at the chosen school when there are several),
    otherwise the typed name is kept; a form sent again opens the draft it made."""
    existing = session.get(Observation, obs_id)
    if existing is not None and existing.observer_id == author.id:
        return Started(obs_id, resumed=True)
    if existing is not None:  # another person's id: this one gets its own
        obs_id = new_observation_id()
    wanted = teacher_name.strip().casefold()
    matches = [t for t in teachers if t.name.casefold() == wanted]
    if len(matches) > 1:
        matches = [t for t in matches if t.school_id == school_id]
    teacher = matches[0] if len(matches) == 1 else None
    payload = ObservationPayload(
        rubric_slug=rubric_slug,
        rubric_version=rubric_version,
        teacher_id=teacher.id if teacher else None,
        teacher_name="" if teacher else teacher_name.strip()[:200],
        school_id=school_id,
        grade=grade[:10],
        subject=subject[:200],
        observed_at=observed_at,
    )
    outcome = write_one(
        session=session, author=author, device=None, obs_id=obs_id, base_revision=0, payload=payload
    )
    return Started(obs_id, outcome=outcome)


def amend(
    *,
    session: Session,
    author: User,
    obs: Observation,
    payload: ObservationPayload,
    device: str | None = None,
) -> Outcome:
    """write_one for a change made from the revision just read (pages, conflict resolution)."""
    return write_one(
        session=session,
        author=author,
        device=device,
        obs_id=obs.id,
        base_revision=obs.revision,
        payload=payload,
    )


def raise_if_rejected(outcome: Outcome) -> Outcome:
    """For pages: a rejected change becomes Invalid, with the fields to mark."""
    if outcome.status == "rejected":
        raise Invalid(
            outcome.reason or "The observation could not be saved.", details=outcome.details
        )
    return outcome


def _rejected(
    obs_id: uuid.UUID,
    reason: str,
    details: list[dict[str, str]] | None = None,
    revision: int | None = None,
) -> Outcome:
    return Outcome(obs_id, "rejected", revision=revision, reason=reason, details=details or [])


def _refusal(author: User, change: Change, state: _State) -> Outcome | None:
    """Why an existing observation may not take this change from this author, if it may not."""
    if state.observer_id != author.id:
        return _rejected(
            change.id,
            "This observation belongs to another observer; it cannot be changed from this account.",
        )
    if state.deleted:
        return _rejected(
            change.id, "An admin deleted this observation; ask them to restore it, then sync."
        )
    if change.base_revision > state.revision:
        return _rejected(
            change.id,
            f"This device says it edited revision {change.base_revision}, but the server has "
            f"only revision {state.revision}.",
            revision=state.revision,
        )
    return None


def _check(
    resolver: Resolver, author: User, change: Change, state: _State | None
) -> Outcome | Resolved:
    """Who may write this change, and does its content fit the rubric version it names."""
    if state is None and author.role not in RECORDING_ROLES:
        return _rejected(change.id, "Your role does not record observations.")
    refused = _refusal(author, change, state) if state is not None else None
    if refused is not None:
        return refused
    try:
        resolved = resolver.resolve(
            change.payload, state.rubric_version_id if state is not None else None
        )
    except Invalid as exc:
        reason = " ".join([exc.message, *(str(d["message"]) for d in exc.details)])
        return _rejected(
            change.id, reason, [{k: str(v) for k, v in d.items()} for d in exc.details]
        )
    problems = resolver.item_errors(resolved, change.payload.values)
    if problems:
        return _rejected(
            change.id,
            "; ".join(f"{key}: {message}" for key, message in problems.items()),
            [{"field": key, "message": message} for key, message in problems.items()],
        )
    return resolved


def _apply(
    session: Session,
    author: User,
    device: str | None,
    ready: list[tuple[int, Change, Resolved, str]],
    states: dict[uuid.UUID, _State],
    outcomes: list[Outcome | None],
) -> None:
    assert author.id is not None
    applied = _load_applied(session, set(states))
    open_conflicts = _load_open_conflicts(session, set(states))
    seq = next_seq(session)
    now = utcnow()
    revisions: list[dict[str, Any]] = []
    stored: dict[uuid.UUID, tuple[Change, Resolved]] = {}  # the state each id now has
    conn = session.connection()
    create_stmt, _update = _statements_for(conn.dialect.name)

    # New observations go in with one executemany. An insert that found the id taken (a
    # write racing this one) does nothing; the rows this transaction wrote are the ones
    # carrying its change sequence, and every other change is then handled one by one.
    first_new: dict[uuid.UUID, tuple[int, Change, Resolved, str]] = {}
    for entry in ready:
        if entry[1].id not in states and entry[1].id not in first_new:
            first_new[entry[1].id] = entry
    created_now: set[int] = set()
    created_ids: set[uuid.UUID] = set()  # made by this transaction: no analytics rows yet
    if first_new:
        rows = []
        for _index, change, resolved, digest in first_new.values():
            row = _row(change.payload, resolved, digest, now, seq)
            row.update(id=change.id, observer_id=author.id, revision=1, created_at=now)
            rows.append(row)
        conn.execute(create_stmt, rows)
        mine = set(
            conn.execute(
                select(_OBS.c.id).where(_OBS.c.id.in_(list(first_new)), _OBS.c.change_seq == seq)
            ).scalars()
        )
        for obs_id, (index, change, resolved, digest) in first_new.items():
            if obs_id in mine:
                states[obs_id] = _State(
                    author.id, 1, digest, change.payload.status, False, resolved.rubric.id or 0
                )
                applied[(obs_id, 1)] = digest
                revisions.append(_revision(change, 1, author.id, digest, device, now))
                stored[obs_id] = (change, resolved)
                created_now.add(index)
        created_ids = set(mine)
        lost = set(first_new) - mine
        if lost:
            states.update(_load_states(session, lost))
            applied.update(_load_applied(session, lost))

    for index, change, resolved, digest in ready:
        if index in created_now:
            outcomes[index] = Outcome(change.id, "created", revision=1)
            continue
        outcomes[index] = _apply_to_existing(
            session,
            author,
            device,
            change,
            resolved,
            digest,
            states,
            applied,
            open_conflicts,
            revisions,
            stored,
            seq,
            now,
        )
    if revisions:
        conn.execute(_REV.insert(), revisions)
    _write_analytics(session, author.id, stored, new=created_ids)


def _write_analytics(
    session: Session,
    observer_id: int,
    stored: dict[uuid.UUID, tuple[Change, Resolved]],
    new: set[uuid.UUID],
) -> None:
    """The analytics rows of every observation this write changed, in the same transaction."""
    if not stored:
        return
    tz = district_timezone(session)
    rows: list[dict[str, Any]] = []
    for obs_id, (change, resolved) in stored.items():
        payload = change.payload
        visit = analytics.Visit(
            id=obs_id,
            observer_id=observer_id,
            school_id=resolved.school.id or 0,
            teacher_id=resolved.teacher.id if resolved.teacher else None,
            grade=payload.grade,
            subject=payload.subject,
            rubric_version_id=resolved.rubric.id or 0,
            observed_at=payload.observed_at,
            duration_seconds=payload.duration_seconds,
            status=payload.status.value,
        )
        rows.extend(
            analytics.item_rows(visit, resolved.definition, payload.snapshot()["values"], tz)
        )
    analytics.replace_rows(session, stored, rows, new=new)


def _apply_to_existing(
    session: Session,
    author: User,
    device: str | None,
    change: Change,
    resolved: Resolved,
    digest: str,
    states: dict[uuid.UUID, _State],
    applied: dict[tuple[uuid.UUID, int], str],
    open_conflicts: dict[uuid.UUID, set[str]],
    revisions: list[dict[str, Any]],
    stored: dict[uuid.UUID, tuple[Change, Resolved]],
    seq: int,
    now: datetime,
) -> Outcome:
    assert author.id is not None
    conn = session.connection()
    _create, update_stmt = _statements_for(conn.dialect.name)
    sent = change, digest
    for _attempt in range(3):
        state = states.get(change.id)
        if state is None:  # taken by a racing write that is not visible yet: look again
            states.update(_load_states(session, {change.id}))
            continue
        refused = _refusal(author, change, state)  # looked at again: a racing write
        if refused is not None:
            return refused
        # Amending never un-submits: what is stored (row, revision, hash) says submitted, also
        # when an earlier item of the same batch submitted it.
        change, digest = sent
        if state.status == ObservationStatus.submitted:
            change = Change(
                change.id,
                change.base_revision,
                change.payload.with_status(ObservationStatus.submitted),
            )
            digest = change.payload.content_hash()
        # A replay is recognised by the content as sent or as it was stored. Its answer names
        # the revision that holds this content: the latest when that is it, otherwise the one
        # the replay made. Never a later revision someone else wrote: the device would take
        # it for its own and its next edit would overwrite that work without a conflict.
        if state.content_hash in (digest, sent[1]) or (
            state.revision > change.base_revision
            and state.content_hash == _as_stored(change.payload, resolved).content_hash()
        ):
            return Outcome(change.id, "duplicate", revision=state.revision)
        if applied.get((change.id, change.base_revision + 1)) in (digest, sent[1]):
            return Outcome(change.id, "duplicate", revision=change.base_revision + 1)
        if change.base_revision == state.revision:
            values = {
                f"v_{k}": v for k, v in _row(change.payload, resolved, digest, now, seq).items()
            }
            values.update(
                w_id=change.id,
                w_base=change.base_revision,
                v_revision=change.base_revision + 1,
            )
            if conn.execute(update_stmt, values).rowcount == 1:
                new_rev = change.base_revision + 1
                states[change.id] = _State(
                    author.id,
                    new_rev,
                    digest,
                    change.payload.status,
                    False,
                    resolved.rubric.id or 0,
                )
                applied[(change.id, new_rev)] = digest
                revisions.append(_revision(change, new_rev, author.id, digest, device, now))
                stored[change.id] = (change, resolved)
                return Outcome(change.id, "updated", revision=new_rev)
            states.update(_load_states(session, {change.id}))  # moved on under us: look again
            applied.update(_load_applied(session, {change.id}))
            continue
        if _continues_own_work(session, author, device, change, state.revision):
            # The server moved on only with what this device itself sent (its answer was lost):
            # the device is continuing its own work, so this is an update, not a conflict.
            sent = Change(change.id, state.revision, sent[0].payload), sent[1]
            continue
        if digest not in open_conflicts.get(change.id, set()):
            conn.execute(
                _CONFLICT.insert().values(
                    observation_id=change.id,
                    base_revision=change.base_revision,
                    server_revision=state.revision,
                    snapshot=change.payload.snapshot(),
                    content_hash=digest,
                    device_id=device,
                    received_at=now,
                )
            )
            open_conflicts.setdefault(change.id, set()).add(digest)
        return Outcome(
            change.id,
            "conflict",
            revision=state.revision,
            reason=f"The server already has revision {state.revision} (this device edited "
            f"revision {change.base_revision}). Both versions are kept: open the observation "
            "to choose which to keep.",
        )
    return _rejected(change.id, "The server was busy with this observation; retry.")


def _continues_own_work(
    session: Session, author: User, device: str | None, change: Change, current: int
) -> bool:
    """True when every revision after the one this change was edited from was written by
    this author from this same device: the device holds all of it already."""
    if not device or change.base_revision >= current:
        return False
    writers = session.execute(
        sa_select(col(ObservationRevision.device_id), col(ObservationRevision.author_id)).where(
            col(ObservationRevision.observation_id) == change.id,
            col(ObservationRevision.revision) > change.base_revision,
            col(ObservationRevision.revision) <= current,
        )
    ).all()
    return len(writers) == current - change.base_revision and all(
        d == device and a == author.id for d, a in writers
    )


def _row(
    payload: ObservationPayload, resolved: Resolved, digest: str, now: datetime, seq: int
) -> dict[str, Any]:
    snapshot = payload.snapshot()
    return {
        "school_id": resolved.school.id,
        "teacher_id": resolved.teacher.id if resolved.teacher else None,
        "teacher_name": resolved.teacher.name if resolved.teacher else payload.teacher_name,
        "grade": payload.grade,
        "subject": payload.subject,
        "rubric_version_id": resolved.rubric.id,
        "observed_at": payload.observed_at,
        "duration_seconds": payload.duration_seconds,
        "status": payload.status,
        "values": snapshot["values"],
        "notes": snapshot["notes"],
        "tags": snapshot["tags"],
        "overall_notes": payload.overall_notes,
        "content_hash": digest,
        "updated_at": now,
        "submitted_at": now if payload.status == ObservationStatus.submitted else None,
        "change_seq": seq,
    }


def _revision(
    change: Change,
    revision: int,
    author_id: int,
    digest: str,
    device: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "observation_id": change.id,
        "revision": revision,
        "author_id": author_id,
        "status": change.payload.status,
        "snapshot": change.payload.snapshot(),
        "content_hash": digest,
        "device_id": device,
        "created_at": now,
    }


def _load_states(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, _State]:
    if not ids:
        return {}
    rows = session.execute(
        sa_select(
            col(Observation.id),
            col(Observation.observer_id),
            col(Observation.revision),
            col(Observation.content_hash),
            col(Observation.status),
            col(Observation.deleted_at),
            col(Observation.rubric_version_id),
        ).where(col(Observation.id).in_(ids))
    )
    return {r[0]: _State(r[1], r[2], r[3], r[4], r[5] is not None, r[6]) for r in rows}


def _load_applied(session: Session, ids: set[uuid.UUID]) -> dict[tuple[uuid.UUID, int], str]:
    if not ids:
        return {}
    rows = session.execute(
        select(
            col(ObservationRevision.observation_id),
            col(ObservationRevision.revision),
            col(ObservationRevision.content_hash),
        ).where(col(ObservationRevision.observation_id).in_(ids))
    )
    return {(r[0], r[1]): r[2] for r in rows}


def _load_open_conflicts(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
    if not ids:
        return {}
    rows = session.execute(
        select(
            col(ObservationConflict.observation_id), col(ObservationConflict.content_hash)
        ).where(
            col(ObservationConflict.observation_id).in_(ids),
            col(ObservationConflict.resolved_at).is_(None),
        )
    )
    found: dict[uuid.UUID, set[str]] = {}
    for obs_id, digest in rows:
        found.setdefault(obs_id, set()).add(digest)
    return found


def _expire_loaded(session: Session, ids: set[uuid.UUID]) -> None:
    """Observations this session already loaded were changed underneath the ORM: reload them
    on next access."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Observation) and obj.id in ids:
            session.expire(obj)


def payload_from_form(
    form: Mapping[str, str],
    note_minutes: list[str],
    note_texts: list[str],
    definition: RubricDefinition,
    current: ObservationPayload,
) -> tuple[ObservationPayload | None, dict[str, Any], dict[str, str]]:
    """The capture form's fields (as the page posts them without JavaScript) as a new
    payload on top of `current`; also the fields as typed (to show again) and the errors by
    item key, so nothing typed is lost on a bad submit."""
    errors: dict[str, str] = {}
    values: dict[str, ItemValue] = {}
    state_values: dict[str, dict[str, str]] = {}
    for _s, item in definition.items():
        raw = str(form.get(f"item-{item.key}", "")).strip()
        evidence = str(form.get(f"evidence-{item.key}", ""))[:MAX_TEXT]
        if item.kind == "check":
            raw = "yes" if raw in ("yes", "on", "true") else "no"
        state_values[item.key] = {"value": raw, "evidence": evidence}
        entry: dict[str, Any] = {"evidence": evidence}
        if raw == "na":
            entry["not_observed"] = True
        elif raw == "":
            pass
        elif item.kind == "check":
            entry["value"] = raw == "yes"
        elif item.kind == "text":
            entry["value"] = raw[:MAX_TEXT]
        elif item.kind == "participation":
            try:
                entry["value"] = ParticipationMap.model_validate_json(raw).model_dump()
            except ValidationError:
                errors[item.key] = "The participation map could not be read: lay it out again."
                continue
            if not entry["value"]["markers"] and not entry["value"]["events"]:
                del entry["value"]
        else:
            number = parse_int(raw, minimum=-MAX_ID, maximum=MAX_ID)
            if number is None:
                errors[item.key] = (
                    "Enter a whole number." if item.kind == "count" else "Choose a level."
                )
                continue
            entry["value"] = number
        if entry.get("value") is not None or entry.get("not_observed") or evidence:
            values[item.key] = ItemValue.model_validate(entry)
    notes = []
    for minute, text in zip(note_minutes, note_texts, strict=False):
        text = str(text).strip()
        if text:
            at = parse_int(minute, maximum=24 * 60) or 0
            notes.append({"minute": at, "text": text[:MAX_TEXT]})
    tags = [t.strip()[:50] for t in str(form.get("tags", "")).split(",") if t.strip()][:30]
    minutes = str(form.get("duration_minutes", "")).strip()
    state = {
        "values": state_values,
        "notes": notes,
        "tags": str(form.get("tags", "")),
        "overall_notes": str(form.get("overall_notes", "")),
        "duration_minutes": minutes,
    }
    duration = parse_int(minutes, maximum=24 * 60)
    if minutes and duration is None:
        errors["duration_minutes"] = "Enter the number of minutes."
    if errors:
        return None, state, errors
    try:
        payload = current.model_copy(
            update={
                "values": values,
                "notes": [TimedNote.model_validate(n) for n in notes],
                "tags": list(dict.fromkeys(tags)),
                "overall_notes": str(form.get("overall_notes", ""))[:MAX_TEXT],
                "duration_seconds": duration * 60 if duration is not None else None,
            }
        )
    except ValidationError as exc:
        return None, state, {"overall_notes": str(exc.errors()[0]["msg"])}
    return payload, state, errors


def _as_stored(payload: ObservationPayload, resolved: Resolved) -> ObservationPayload:
    """The payload as payload_of() would give it back once stored (the school filled in, a
    roster teacher's typed name dropped): how a page's save of the same content (a submit on
    the laptop) was hashed, to recognise a device's retry of that content as a duplicate."""
    return payload.model_copy(
        update={
            "school_id": resolved.school.id,
            "teacher_name": payload.teacher_name if resolved.teacher is None else "",
        }
    )


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
    """Tombstone (or restore) an observation; it is never removed from the database. Asking
    for the state it is already in changes nothing."""
    if (obs.deleted_at is not None) == deleted:
        return obs
    if deleted:  # its feedback link stops working with it
        feedback.revoke_all(session, obs.id, admin, "the observation was deleted")
    obs.deleted_at = utcnow() if deleted else None
    obs.deleted_by_id = admin.id if deleted else None
    obs.updated_at = utcnow()
    obs.change_seq = next_seq(session)
    session.add(obs)
    session.flush()
    analytics.mark_deleted(session, obs.id, deleted)
    return obs


# --- history -------------------------------------------------------------------------------------


@dataclass
class Difference:
    """One difference between two revisions."""

    label: str
    old: str
    new: str


@dataclass
class RevisionView:
    """A revision with who saved it and what changed from the one before."""

    revision: ObservationRevision
    author: str
    changes: list[Difference] = field(default_factory=list)


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
) -> list[Difference]:
    """What changed between two snapshots, item by item, in words."""
    changes: list[Difference] = []
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
            changes.append(Difference(label, _text(old.get(key)), _text(new.get(key))))
    if old.get("tags") != new.get("tags"):
        changes.append(
            Difference("Tags", ", ".join(old.get("tags", [])), ", ".join(new.get("tags", [])))
        )
    for _s, item in definition.items():
        before = old.get("values", {}).get(item.key, {})
        after = new.get("values", {}).get(item.key, {})
        if isinstance(item, ParticipationItem):
            # Two maps with the same totals can differ in who spoke, how, when or with which
            # label: compare the maps themselves, and say what differs.
            if before.get("value") != after.get("value"):
                was = participation.describe(item, before.get("value"))
                now = participation.describe(item, after.get("value"))
                if was == now:
                    now += " (the same counts: the times, order or labels of contributions differ)"
                changes.append(Difference(item.title, was, now))
        elif display_value(item, before) != display_value(item, after):
            changes.append(
                Difference(item.title, display_value(item, before), display_value(item, after))
            )
        if before.get("evidence", "") != after.get("evidence", ""):
            changes.append(
                Difference(
                    f"{item.title} (evidence)",
                    before.get("evidence", ""),
                    after.get("evidence", ""),
                )
            )
    if old.get("notes") != new.get("notes"):
        changes.append(
            Difference("Timed notes", _notes(old.get("notes", [])), _notes(new.get("notes", [])))
        )
    return changes


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _notes(notes: list[dict[str, Any]]) -> str:
    return "; ".join(f"{n['minute']}′ {n['text']}" for n in notes)


def display_value(item: AnyItem, entry: dict[str, Any]) -> str:
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
    if isinstance(item, ParticipationItem):
        if not isinstance(value, dict):
            return str(value)
        return participation.headline(participation.summarise(item, value))
    return str(value)


# --- lists and teacher pages ---------------------------------------------------------------------


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
    q: str = ""  # part of the teacher's name
    feedback: str | None = None  # a FeedbackState value: where the feedback loop stands


def list_observations(
    *, session: Session, user: User, filters: Filters, cursor: str | None = None
) -> Page[Observation]:
    """Observations the user may read, newest first, filtered, a page at a time with the true
    total; tombstones only for admins."""
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
    if filters.q:
        stmt = stmt.where(contains(col(Observation.teacher_name), filters.q))
    if filters.feedback:
        stmt = stmt.where(feedback.state_condition(filters.feedback, col(Observation.id)))
    return paginate(
        session,
        stmt,
        order=[col(Observation.observed_at), col(Observation.id)],
        descending=True,
        key=lambda o: (o.observed_at, o.id),
        parsers=[cursor_time, uuid.UUID],
        cursor=cursor,
    )
