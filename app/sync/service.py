"""Push and pull for devices that record offline: every item is handled on its own, a replay
is a duplicate, a stale edit is kept as a conflict, and nothing is created twice."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from app.accounts.models import Role, Teacher, User
from app.db import UTCDateTime, current_seq, next_seq, utcnow
from app.errors import Invalid, NotFound
from app.observations import service as observations
from app.observations.models import (
    Observation,
    ObservationConflict,
    ObservationRevision,
    ObservationStatus,
)
from app.rubrics.models import RubricStatus, RubricVersion

MAX_BATCH = 100
PULL_LIMIT = 500

Status = Literal["created", "updated", "duplicate", "conflict", "rejected"]


class PushItem(BaseModel):
    """One observation in a push: its id, the server revision it was edited from, its state."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(description="Minted by the device when the observation started.")
    base_revision: int = Field(
        default=0, ge=0, description="The server revision this edit started from; 0 if new."
    )
    payload: observations.ObservationPayload


class ItemResult(BaseModel):
    """What happened to one pushed item. Remove it from the outbox only after created,
    updated or duplicate."""

    id: str
    status: Status
    revision: int | None = Field(default=None, description="The server's revision now.")
    reason: str | None = Field(default=None, description="Why, for conflict and rejected.")


def _result(**fields: Any) -> ItemResult:
    # Built without validation: thousands a second, from values this module made.
    fields.setdefault("revision", None)
    fields.setdefault("reason", None)
    return ItemResult.model_construct(**fields)


@dataclass
class _State:
    observer_id: int
    revision: int
    content_hash: str
    status: ObservationStatus
    deleted: bool


def _human(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(parts)


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
    "submitted_at",
    "change_seq",
)
_statements: dict[str, tuple[Any, Any]] = {}


