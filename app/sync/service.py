"""Push and pull for devices that record offline: every item is handled on its own, a replay
is a duplicate, a stale edit is kept as a conflict, and nothing is created twice."""

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlmodel import Session, col

from app.accounts.models import Role, Teacher, User
from app.db import Count, current_seq, next_seq, utcnow
from app.errors import Conflict, NotFound
from app.observations import service as observations
from app.observations.models import (
    Observation,
    ObservationConflict,
)
from app.rubrics.models import RubricStatus, RubricVersion

MAX_BATCH = 100
PULL_LIMIT = 500

Status = observations.WriteStatus


class PushItem(BaseModel):
    """One observation in a push: its id, the server revision it was edited from, its state."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(description="Minted by the device when the observation started.")
    base_revision: Count = Field(
        default=0, description="The server revision this edit started from; 0 if new."
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


def _human(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(parts)


@dataclass
class ParsedPush:
    """A batch read item by item: the changes to write, and results for malformed items."""

    changes: list[observations.Change]
    positions: list[int]
    results: list[ItemResult | None]


def parse(items: list[Any]) -> ParsedPush:
    """Read each pushed item on its own: a malformed one is rejected alone, with a reason."""
    parsed = ParsedPush([], [], [None] * len(items))
    for index, raw in enumerate(items):
        raw_id = str(raw.get("id", ""))[:100] if isinstance(raw, dict) else ""
        try:
            item = PushItem.model_validate(raw)
        except ValidationError as exc:
            parsed.results[index] = _result(id=raw_id, status="rejected", reason=_human(exc))
            continue
        parsed.changes.append(observations.Change(item.id, item.base_revision, item.payload))
        parsed.positions.append(index)
    return parsed


def apply(*, session: Session, user: User, device_id: str, parsed: ParsedPush) -> list[ItemResult]:
    """Write the parsed batch through the one write path; one result per item, in order."""
    outcomes = observations.write(
        session=session, author=user, device=device_id, changes=parsed.changes
    )
    results = list(parsed.results)
    for index, outcome in zip(parsed.positions, outcomes, strict=True):
        results[index] = _result(
            id=str(outcome.id),
            status=outcome.status,
            revision=outcome.revision,
            reason=outcome.reason,
        )
    return [r for r in results if r is not None]


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
        outcome = observations.amend(
            session=session, author=user, obs=obs, payload=payload, device=conflict.device_id
        )
        observations.raise_if_rejected(outcome)
        if outcome.status == "conflict":
            raise Conflict(
                "The observation changed while you were choosing; open it again and choose "
                "once more."
            )
    conflict.resolved_at = utcnow()
    conflict.resolution = keep
    session.add(conflict)
    obs.change_seq = next_seq(session)
    session.add(obs)
    session.flush()
    return obs
