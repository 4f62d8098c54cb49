"""Each role reaches exactly its pages: one test per role per route group."""

import pytest
from fastapi.testclient import TestClient

from tests.helpers import World, login

ADMIN_PAGES = [
    "/admin/users",
    "/admin/schools",
    "/admin/teachers",
    "/admin/roster",
    "/admin/roster/template.csv",
]
ADMIN_POSTS = [
    ("/admin/users", {"name": "X", "email": "x@example.org", "role": "observer"}),
    ("/admin/schools", {"name": "New School"}),
    ("/admin/users/1/active", {"active": "false"}),
    ("/admin/users/1/password", {"password": "0123456789abc"}),
]
SIGNED_IN_PAGES = ["/"]


def _as(client: TestClient, world: World, role: str) -> str:
    return login(client, getattr(world, role))


@pytest.mark.parametrize("role", ["observer", "principal", "facilitator"])
def test_non_admins_get_403_on_admin_pages(client: TestClient, world: World, role: str) -> None:
    _as(client, world, role)
    for path in ADMIN_PAGES:
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Your role does not give access" in response.text


@pytest.mark.parametrize("role", ["observer", "principal", "facilitator"])
def test_non_admins_cannot_post_to_admin_routes(
    client: TestClient, world: World, role: str
) -> None:
    token = _as(client, world, role)
    for path, data in ADMIN_POSTS:
        response = client.post(path, data={**data, "csrf_token": token})
        assert response.status_code == 403, path


def test_admin_reaches_every_admin_page(client: TestClient, world: World) -> None:
    _as(client, world, "admin")
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 200, path


def test_anonymous_is_sent_to_sign_in_from_every_page(client: TestClient, world: World) -> None:
    for path in ADMIN_PAGES + SIGNED_IN_PAGES:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")


def test_anonymous_posts_are_refused(client: TestClient, world: World) -> None:
    from tests.helpers import csrf_from

    token = csrf_from(client)
    for path, data in ADMIN_POSTS:
        response = client.post(path, data={**data, "csrf_token": token})
        assert response.status_code == 303, path


@pytest.mark.parametrize("role", ["observer", "principal", "facilitator", "admin"])
def test_every_role_reaches_home_with_its_own_navigation(
    client: TestClient, world: World, role: str
) -> None:
    _as(client, world, role)
    response = client.get("/")
    assert response.status_code == 200
    assert ('href="/admin/users"' in response.text) == (role == "admin")


def test_principal_home_names_their_school(client: TestClient, world: World) -> None:
    _as(client, world, "principal")
    assert "Lincoln Elementary" in client.get("/").text


def test_api_paths_answer_401_json_when_signed_out(client: TestClient, world: World) -> None:
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "Not found"
