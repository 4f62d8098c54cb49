"""Who sees and changes which observation: role scoping, author-only amends, tombstones."""

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.accounts.models import Role, Teacher
from app.observations.models import Observation
from tests.helpers import World, login, make_observation


@pytest.fixture
def data(ready: World, session: Session) -> dict[str, Observation]:
    """One observation by the Lincoln observer, one by the Lincoln principal, one at Roosevelt."""
    w = ready
    assert w.roosevelt.id is not None
    rt = Teacher(name="Rosa Park", school_id=w.roosevelt.id)
    session.add(rt)
    session.commit()
    return {
        "observer": make_observation(session, w.observer, teacher=w.teacher),
        "principal": make_observation(session, w.principal, teacher=w.teacher),
        "roosevelt": make_observation(session, w.other_principal, teacher=rt),
        "admin_draft": make_observation(
            session, w.admin, teacher_name="Visitor", school_id=w.roosevelt.id, status="draft"
        ),
    }


def _listed(client: TestClient) -> str:
    return client.get("/observations").text


def _ids_listed(client: TestClient, data: dict[str, Observation]) -> set[str]:
    text = _listed(client)
    return {name for name, obs in data.items() if str(obs.id) in text}


def test_observer_sees_only_their_own(
    client: TestClient, world: World, data: dict[str, Observation]
) -> None:
    login(client, world.observer)
    assert _ids_listed(client, data) == {"observer"}
    assert client.get(f"/observations/{data['principal'].id}").status_code == 404
    assert client.get(f"/observations/{data['observer'].id}").status_code == 200


def test_principal_sees_their_school(
    client: TestClient, world: World, data: dict[str, Observation]
) -> None:
    login(client, world.principal)
    assert _ids_listed(client, data) == {"observer", "principal"}
    assert client.get(f"/observations/{data['observer'].id}").status_code == 200


def test_principal_of_another_school_gets_404_not_the_record(
    client: TestClient, world: World, data: dict[str, Observation]
) -> None:
    login(client, world.other_principal)
    assert _ids_listed(client, data) == {"roosevelt"}
    for name in ("observer", "principal"):
        response = client.get(f"/observations/{data[name].id}")
        assert response.status_code == 404
        assert "Ana García" not in response.text
        assert client.get(f"/observations/{data[name].id}/history").status_code == 404


def test_facilitator_sees_every_submitted_observation(
    client: TestClient, world: World, data: dict[str, Observation]
) -> None:
    login(client, world.facilitator)
    assert _ids_listed(client, data) == {"observer", "principal", "roosevelt"}
    assert client.get(f"/observations/{data['admin_draft'].id}").status_code == 404


def test_admin_sees_all_including_drafts(
    client: TestClient, world: World, data: dict[str, Observation]
) -> None:
    login(client, world.admin)
    assert _ids_listed(client, data) == set(data)


def test_others_drafts_stay_private_to_their_author(
    client: TestClient, world: World, session: Session, data: dict[str, Observation]
) -> None:
    draft = make_observation(session, world.observer, teacher=world.teacher, status="draft")
    login(client, world.principal)
    assert client.get(f"/observations/{draft.id}").status_code == 404
    assert str(draft.id) not in _listed(client)


def test_only_the_author_may_amend(
    client: TestClient, world: World, data: dict[str, Observation]
) -> None:
    token = login(client, world.principal)
    obs = data["observer"]
    assert client.get(f"/observations/{obs.id}/edit").status_code == 403
    response = client.post(f"/observations/{obs.id}", data={"csrf_token": token, "action": "draft"})
    assert response.status_code == 403
    assert (
        client.post(
            f"/observations/{obs.id}/submit", data={"csrf_token": token, "revision": "1"}
        ).status_code
        == 403
    )
    assert "Amend" not in client.get(f"/observations/{obs.id}").text


def test_facilitator_cannot_start_observations(client: TestClient, world: World) -> None:
    token = login(client, world.facilitator)
    assert client.get("/observations/new").status_code == 403
    assert client.post("/observations", data={"csrf_token": token}).status_code == 403


@pytest.mark.parametrize("role", ["observer", "principal", "admin"])
def test_recording_roles_can_start(client: TestClient, world: World, role: str) -> None:
    login(client, getattr(world, role))
    assert client.get("/observations/new").status_code == 200


