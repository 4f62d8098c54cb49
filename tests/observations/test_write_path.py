"""The one write path: every way an observation changes goes through observations.write."""

import hashlib
import json
import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.observations import service
from app.observations.models import Observation, ObservationRevision, ObservationStatus
from tests.helpers import World, login
from tests.sync.conftest import item, push


def _revisions(session: Session, obs_id: str) -> list[ObservationRevision]:
    session.rollback()
    return list(
        session.exec(
            select(ObservationRevision)
            .where(ObservationRevision.observation_id == uuid.UUID(obs_id))
            .order_by(col(ObservationRevision.revision))
        )
    )


def _hash(snapshot: dict) -> str:  # type: ignore[type-arg]
    canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def test_draft_push_amending_a_submitted_observation_stores_submitted_snapshot_and_hash(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    it = item(world)
    push(client, token, it)
    amend = item(world, it["id"], base=1, status="draft", overall_notes="amended")
    [result] = push(client, token, amend)
    assert result["status"] == "updated"
    rev2 = _revisions(session, it["id"])[1]
    assert rev2.status == ObservationStatus.submitted
    assert rev2.snapshot["status"] == "submitted"
    assert rev2.content_hash == _hash(rev2.snapshot)
    obs = session.get(Observation, uuid.UUID(it["id"]))
    assert obs is not None and obs.content_hash == rev2.content_hash
    # The device retries the same draft-status item: a replay, not a conflict.
    [again] = push(client, token, amend)
    assert (again["status"], again["revision"]) == ("duplicate", 2)


def test_payload_copy_never_reuses_the_cached_snapshot(world: World) -> None:
    payload = service.ObservationPayload(
        rubric_slug="discourse-walkthrough",
        rubric_version=1,
        teacher_name="T",
        observed_at=datetime(2026, 11, 2, tzinfo=UTC),
    )
    before = payload.content_hash()
    submitted = payload.with_status(ObservationStatus.submitted)
    assert submitted.snapshot()["status"] == "submitted"
    assert submitted.content_hash() != before
    copied = payload.model_copy(update={"overall_notes": "x"})
    assert copied.snapshot()["overall_notes"] == "x"


def test_form_save_and_push_produce_the_same_revision_record(
    client: TestClient, world: World, session: Session
) -> None:
    """A capture-form save and a push of the same content store identical content hashes."""
    token = login(client, world.observer)
    it = item(world, status="draft", values={}, notes=[], tags=[], overall_notes="")
    push(client, token, it)
    response = client.post(
        f"/observations/{it['id']}",
        data={"csrf_token": token, "action": "draft", "overall_notes": "From the form"},
    )
    assert response.status_code == 303, response.text
    revs = _revisions(session, it["id"])
    assert [r.revision for r in revs] == [1, 2]
    assert revs[0].device_id == "tablet-1" and revs[1].device_id is None
    assert revs[1].snapshot["overall_notes"] == "From the form"
    assert revs[1].content_hash == _hash(revs[1].snapshot)
    # The device now pushes the same content from revision 2: the server already has it.
    same = item(world, it["id"], base=2, **revs[1].snapshot)
    [result] = push(client, token, same)
    assert result["status"] == "duplicate"


@pytest.mark.parametrize("status", ["created", "rejected"])
def test_write_answers_each_change_in_order(
    world: World, session: Session, client: TestClient, status: str
) -> None:
    good = service.ObservationPayload.model_validate(item(world)["payload"])
    bad = good.model_copy(update={"rubric_version": 99})
    changes = [
        service.Change(uuid.uuid4(), 0, good if status == "created" else bad),
        service.Change(uuid.uuid4(), 0, good),
    ]
    outcomes = service.write(session=session, author=world.observer, device="d", changes=changes)
    assert [o.status for o in outcomes] == [status, "created"]
    assert [o.id for o in outcomes] == [c.id for c in changes]
    if status == "rejected":
        assert outcomes[0].details[0]["field"] == "rubric"


def test_write_refreshes_an_observation_the_session_already_loaded(
    world: World, session: Session, client: TestClient
) -> None:
    payload = service.ObservationPayload.model_validate(item(world)["payload"])
    obs_id = uuid.uuid4()
    service.write_one(
        session=session,
        author=world.observer,
        device=None,
        obs_id=obs_id,
        base_revision=0,
        payload=payload,
    )
    loaded = session.get(Observation, obs_id)
    assert loaded is not None and loaded.revision == 1
    service.write_one(
        session=session,
        author=world.observer,
        device=None,
        obs_id=obs_id,
        base_revision=1,
        payload=payload.model_copy(update={"overall_notes": "new"}),
    )
    assert loaded.revision == 2 and loaded.overall_notes == "new"


def test_only_one_function_inserts_observations() -> None:
    """No second implementation: only observations/service.py writes these tables."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "app"
    writers = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        for needle in (
            "insert(_OBS)",
            "update(_OBS)",
            "_REV.insert",
            "Observation(",
            "ObservationRevision(",
        ):
            if needle in text and path.name != "models.py":
                writers.append(f"{path.relative_to(root)}: {needle}")
    assert all(w.startswith("observations/service.py") for w in writers), writers


def test_a_batch_that_submits_then_sends_a_draft_stays_submitted(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    first = item(world)
    second = item(world, first["id"], base=1, status="draft", overall_notes="later")
    results = push(client, token, first, second)
    assert [r["status"] for r in results] == ["created", "updated"]
    revs = _revisions(session, first["id"])
    assert [r.snapshot["status"] for r in revs] == ["submitted", "submitted"]
    obs = session.get(Observation, uuid.UUID(first["id"]))
    assert obs is not None and obs.status == ObservationStatus.submitted


def test_a_retried_draft_edit_after_a_submit_elsewhere_is_a_duplicate(
    client: TestClient, world: World, session: Session
) -> None:
    """The device's draft edit was stored but its answer lost; the observer then submitted on
    a laptop. The device's retry is the same edit, not a conflict."""
    token = login(client, world.observer)
    it = item(world, status="draft")
    push(client, token, it)
    edit = item(world, it["id"], base=1, status="draft", overall_notes="from the tablet")
    [stored] = push(client, token, edit)
    assert stored["status"] == "updated"
    laptop = client.post(
        f"/observations/{it['id']}/submit", data={"csrf_token": token, "revision": 2}
    )
    assert laptop.status_code == 303
    [retry] = push(client, token, edit)
    assert (retry["status"], retry["revision"]) == ("duplicate", 3)


def test_a_form_encoded_push_is_a_clear_4xx(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    response = client.post(
        "/api/sync/push",
        content=b'{"device_id":"d","items":[]}',
        headers={"X-CSRF-Token": token, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200  # the body is read as JSON whatever the label says
    assert response.json() == {"results": []}


def test_the_sqlite_writer_answers_every_job(app, world: World) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from app.db import run_write

    engine = app.state.engine

    def fails(_session: Session) -> None:
        raise ValueError("bad job")

    def works(_session: Session) -> int:
        return 42

    async def both() -> list[object]:
        return await asyncio.gather(
            run_write(engine, fails), run_write(engine, works), return_exceptions=True
        )

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever this thread runs
        first, second = pool.submit(lambda: asyncio.run(both())).result()
    assert isinstance(first, ValueError) and second == 42
