"""Accounts an admin can run: edit a user's role, school and e-mail; the district always keeps
an active admin; everyone changes their own password; one teacher added or edited by hand."""

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts.models import Role, Teacher, User
from tests.helpers import PASSWORD, World, csrf_from, login


def _user(client: TestClient, user_id: int | None) -> User:
    with Session(client.app.state.engine) as fresh:  # type: ignore[attr-defined]
        found = fresh.get(User, user_id)
        assert found is not None
        return found


def test_admin_changes_a_users_role_school_and_email(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.admin)
    page = client.get(f"/admin/users/{world.observer.id}")
    assert page.status_code == 200 and 'value="observer@example.org"' in page.text
    saved = client.post(
        f"/admin/users/{world.observer.id}",
        data={
            "csrf_token": token,
            "name": "Obi Server",
            "email": "Obi@Example.org",
            "role": "principal",
            "school_id": str(world.roosevelt.id),
        },
    )
    assert saved.status_code == 200 and "Saved Obi Server (Principal)." in saved.text
    user = _user(client, world.observer.id)
    assert (user.email, user.role, user.school_id) == (
        "obi@example.org",
        Role.principal,
        world.roosevelt.id,
    )
    # A facilitator has no school: one sent is dropped.
    client.post(
        f"/admin/users/{world.observer.id}",
        data={
            "csrf_token": token,
            "name": "Obi Server",
            "email": "obi@example.org",
            "role": "facilitator",
            "school_id": str(world.lincoln.id),
        },
    )
    assert _user(client, world.observer.id).school_id is None


def test_user_edit_errors_are_shown_by_each_field_and_keep_the_input(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.admin)
    response = client.post(
        f"/admin/users/{world.observer.id}",
        data={
            "csrf_token": token,
            "name": "",
            "email": world.principal.email,
            "role": "observer",
            "school_id": "",
        },
    )
    assert response.status_code == 422
    text = response.text
    assert 'id="name-error">Enter the person&#39;s name.' in text
    assert 'id="email-error">Another user has this email.' in text
    assert 'id="school_id-error">Observers and principals need a school.' in text
    assert f'value="{world.principal.email}"' in text  # what was typed comes back
    assert _user(client, world.observer.id).name == "Observer Person"
    assert (
        client.post("/admin/users/999999", data={"csrf_token": token, "name": "x"}).status_code
        == 404
    )


def test_the_district_keeps_an_active_admin(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.admin)
    demote = client.post(
        f"/admin/users/{world.admin.id}",
        data={
            "csrf_token": token,
            "name": "Admin Person",
            "email": world.admin.email,
            "role": "facilitator",
        },
    )
    assert demote.status_code == 422 and "only active admin" in demote.text
    own = client.post(
        f"/admin/users/{world.admin.id}/active", data={"csrf_token": token, "active": "false"}
    )
    assert own.status_code == 409 and "cannot deactivate your own account" in own.text
    # With a second admin, the first may step down; the last one left may not be deactivated.
    second = world.user(Role.admin, email="admin2@example.org")
    session.commit()
    ok = client.post(
        f"/admin/users/{world.admin.id}",
        data={
            "csrf_token": token,
            "name": "Admin Person",
            "email": world.admin.email,
            "role": "facilitator",
        },
    )
    assert ok.status_code == 200
    other = TestClient(client.app, follow_redirects=False)
    token2 = login(other, second)
    last = other.post(
        f"/admin/users/{second.id}/active", data={"csrf_token": token2, "active": "false"}
    )
    assert last.status_code == 409
    # The demoted admin's next page follows their new role.
    assert client.get("/admin/users").status_code == 403


