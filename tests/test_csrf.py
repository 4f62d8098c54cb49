"""CSRF protection on every state-changing form and htmx request."""

from fastapi.testclient import TestClient

from tests.helpers import World, login


def test_post_without_token_is_refused(client: TestClient, world: World) -> None:
    login(client, world.admin)
    response = client.post("/admin/schools", data={"name": "Sneaky School"})
    assert response.status_code == 403
    assert "did not come from Walkthrough" in response.text
    assert "Sneaky School" not in client.get("/admin/schools").text


def test_post_with_wrong_token_is_refused(client: TestClient, world: World) -> None:
    login(client, world.admin)
    response = client.post("/admin/schools", data={"name": "Sneaky", "csrf_token": "forged"})
    assert response.status_code == 403


def test_post_with_token_from_another_session_is_refused(
    client: TestClient,
    app,
    world: World,  # type: ignore[no-untyped-def]
) -> None:
    other = TestClient(app, follow_redirects=False)
    other_token = login(other, world.observer)
    login(client, world.admin)
    response = client.post("/admin/schools", data={"name": "Sneaky", "csrf_token": other_token})
    assert response.status_code == 403


def test_form_field_token_is_accepted(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post("/admin/schools", data={"name": "Garfield High", "csrf_token": token})
    assert response.status_code == 200
    assert "Added Garfield High" in response.text


def test_htmx_header_token_is_accepted(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post(
        "/admin/schools",
        data={"name": "Garfield High"},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert response.status_code == 200


def test_htmx_request_without_token_gets_a_message_fragment(
    client: TestClient, world: World
) -> None:
    login(client, world.admin)
    response = client.post("/admin/schools", data={"name": "X"}, headers={"HX-Request": "true"})
    assert response.status_code == 403
    assert response.headers["hx-retarget"] == "#messages"
    assert response.text.lstrip().startswith('<div class="message error"')
    assert "<html" not in response.text


def test_login_form_itself_needs_a_token(client: TestClient, world: World) -> None:
    response = client.post(
        "/login", data={"email": world.admin.email, "password": "correct horse battery"}
    )
    assert response.status_code == 403


def test_logout_needs_a_token(client: TestClient, world: World) -> None:
    login(client, world.admin)
    assert client.post("/logout").status_code == 403
    assert client.get("/").status_code == 200