def _statements_for(dialect: str) -> tuple[Any, Any]:
    """Insert-if-absent and compare-and-set update, built once: a batch reuses the compiled
    statements with new parameters instead of building 100 statements."""
    if dialect not in _statements:
        insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
        create = insert_fn(_OBS).on_conflict_do_nothing(index_elements=["id"])
        set_columns = {
            name: bindparam(f"v_{name}", type_=_OBS.c[name].type)
            for name in _ROW_COLUMNS
            if name != "submitted_at"
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


def push(*, session: Session, user: User, device_id: str, items: list[Any]) -> list[ItemResult]:
    """Apply a batch of pushed observations; one result per item, in order."""
    results: list[ItemResult | None] = [None] * len(items)
    resolver = observations.Resolver(session, user)
    valid: list[tuple[int, PushItem, observations.Resolved, str]] = []
    for index, raw in enumerate(items):
        raw_id = str(raw.get("id", "")) if isinstance(raw, dict) else ""
        try:
            item = PushItem.model_validate(raw)
        except ValidationError as exc:
            results[index] = _result(id=raw_id, status="rejected", reason=_human(exc))
            continue
        if user.role not in observations.RECORDING_ROLES:
            results[index] = _result(
                id=raw_id, status="rejected", reason="Your role does not record observations."
            )
            continue
        try:
            resolved: observations.Resolved | None = resolver.resolve(item.payload, None)
        except Invalid as exc:
            # A retired version stays usable for the observation that already uses it.
            resolved = (
                _resolve_pinned(session, resolver, item) if "retired" in exc.message else None
            )
            if resolved is None:
                results[index] = _rejected(item, exc)
                continue
        assert resolved is not None
        problems = resolver.item_errors(resolved, item.payload.values)
        if problems:
            reason = "; ".join(f"{key}: {message}" for key, message in problems.items())
            results[index] = _result(id=str(item.id), status="rejected", reason=reason)
            continue
        valid.append((index, item, resolved, item.payload.content_hash()))

    if valid:
        _apply(session, user, device_id, valid, results)
    return [r for r in results if r is not None]


def _rejected(item: PushItem, exc: Invalid) -> ItemResult:
    details = "; ".join(str(d["message"]) for d in exc.details)
    return _result(id=str(item.id), status="rejected", reason=f"{exc.message} {details}".strip())


def _resolve_pinned(
    session: Session, resolver: observations.Resolver, item: PushItem
) -> observations.Resolved | None:
    pinned = session.execute(
        select(col(Observation.rubric_version_id)).where(col(Observation.id) == item.id)
    ).scalar()
    if pinned is None:
        return None
    try:
        return resolver.resolve(item.payload, pinned)
    except Invalid:
        return None


def _apply(
    session: Session,
    user: User,
    device_id: str,
    valid: list[tuple[int, PushItem, observations.Resolved, str]],
    results: list[ItemResult | None],
) -> None:
    ids = {item.id for _i, item, _r, _h in valid}
    states = _load_states(session, ids)
    applied = _load_applied(session, set(states))
    open_conflicts = _load_open_conflicts(session, set(states))
    seq = next_seq(session)
    now = utcnow()
    revisions: list[dict[str, Any]] = []
    assert user.id is not None
    conn = session.connection()
    create_stmt, update_stmt = _statements_for(conn.dialect.name)

    # New observations go in with one executemany. An insert that found the id taken (a push
    # racing this one) does nothing; the rows this transaction wrote are the ones carrying
    # its change sequence, and every other item is then handled one by one below.
    first_new: dict[uuid.UUID, tuple[int, PushItem, observations.Resolved, str]] = {}
    for entry in valid:
        if entry[1].id not in states and entry[1].id not in first_new:
            first_new[entry[1].id] = entry
    created_now: set[int] = set()
    if first_new:
        rows = []
        for _index, item, resolved, digest in first_new.values():
            row = _row(item.payload, resolved, digest, now, seq)
            row.update(id=item.id, observer_id=user.id, revision=1, created_at=now)
            rows.append(row)
        conn.execute(create_stmt, rows)
        mine = set(
            conn.execute(
                select(_OBS.c.id).where(_OBS.c.id.in_(list(first_new)), _OBS.c.change_seq == seq)
            ).scalars()
        )
        for obs_id, (index, item, _resolved, digest) in first_new.items():
            if obs_id in mine:
                states[obs_id] = _State(user.id, 1, digest, item.payload.status, False)
                applied[(obs_id, 1)] = digest
                revisions.append(_revision(item, 1, user.id, digest, device_id, now))
                created_now.add(index)
        lost = set(first_new) - mine
        if lost:
            states.update(_load_states(session, lost))
            applied.update(_load_applied(session, lost))

    for index, item, resolved, digest in valid:
        sid = str(item.id)
        if index in created_now:
            results[index] = _result(id=sid, status="created", revision=1)
            continue
        for _attempt in range(3):
            state = states.get(item.id)
            if state is None:  # not stored above and not found: never expected; retryable
                continue
            if state.observer_id != user.id:
                results[index] = _result(
                    id=sid,
                    status="rejected",
                    reason="This observation belongs to another observer; it cannot be changed "
                    "from this account.",
                )
                break
            if state.deleted:
                results[index] = _result(
                    id=sid,
                    status="rejected",
                    reason="An admin deleted this observation; ask them to restore it, then sync.",
                )
                break
            if (
                state.content_hash == digest
                or applied.get((item.id, item.base_revision + 1)) == digest
            ):
                results[index] = _result(id=sid, status="duplicate", revision=state.revision)
                break
            if item.base_revision == state.revision:
                status = item.payload.status
                if state.status == ObservationStatus.submitted:
                    status = ObservationStatus.submitted  # amending never un-submits
                payload = item.payload.model_copy(update={"status": status})
                digest = payload.content_hash() if status != item.payload.status else digest
                values = {f"v_{k}": v for k, v in _row(payload, resolved, digest, now, seq).items()}
                values.update(
                    w_id=item.id, w_base=item.base_revision, v_revision=item.base_revision + 1
                )
                done = conn.execute(update_stmt, values).rowcount
                if done == 1:
                    new_rev = item.base_revision + 1
                    states[item.id] = _State(user.id, new_rev, digest, status, False)
                    applied[(item.id, new_rev)] = digest
                    revisions.append(_revision(item, new_rev, user.id, digest, device_id, now))
                    results[index] = _result(id=sid, status="updated", revision=new_rev)
                    break
                states.update(_load_states(session, {item.id}))  # moved on under us: look again
                applied.update(_load_applied(session, {item.id}))
                continue
            if item.base_revision > state.revision:
                results[index] = _result(
                    id=sid,
                    status="rejected",
                    revision=state.revision,
                    reason=f"This device says it edited revision {item.base_revision}, but the "
                    f"server has only revision {state.revision}.",
                )
                break
            if digest not in open_conflicts.get(item.id, set()):
                conn.execute(
                    _CONFLICT.insert().values(
                        observation_id=item.id,
                        base_revision=item.base_revision,
                        server_revision=state.revision,
                        snapshot=item.payload.model_dump(mode="json"),
                        content_hash=digest,
                        device_id=device_id,
                        received_at=now,
                    )
                )
                open_conflicts.setdefault(item.id, set()).add(digest)
            results[index] = _result(
                id=sid,
                status="conflict",
                revision=state.revision,
                reason=f"The server already has revision {state.revision} (this device edited "
                f"revision {item.base_revision}). Both versions are kept: open the observation "
                "to choose which to keep.",
            )
            break
        else:
            results[index] = _result(
                id=sid,
                status="rejected",
                reason="The server was busy with this observation; retry.",
            )
    if revisions:
        conn.execute(_REV.insert(), revisions)


def _row(
    payload: observations.ObservationPayload,
    resolved: observations.Resolved,
    digest: str,
    now: datetime,
    seq: int,
) -> dict[str, Any]:
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
        "values": payload.snapshot()["values"],
        "notes": payload.snapshot()["notes"],
        "tags": payload.snapshot()["tags"],
        "overall_notes": payload.overall_notes,
        "content_hash": digest,
        "updated_at": now,
        "submitted_at": now if payload.status == ObservationStatus.submitted else None,
        "change_seq": seq,
    }