def test_observer_cannot_record_at_another_school(
    client: TestClient, world: World, session: Session, data: dict[str, Observation]
) -> None:
    token = login(client, world.observer)
    page = client.get("/observations/new")
    assert "Rosa Park" not in page.text  # the roster offered is their school's
    response = client.post(
        "/observations",
        data={
            "csrf_token": token,
            "id": "4f1c1f6e-8f4e-4a55-9a0b-2b1f0b7f0c11",
            "teacher": "Someone",
            "school_id": str(world.roosevelt.id),
            "rubric": "discourse-walkthrough:1",
            "observed_at": "2026-11-22T09:30",
        },
    )
    assert response.status_code == 422
    assert "Choose the school you observed in." in response.text


def test_admin_deletes_to_a_tombstone_and_restores(
    client: TestClient, world: World, data: dict[str, Observation], session: Session
) -> None:
    obs = data["observer"]
    token = login(client, world.admin)
    assert (
        client.post(f"/observations/{obs.id}/delete", data={"csrf_token": token}).status_code == 303
    )
    session.rollback()  # end the read snapshot: see what the app committed
    session.expire_all()
    assert session.get(Observation, obs.id).deleted_at is not None  # type: ignore[union-attr]
    assert str(obs.id) not in _listed(client)
    assert str(obs.id) in client.get("/observations?deleted=1").text
    assert "Deleted" in client.get(f"/observations/{obs.id}").text

    other = TestClient(client.app, follow_redirects=False)
    login(other, world.observer)
    assert str(obs.id) not in _listed(other)
    assert other.get(f"/observations/{obs.id}").status_code == 404

    client.post(f"/observations/{obs.id}/restore", data={"csrf_token": token})
    assert str(obs.id) in _listed(client)
    assert str(obs.id) in _listed(other)


@pytest.mark.parametrize("role", ["observer", "principal", "facilitator"])
def test_only_admins_delete(
    client: TestClient, world: World, data: dict[str, Observation], role: str
) -> None:
    token = login(client, getattr(world, role))
    obs = data["observer"]
    assert client.post(
        f"/observations/{obs.id}/delete", data={"csrf_token": token}
    ).status_code in (403, 404)
    assert client.post(
        f"/observations/{obs.id}/restore", data={"csrf_token": token}
    ).status_code in (403, 404)


def test_list_filters(client: TestClient, world: World, data: dict[str, Observation]) -> None:
    login(client, world.admin)
    by_school = client.get(f"/observations?school_id={world.roosevelt.id}").text
    assert str(data["roosevelt"].id) in by_school and str(data["observer"].id) not in by_school
    drafts = client.get("/observations?status=draft").text
    assert str(data["admin_draft"].id) in drafts and str(data["observer"].id) not in drafts
    mine = client.get(f"/observations?observer_id={world.principal.id}").text
    assert str(data["principal"].id) in mine and str(data["observer"].id) not in mine
    early = client.get("/observations?from=2026-11-03").text
    assert "0 observations" in early
    dated = client.get("/observations?from=2026-11-02&to=2026-11-02").text
    assert "4 observations" in dated
    bad = client.get("/observations?from=yesterday&school_id=abc")
    assert bad.status_code == 200
    assert "Use a date like" in bad.text
    fragment = client.get("/observations?status=draft", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "1 observation" in fragment.text


def test_teacher_page_is_scoped(
    client: TestClient, world: World, data: dict[str, Observation]
) -> None:
    login(client, world.principal)
    page = client.get(f"/teachers/{world.teacher.id}")
    assert page.status_code == 200
    assert str(data["observer"].id) in page.text
    other = TestClient(client.app, follow_redirects=False)
    login(other, world.other_principal)
    assert other.get(f"/teachers/{world.teacher.id}").status_code == 404
    assert client.get("/teachers/99999").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(
    client: TestClient, data: dict[str, Observation]
) -> None:
    for path in (
        "/observations",
        "/observations/new",
        f"/observations/{data['observer'].id}",
        "/dashboard",
        f"/teachers/{data['observer'].teacher_id}",
    ):
        assert client.get(path).status_code == 303, path


def test_malformed_ids_are_422_not_500(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    assert client.get("/observations/not-a-uuid").status_code == 422
    assert client.post("/observations/not-a-uuid", data={"csrf_token": token}).status_code == 422
    assert client.get("/observations/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client.get("/teachers/abc").status_code == 422


def test_role_values_are_enumerated() -> None:
    assert {r.value for r in Role} == {"observer", "principal", "facilitator", "admin"}
