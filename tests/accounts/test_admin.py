"""Admin pages: create, deactivate and reset users; add schools; browse teachers."""

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts.models import Role, User
from tests.helpers import World, csrf_from, login


def test_admin_creates_a_user_who_can_sign_in(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post(
        "/admin/users",
        data={
            "name": "Nia Coach",
            "email": "Nia@Example.org",
            "role": "observer",
            "school_id": str(world.lincoln.id),
            "password": "a long enough password",
            "csrf_token": token,
        },
    )
    assert response.status_code == 200
    assert "Added Nia Coach" in response.text
    fresh = TestClient(client.app, follow_redirects=False)
    t2 = csrf_from(fresh)
    r = fresh.post(
        "/login",
        data={"email": "nia@example.org", "password": "a long enough password", "csrf_token": t2},
    )
    assert r.status_code == 303


def test_create_user_errors_are_shown_by_each_field_and_keep_the_input(
    client: TestClient, world: World
) -> None:
    token = login(client, world.admin)
    response = client.post(
        "/admin/users",
        data={
            "name": "",
            "email": world.observer.email,
            "role": "observer",
            "school_id": "",
            "password": "short",
            "csrf_token": token,
        },
    )
    assert response.status_code == 422
    text = response.text
    assert "A user with this email already exists." in text
    assert "Enter the person&#39;s name." in text
    assert "Observers and principals need a school." in text
    assert "Use at least 10 characters." in text
    assert f'value="{world.observer.email}"' in text


def test_unknown_role_is_a_field_error_not_a_crash(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post(
        "/admin/users",
        data={
            "name": "X",
            "email": "x@example.org",
            "role": "superuser",
            "csrf_token": token,
            "password": "0123456789ab",
        },
    )
    assert response.status_code == 422
    assert "Choose one of the listed roles." in response.text


def test_facilitator_has_no_school_even_if_one_is_sent(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.admin)
    client.post(
        "/admin/users",
        data={
            "name": "F2",
            "email": "f2@example.org",
            "role": "facilitator",
            "school_id": str(world.lincoln.id),
            "password": "0123456789ab",
            "csrf_token": token,
        },
    )
    user = session.exec(select(User).where(User.email == "f2@example.org")).one()
    assert user.role is Role.facilitator
    assert user.school_id is None


def test_admin_deactivates_and_reactivates_a_user(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.admin)
    response = client.post(
        f"/admin/users/{world.observer.id}/active", data={"active": "false", "csrf_token": token}
    )
    assert "Deactivated" in response.text
    session.rollback()  # end the read snapshot: see what the app committed
    session.expire_all()
    assert session.get(User, world.observer.id).active is False  # type: ignore[union-attr]
    client.post(
        f"/admin/users/{world.observer.id}/active", data={"active": "true", "csrf_token": token}
    )
    session.rollback()  # end the read snapshot: see what the app committed
    session.expire_all()
    assert session.get(User, world.observer.id).active is True  # type: ignore[union-attr]


def test_admin_cannot_deactivate_themself(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post(
        f"/admin/users/{world.admin.id}/active", data={"active": "false", "csrf_token": token}
    )
    assert response.status_code == 409
    assert "cannot deactivate your own account" in response.text


def test_admin_resets_a_password(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post(
        f"/admin/users/{world.observer.id}/password",
        data={"password": "fresh password 123", "csrf_token": token},
    )
    assert "New password set" in response.text
    other = TestClient(client.app, follow_redirects=False)
    login(other, world.observer, password="fresh password 123")


def test_short_reset_password_is_refused(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post(
        f"/admin/users/{world.observer.id}/password",
        data={"password": "short", "csrf_token": token},
    )
    assert response.status_code == 422
    assert "Use at least 10 characters." in response.text


def test_unknown_user_is_404(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post(
        "/admin/users/99999/active", data={"active": "false", "csrf_token": token}
    )
    assert response.status_code == 404


def test_duplicate_school_is_refused(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post(
        "/admin/schools", data={"name": "Lincoln Elementary", "csrf_token": token}
    )
    assert response.status_code == 422
    assert "already exists" in response.text


def test_teacher_search_returns_only_the_list_block_for_htmx(
    client: TestClient, world: World
) -> None:
    login(client, world.admin)
    response = client.get("/admin/teachers?q=garc", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Ana García" in response.text
    assert "<html" not in response.text
    assert "HX-Request" in response.headers["vary"]
    full = client.get("/admin/teachers?q=nobody")
    assert "<html" in full.text
    assert "No teachers match." in full.text


def test_teacher_filter_with_all_schools_selected_is_not_an_error(
    client: TestClient, world: World
) -> None:
    login(client, world.admin)
    response = client.get("/admin/teachers?q=&school_id=")
    assert response.status_code == 200
    assert "Ana García" in response.text
    only = client.get(f"/admin/teachers?school_id={world.roosevelt.id}")
    assert "Ana García" not in only.text