def _revision(
    item: PushItem, revision: int, author_id: int, digest: str, device_id: str, now: datetime
) -> dict[str, Any]:
    return {
        "observation_id": item.id,
        "revision": revision,
        "author_id": author_id,
        "status": item.payload.status,
        "snapshot": item.payload.snapshot(),
        "content_hash": digest,
        "device_id": device_id,
        "created_at": now,
    }


def _load_states(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, _State]:
    if not ids:
        return {}
    rows = session.execute(
        select(
            col(Observation.id),
            col(Observation.observer_id),
            col(Observation.revision),
            col(Observation.content_hash),
            col(Observation.status),
            col(Observation.deleted_at),
        ).where(col(Observation.id).in_(ids))
    )
    return {r[0]: _State(r[1], r[2], r[3], r[4], r[5] is not None) for r in rows}


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


# --- pull -------------------------------------------------------------------------------------


def pull(*, session: Session, user: User, since: int) -> dict[str, Any]:
    """What changed for this user after the cursor: their observations (tombstones included),
    open conflicts, their roster, rubric versions; and the next cursor."""
    upto = current_seq(session)
    more = False

    obs_rows = list(
        session.execute(
            select(Observation)
            .where(
                col(Observation.observer_id) == user.id,
                col(Observation.change_seq) > since,
                col(Observation.change_seq) <= upto,
            )
            .order_by(col(Observation.change_seq))
            .limit(PULL_LIMIT + 1)
        ).scalars()
    )
    if len(obs_rows) > PULL_LIMIT:
        # Cut before the first row left out, at a whole sequence value: the rows of one
        # transaction share a value and must arrive together.
        upto = obs_rows[PULL_LIMIT].change_seq - 1
        obs_rows = [o for o in obs_rows if o.change_seq <= upto]
        more = True
    rubric_ids = {o.rubric_version_id for o in obs_rows}
    rubrics = (
        {
            r.id: r
            for r in session.execute(
                select(RubricVersion).where(col(RubricVersion.id).in_(rubric_ids))
            ).scalars()
        }
        if rubric_ids
        else {}
    )
    observations_out = []
    for o in obs_rows:
        if o.deleted_at is not None:
            observations_out.append({"id": str(o.id), "deleted": True, "revision": o.revision})
            continue
        rubric = rubrics[o.rubric_version_id]
        observations_out.append(
            {
                "id": str(o.id),
                "deleted": False,
                "revision": o.revision,
                "status": o.status.value,
                "updated_at": o.updated_at.isoformat(),
                "payload": observations.payload_of(o, rubric).model_dump(mode="json"),
            }
        )

    teachers = session.execute(
        select(Teacher).where(col(Teacher.change_seq) > since, col(Teacher.change_seq) <= upto)
    ).scalars()
    roster = [
        {
            "id": t.id,
            "name": t.name,
            "school_id": t.school_id,
            "grades": t.grade_list,
            "active": t.active,
        }
        for t in teachers
        if user.role in (Role.admin, Role.facilitator) or t.school_id == user.school_id
    ]
    rubric_rows = session.execute(
        select(RubricVersion).where(
            col(RubricVersion.change_seq) > since,
            col(RubricVersion.change_seq) <= upto,
            col(RubricVersion.status) != RubricStatus.draft,
        )
    ).scalars()
    rubric_versions = [
        {
            "slug": r.slug,
            "version": r.version,
            "title": r.title,
            "status": r.status.value,
            "content_hash": r.content_hash,
            "url": f"/api/rubrics/{r.slug}/versions/{r.version}",
        }
        for r in rubric_rows
    ]
    conflicts = [
        {
            "observation_id": str(c.observation_id),
            "base_revision": c.base_revision,
            "server_revision": c.server_revision,
            "received_at": c.received_at.isoformat(),
        }
        for c in session.execute(
            select(ObservationConflict)
            .join(Observation, col(Observation.id) == ObservationConflict.observation_id)
            .where(
                col(Observation.observer_id) == user.id,
                col(ObservationConflict.resolved_at).is_(None),
            )
        ).scalars()
    ]
    return {
        "cursor": upto,
        "more": more,
        "observations": observations_out,
        "roster": roster,
        "rubric_versions": rubric_versions,
        "open_conflicts": conflicts,
    }


