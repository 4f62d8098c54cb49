"""GET /api/sync/pull: cursors, tombstones, roster and rubric changes, only your own data;
and resolving conflicts."""

import uuid

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.accounts import service as accounts
from app.observations.models import Observation
from tests.helpers import World, login
from tests.sync.conftest import item, push


def _pull(client: TestClient, since: int) -> dict:  # type: ignore[type-arg]
    response = client.get(f"/api/sync/pull?since={since}")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


def test_first_pull_has_rubrics_roster_and_own_observations(
    client: TestClient, world: World, app
) -> None:  # type: ignore[no-untyped-def]
    token = login(client, world.observer)
    mine = item(world)
    push(client, token, mine)
    other = TestClient(app, follow_redirects=False)
    push(other, login(other, world.principal), item(world))
    body = _pull(client, 0)
    assert [o["id"] for o in body["observations"]] == [mine["id"]]
    assert body["observations"][0]["payload"]["values"]["students_explaining"]["value"] == 4
    assert {(r["slug"], r["version"]) for r in body["rubric_versions"]} >= {
        ("discourse-walkthrough", 1)
    }
    assert body["more"] is False
    assert body["cursor"] > 0


def test_the_cursor_returns_only_what_changed(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    first = item(world)
    push(client, token, first)
    cursor = _pull(client, 0)["cursor"]
    empty = _pull(client, cursor)
    assert (empty["observations"], empty["roster"], empty["rubric_versions"]) == ([], [], [])
    assert empty["cursor"] == cursor
    push(client, token, item(world, first["id"], base=1, overall_notes="edited"))
    second = item(world)
    push(client, token, second)
    changed = _pull(client, cursor)
    assert sorted(o["id"] for o in changed["observations"]) == sorted([first["id"], second["id"]])
    edited = next(o for o in changed["observations"] if o["id"] == first["id"])
    assert edited["revision"] == 2


def test_tombstones_are_pulled(client: TestClient, world: World, app) -> None:  # type: ignore[no-untyped-def]
    token = login(client, world.observer)
    it = item(world)
    push(client, token, it)
    cursor = _pull(client, 0)["cursor"]
    admin = TestClient(app, follow_redirects=False)
    admin.post(f"/observations/{it['id']}/delete", data={"csrf_token": login(admin, world.admin)})
    changed = _pull(client, cursor)
    assert changed["observations"] == [{"id": it["id"], "deleted": True, "revision": 1}]


def test_roster_changes_of_my_school_are_pulled(
    client: TestClient, world: World, session: Session
) -> None:
    login(client, world.observer)
    cursor = _pull(client, 0)["cursor"]
    report = accounts.import_roster(
        session=session,
        data=(
            b"school,teacher,district_id\n"
            b"Lincoln Elementary,New Teacher,T77\nRoosevelt Middle,Far Away,T78\n"
        ),
    )
    assert report.ok
    session.commit()
    roster = _pull(client, cursor)["roster"]
    assert [t["name"] for t in roster] == ["New Teacher"]


def test_bad_cursor_is_422_and_signed_out_is_401(client: TestClient, world: World) -> None:
    assert client.get("/api/sync/pull").status_code == 401
    login(client, world.observer)
    assert client.get("/api/sync/pull?since=-1").status_code == 422
    assert client.get("/api/sync/pull?since=abc").status_code == 422


def test_ping_and_session_are_not_cached(client: TestClient, world: World) -> None:
    ping = client.get("/api/ping")
    assert ping.json() == {"ok": True} and ping.headers["cache-control"] == "no-store"
    assert client.get("/api/session").json()["user"] is None
    login(client, world.observer)
    info = client.get("/api/session").json()
    assert info["user"]["role"] == "observer"
    assert len(info["csrf_token"]) > 20


def _make_conflict(client: TestClient, world: World, token: str) -> str:
    it = item(world)
    push(client, token, it)
    push(client, token, item(world, it["id"], base=1, overall_notes="server side"), device="laptop")
    [result] = push(client, token, item(world, it["id"], base=1, overall_notes="device side"))
    assert result["status"] == "conflict"
    return str(it["id"])


def test_open_conflicts_are_listed_in_pull_and_on_a_page(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    obs_id = _make_conflict(client, world, token)
    assert [c["observation_id"] for c in _pull(client, 0)["open_conflicts"]] == [obs_id]
    assert "Compare and choose" in client.get(f"/observations/{obs_id}").text
    page = client.get(f"/observations/{obs_id}/conflicts")
    assert page.status_code == 200
    assert "server side" in page.text and "device side" in page.text


def test_choosing_the_device_version_applies_it_as_a_new_revision(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    obs_id = _make_conflict(client, world, token)
    page = client.get(f"/observations/{obs_id}/conflicts").text
    conflict_id = page.split(f"/observations/{obs_id}/conflicts/", 1)[1].split('"', 1)[0]
    response = client.post(
        f"/observations/{obs_id}/conflicts/{conflict_id}",
        data={"csrf_token": token, "keep": "device"},
    )
    assert response.status_code == 303
    obs = session.get(Observation, uuid.UUID(obs_id))
    assert obs is not None and obs.overall_notes == "device side" and obs.revision == 3
    assert "No conflicts left" in client.get(f"/observations/{obs_id}/conflicts").text
    assert _pull(client, 0)["open_conflicts"] == []


def test_keeping_the_server_version_changes_nothing_but_resolves(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    obs_id = _make_conflict(client, world, token)
    page = client.get(f"/observations/{obs_id}/conflicts").text
    conflict_id = page.split(f"/observations/{obs_id}/conflicts/", 1)[1].split('"', 1)[0]
    client.post(
        f"/observations/{obs_id}/conflicts/{conflict_id}",
        data={"csrf_token": token, "keep": "server"},
    )
    obs = session.get(Observation, uuid.UUID(obs_id))
    assert obs is not None and obs.overall_notes == "server side" and obs.revision == 2
    again = client.post(
        f"/observations/{obs_id}/conflicts/{conflict_id}",
        data={"csrf_token": token, "keep": "device"},
    )
    assert again.status_code == 404


def test_only_the_author_sees_conflicts(client: TestClient, world: World, app) -> None:  # type: ignore[no-untyped-def]
    token = login(client, world.observer)
    obs_id = _make_conflict(client, world, token)
    principal = TestClient(app, follow_redirects=False)
    login(principal, world.principal)
    assert principal.get(f"/observations/{obs_id}/conflicts").status_code == 403


def test_openapi_documents_the_push_item_schema(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"PushItem", "ObservationPayload", "ItemValue", "TimedNote"} <= set(schemas)
    assert "/api/sync/push" in spec["paths"] and "/api/sync/pull" in spec["paths"]