@pytest.mark.parametrize("role", ["observer", "principal", "facilitator"])
def test_only_admins_edit_users_and_teachers(client: TestClient, world: World, role: str) -> None:
    token = login(client, getattr(world, role))
    assert client.get(f"/admin/users/{world.observer.id}").status_code == 403
    assert (
        client.post(
            f"/admin/users/{world.observer.id}", data={"csrf_token": token, "role": "admin"}
        ).status_code
        == 403
    )
    assert client.get("/admin/teachers/new").status_code == 403
    assert (
        client.post("/admin/teachers", data={"csrf_token": token, "name": "X"}).status_code == 403
    )
    assert (
        client.post(
            f"/admin/teachers/{world.teacher.id}", data={"csrf_token": token, "name": "X"}
        ).status_code
        == 403
    )


def test_everyone_changes_their_own_password_with_the_current_one(
    client: TestClient, world: World, app
) -> None:  # type: ignore[no-untyped-def]
    elsewhere = TestClient(app, follow_redirects=False)
    login(elsewhere, world.observer)  # the same person on another device
    token = login(client, world.observer)
    assert client.get("/account/password").status_code == 200
    wrong = client.post(
        "/account/password", data={"csrf_token": token, "current": "nope", "new": "short"}
    )
    assert wrong.status_code == 422
    assert 'id="current-error">That is not your current password.' in wrong.text
    assert 'id="new-error">Use at least 10 characters.' in wrong.text
    done = client.post(
        "/account/password",
        data={"csrf_token": token, "current": PASSWORD, "new": "a brand new passphrase"},
    )
    assert done.status_code == 200 and "data-password-changed" in done.text
    assert client.get("/").status_code == 200  # this browser stays signed in
    assert elsewhere.get("/").status_code == 303  # the other device is signed out
    fresh = TestClient(app, follow_redirects=False)
    login(fresh, world.observer, password="a brand new passphrase")
    assert TestClient(app, follow_redirects=False).get("/account/password").status_code == 303
    assert client.post("/account/password", data={"current": "x"}).status_code == 403  # no CSRF


def test_admin_adds_and_edits_one_teacher_and_devices_hear_of_it(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.admin)
    before = max(t.change_seq for t in session.exec(select(Teacher)))
    added = client.post(
        "/admin/teachers",
        data={
            "csrf_token": token,
            "name": "  Rosa   Díaz ",
            "school_id": str(world.lincoln.id),
            "grades": "3-5",
            "district_id": "T-100",
        },
    )
    assert added.status_code == 303
    session.rollback()
    rosa = session.exec(select(Teacher).where(Teacher.name == "Rosa Díaz")).one()
    assert (rosa.grades, rosa.district_id, rosa.active) == ("3,4,5", "T-100", True)
    assert rosa.change_seq > before  # a device's next pull brings the new teacher
    edited = client.post(
        f"/admin/teachers/{rosa.id}",
        data={
            "csrf_token": token,
            "name": "Rosa Díaz",
            "school_id": str(world.roosevelt.id),
            "grades": "K",
            "district_id": "T-100",  # her own id, kept
            "active": "false",
        },
    )
    assert edited.status_code == 303
    session.rollback()
    rosa = session.get(Teacher, rosa.id)  # type: ignore[assignment]
    assert (rosa.school_id, rosa.grades, rosa.active) == (world.roosevelt.id, "K", False)
    page = client.get("/admin/teachers?q=rosa").text
    assert re.search(r"Rosa Díaz</a> <span class=\"hint\">\(off the roster\)", page)


def test_teacher_form_errors_name_the_field(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.admin)
    session.add(Teacher(name="Taken", school_id=world.lincoln.id, district_id="T-1"))  # type: ignore[arg-type]
    session.commit()
    response = client.post(
        "/admin/teachers",
        data={
            "csrf_token": token,
            "name": " ",
            "school_id": "999",
            "grades": "14",
            "district_id": "T-1",
        },
    )
    assert response.status_code == 422
    text = response.text
    assert 'id="name-error">Enter the teacher&#39;s name.' in text
    assert 'id="school_id-error">Choose one of the listed schools.' in text
    assert "&#39;14&#39; is not a grade" in text
    assert 'id="district_id-error">Taken already has this staff id.' in text
    assert client.get("/admin/teachers/999999").status_code == 404
    assert csrf_from(client, "/admin/teachers/new")