# --- conflicts -----------------------------------------------------------------------------------


def open_conflicts(*, session: Session, obs: Observation) -> list[ObservationConflict]:
    """Unresolved conflicting versions of an observation, oldest first."""
    return list(
        session.execute(
            select(ObservationConflict)
            .where(
                col(ObservationConflict.observation_id) == obs.id,
                col(ObservationConflict.resolved_at).is_(None),
            )
            .order_by(col(ObservationConflict.id))
        ).scalars()
    )


def resolve_conflict(
    *,
    session: Session,
    user: User,
    obs: Observation,
    conflict_id: int,
    keep: Literal["server", "device"],
) -> Observation:
    """Keep the server's version (the device's is marked resolved, still stored), or apply the
    device's version as a new revision."""
    conflict = session.get(ObservationConflict, conflict_id)
    if conflict is None or conflict.observation_id != obs.id or conflict.resolved_at is not None:
        raise NotFound("This conflict is already resolved.")
    if keep == "device":
        payload = observations.ObservationPayload.model_validate(conflict.snapshot)
        obs, _ = observations.save(session=session, user=user, obs_id=obs.id, payload=payload)
    conflict.resolved_at = utcnow()
    conflict.resolution = keep
    session.add(conflict)
    obs.change_seq = next_seq(session)
    session.add(obs)
    session.flush()
    return obs
