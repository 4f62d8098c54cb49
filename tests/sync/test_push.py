"""POST /api/sync/push: created, updated, duplicate, conflict, rejected; one bad item alone."""

import threading
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from app.observations.models import Observation, ObservationConflict, ObservationRevision
from tests.helpers import World, login
from tests.sync.conftest import item, payload, push


def _count(session: Session, model: type) -> int:
    session.rollback()
    return session.exec(select(func.count()).select_from(model)).one()


def test_new_item_is_created(client: TestClient, world: World, session: Session) -> None:
    token = login(client, world.observer)
    it = item(world)
    [result] = push(client, token, it)
    assert result == {"id": it["id"], "status": "created", "revision": 1, "reason": None}
    obs = session.get(Observation, uuid.UUID(it["id"]))
    assert obs is not None
    assert obs.values["students_explaining"]["value"] == 4
    assert obs.teacher_name == "Ana García"
    assert obs.submitted_at is not None
    assert obs.observed_at.isoformat() == "2026-11-20T15:15:00+00:00"
    rev = session.exec(select(ObservationRevision)).one()
    assert (rev.revision, rev.device_id) == (1, "tablet-1")


def test_replaying_the_same_push_is_a_duplicate(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    it = item(world)
    push(client, token, it)
    [again] = push(client, token, it)
    assert again["status"] == "duplicate"
    assert again["revision"] == 1
    assert _count(session, Observation) == 1
    assert _count(session, ObservationRevision) == 1


def test_edit_from_the_current_revision_is_updated(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    it = item(world)
    push(client, token, it)
    edited = item(world, it["id"], base=1, overall_notes="Better")
    [result] = push(client, token, edited)
    assert (result["status"], result["revision"]) == ("updated", 2)
    [replay] = push(client, token, edited)
    assert (replay["status"], replay["revision"]) == ("duplicate", 2)
    obs = session.get(Observation, uuid.UUID(it["id"]))
    assert obs is not None and obs.overall_notes == "Better" and obs.revision == 2


def test_a_late_replay_of_an_old_push_is_still_a_duplicate(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    first = item(world)
    push(client, token, first)
    push(client, token, item(world, first["id"], base=1, overall_notes="v2"))
    [late] = push(client, token, first)  # the first push's retry arrives after the edit
    # It is the revision that holds it (1), not the later one (2) with other content.
    assert (late["status"], late["revision"]) == ("duplicate", 1)
    assert _count(session, ObservationConflict) == 0


def test_a_retry_that_arrives_after_another_device_wrote_names_its_own_revision(
    client: TestClient, world: World, session: Session
) -> None:
    """The tablet's edit was stored as revision 2 but its answer lost; the laptop then wrote
    revision 3. The tablet's retry is a duplicate of revision 2 — answered 3, the tablet
    would take the laptop's revision for its own and its next edit would overwrite it."""
    token = login(client, world.observer)
    it = item(world)
    push(client, token, it, device="tablet")
    edit = item(world, it["id"], base=1, overall_notes="from the tablet")
    push(client, token, edit, device="tablet")
    push(client, token, item(world, it["id"], base=2, overall_notes="laptop"), device="laptop")
    [retry] = push(client, token, edit, device="tablet")
    assert (retry["status"], retry["revision"]) == ("duplicate", 2)
    # The tablet's next edit, on the revision it was told, keeps both versions.
    [later] = push(
        client, token, item(world, it["id"], base=2, overall_notes="tablet again"), device="tablet"
    )
    assert (later["status"], later["revision"]) == ("conflict", 3)
    obs = session.get(Observation, uuid.UUID(it["id"]))
    assert obs is not None and obs.overall_notes == "laptop"


def test_stale_edit_is_a_conflict_and_is_kept(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    it = item(world)
    push(client, token, it)
    push(client, token, item(world, it["id"], base=1, overall_notes="from the laptop"))
    stale = item(world, it["id"], base=1, overall_notes="from the tablet")
    [result] = push(client, token, stale, device="tablet-2")
    assert result["status"] == "conflict"
    assert result["revision"] == 2
    assert "Both versions are kept" in result["reason"]
    conflict = session.exec(select(ObservationConflict)).one()
    assert conflict.snapshot["overall_notes"] == "from the tablet"
    assert (conflict.base_revision, conflict.server_revision, conflict.device_id) == (
        1,
        2,
        "tablet-2",
    )
    [again] = push(client, token, stale, device="tablet-2")
    assert again["status"] == "conflict"
    assert _count(session, ObservationConflict) == 1  # a replayed conflict is stored once
    obs = session.get(Observation, uuid.UUID(it["id"]))
    assert obs is not None and obs.overall_notes == "from the laptop"


def test_rejections_say_why(client: TestClient, world: World, session: Session) -> None:
    token = login(client, world.observer)
    results = push(
        client,
        token,
        item(world, rubric_slug="no-such-rubric"),
        item(world, values={"overall_discourse": {"value": 9}}),
        item(world, values={"students_explaining": {"value": -1}}),
        item(world, values={"nope": {"value": 1}}),
        item(world, observed_at="2026-11-20T09:15:00"),
        {"id": "not-a-uuid", "base_revision": 0, "payload": payload(world)},
        {"id": str(uuid.uuid4()), "payload": {"rubric_slug": "discourse-walkthrough"}},
        "just a string",
        item(world, teacher_id=None, teacher_name=""),
    )
    assert [r["status"] for r in results] == ["rejected"] * 9
    reasons = [r["reason"] for r in results]
    assert "Unknown rubric version no-such-rubric v1" in reasons[0]
    assert "overall_discourse: Choose one of the levels 1, 2, 3, 4, 5." in reasons[1]
    assert "students_explaining: A tally cannot be negative." in reasons[2]
    assert "'nope' is not an item of Discourse Walk-Through v1" in reasons[3]
    assert "time-zone offset" in reasons[4]
    assert reasons[5].startswith("id:")
    assert "payload.rubric_version: Field required" in reasons[6]
    assert results[7]["id"] == ""
    assert "Choose a teacher or type their name." in reasons[8]
    assert _count(session, Observation) == 0


def test_someone_elses_observation_is_rejected(
    client: TestClient, world: World, session: Session, app
) -> None:  # type: ignore[no-untyped-def]
    token = login(client, world.observer)
    it = item(world)
    push(client, token, it)
    principal = TestClient(app, follow_redirects=False)
    ptoken = login(principal, world.principal)
    [result] = push(principal, ptoken, item(world, it["id"], base=1, overall_notes="mine now"))
    assert result["status"] == "rejected"
    assert "belongs to another observer" in result["reason"]


def test_a_mixed_batch_answers_each_item_in_order(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    existing = item(world)
    push(client, token, existing)
    batch = [
        item(world),
        item(world, values={"overall_discourse": {"value": 42}}),
        existing,
        item(world, existing["id"], base=1, overall_notes="edited"),
        item(world, teacher_id=None, teacher_name="Visiting teacher"),
    ]
    results = push(client, token, *batch)
    assert [r["id"] for r in results] == [b["id"] for b in batch]
    assert [r["status"] for r in results] == [
        "created",
        "rejected",
        "duplicate",
        "updated",
        "created",
    ]
    assert _count(session, Observation) == 3


def test_same_id_twice_in_one_batch(client: TestClient, world: World, session: Session) -> None:
    token = login(client, world.observer)
    first = item(world)
    second = item(world, first["id"], base=1, overall_notes="second")
    results = push(client, token, first, first, second)
    assert [r["status"] for r in results] == ["created", "duplicate", "updated"]
    assert _count(session, Observation) == 1


def test_a_draft_push_never_unsubmits(client: TestClient, world: World, session: Session) -> None:
    token = login(client, world.observer)
    it = item(world)
    push(client, token, it)
    [result] = push(client, token, item(world, it["id"], base=1, status="draft", overall_notes="x"))
    assert result["status"] == "updated"
    obs = session.get(Observation, uuid.UUID(it["id"]))
    assert obs is not None and obs.status.value == "submitted"


def test_deleted_observation_is_rejected_with_a_reason(
    client: TestClient, world: World, session: Session, app
) -> None:  # type: ignore[no-untyped-def]
    token = login(client, world.observer)
    it = item(world)
    push(client, token, it)
    admin = TestClient(app, follow_redirects=False)
    atoken = login(admin, world.admin)
    admin.post(f"/observations/{it['id']}/delete", data={"csrf_token": atoken})
    [result] = push(client, token, item(world, it["id"], base=1, overall_notes="x"))
    assert result["status"] == "rejected"
    assert "deleted" in result["reason"]


def test_base_revision_ahead_of_the_server_is_rejected(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    it = item(world)
    push(client, token, it)
    [result] = push(client, token, item(world, it["id"], base=5, overall_notes="x"))
    assert result["status"] == "rejected"
    assert "only revision 1" in result["reason"]


def test_facilitators_do_not_record(client: TestClient, world: World) -> None:
    token = login(client, world.facilitator)
    [result] = push(client, token, item(world))
    assert result["status"] == "rejected"


def test_oversize_batch_is_refused_with_a_clear_error(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    items = [item(world) for _ in range(101)]
    response = client.post(
        "/api/sync/push", json={"device_id": "d", "items": items}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 413
    assert "at most 100 items" in response.json()["detail"]


def test_malformed_envelopes_are_4xx(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    headers = {"X-CSRF-Token": token, "content-type": "application/json"}
    assert client.post("/api/sync/push", content=b"{nope", headers=headers).status_code == 400
    assert client.post("/api/sync/push", json={"items": "x"}, headers=headers).status_code == 422
    assert client.post("/api/sync/push", json={"items": []}, headers=headers).status_code == 422
    assert client.post("/api/sync/push", json=[1, 2], headers=headers).status_code == 422
    ok = client.post("/api/sync/push", json={"device_id": "d", "items": []}, headers=headers)
    assert ok.json() == {"results": []}


def test_signed_out_push_is_401_and_stores_nothing(
    client: TestClient, world: World, session: Session
) -> None:
    response = client.post("/api/sync/push", json={"device_id": "d", "items": [item(world)]})
    assert response.status_code in (401, 403)
    token = login(client, world.observer)
    client.cookies.clear()
    response = client.post(
        "/api/sync/push",
        json={"device_id": "d", "items": [item(world)]},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code in (401, 403)
    assert _count(session, Observation) == 0


def test_push_needs_the_csrf_header(client: TestClient, world: World) -> None:
    login(client, world.observer)
    response = client.post("/api/sync/push", json={"device_id": "d", "items": [item(world)]})
    assert response.status_code == 403


def test_expired_session_answers_401_json(
    client: TestClient, world: World, session: Session
) -> None:
    from app.accounts import service as accounts

    token = login(client, world.observer)
    user = accounts.get_user(session=session, user_id=world.observer.id)  # type: ignore[arg-type]
    accounts.reset_password(session=session, user=user, password="another password 1")
    session.commit()
    response = client.post(
        "/api/sync/push",
        json={"device_id": "d", "items": [item(world)]},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "Please sign in"


def test_twenty_simultaneous_pushes_of_one_item_make_one_observation(
    client: TestClient,
    app,
    world: World,
    session: Session,  # type: ignore[no-untyped-def]
) -> None:
    token = login(client, world.observer)
    it = item(world)
    clients = []
    for _ in range(20):
        c = TestClient(app, follow_redirects=False)
        c.cookies.update(client.cookies)
        clients.append(c)
    barrier = threading.Barrier(len(clients))
    statuses: list[str] = []
    errors: list[BaseException] = []

    def send(c: TestClient) -> None:
        barrier.wait()
        try:
            r = c.post(
                "/api/sync/push",
                json={"device_id": "d", "items": [it]},
                headers={"X-CSRF-Token": token},
            )
            statuses.append(
                r.json()["results"][0]["status"] if r.status_code == 200 else str(r.status_code)
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(statuses) == ["created"] + ["duplicate"] * 19
    assert _count(session, Observation) == 1
    assert _count(session, ObservationRevision) == 1


def test_an_edit_after_a_lost_answer_is_the_same_device_continuing(
    client: TestClient, world: World, session: Session
) -> None:
    """The server stored revision 2 but the tablet never heard; the observer edits again and
    the tablet pushes from revision 1. Everything after revision 1 came from this tablet, so
    this is its own work continuing: an update, not a conflict."""
    token = login(client, world.observer)
    it = item(world, status="draft")
    push(client, token, it)
    push(client, token, item(world, it["id"], base=1, status="draft", overall_notes="second"))
    later = item(world, it["id"], base=1, status="draft", overall_notes="third")
    [result] = push(client, token, later)
    assert (result["status"], result["revision"]) == ("updated", 3)
    assert _count(session, ObservationConflict) == 0
    obs = session.get(Observation, uuid.UUID(it["id"]))
    assert obs is not None and (obs.overall_notes, obs.revision) == ("third", 3)
    [replay] = push(client, token, later)  # and its own retry is still a duplicate
    assert (replay["status"], replay["revision"]) == ("duplicate", 3)


def test_an_edit_from_elsewhere_in_between_is_still_a_conflict(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    it = item(world, status="draft")
    push(client, token, it)
    push(client, token, item(world, it["id"], base=1, status="draft", overall_notes="tablet"))
    push(
        client,
        token,
        item(world, it["id"], base=2, status="draft", overall_notes="laptop"),
        device="laptop",
    )
    [result] = push(client, token, item(world, it["id"], base=1, overall_notes="tablet again"))
    assert (result["status"], result["revision"]) == ("conflict", 3)
    obs = session.get(Observation, uuid.UUID(it["id"]))
    assert obs is not None and obs.overall_notes == "laptop"


def test_a_push_for_another_account_writes_nothing(
    client: TestClient, world: World, session: Session
) -> None:
    """A shared tablet whose sign-in changed between reading its outbox and pushing."""
    token = login(client, world.observer)
    assert world.observer.id is not None
    body = {"device_id": "tablet-1", "account_id": world.observer.id + 1, "items": [item(world)]}
    response = client.post("/api/sync/push", json=body, headers={"X-CSRF-Token": token})
    assert response.status_code == 409
    assert "another account" in response.json()["detail"]
    assert _count(session, Observation) == 0
    for wrong in ("1", True, 1.5):
        body["account_id"] = wrong
        response = client.post("/api/sync/push", json=body, headers={"X-CSRF-Token": token})
        assert response.status_code == 409
    body["account_id"] = world.observer.id
    response = client.post("/api/sync/push", json=body, headers={"X-CSRF-Token": token})
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "created"


def test_the_session_answer_documents_the_push_limits(client: TestClient, world: World) -> None:
    login(client, world.observer)
    answer = client.get("/api/session").json()
    assert answer["sync_limits"] == {"max_items": 100, "max_bytes": 5 * 1024 * 1024}
    assert answer["user"]["label"] == f"{world.observer.name} · {world.observer.role.label}"
    token = answer["csrf_token"]
    many = {"device_id": "tablet-1", "items": [item(world) for _ in range(101)]}
    response = client.post("/api/sync/push", json=many, headers={"X-CSRF-Token": token})
    assert response.status_code == 413
    assert response.json()["max_batch"] == 100
    assert response.json()["max_bytes"] == 5 * 1024 * 1024
