"""Malformed requests get clear 4xx answers, never a 500; error pages use the layout."""

from fastapi.testclient import TestClient

from tests.helpers import World, login


def test_unknown_page_is_a_404_in_the_layout(client: TestClient, world: World) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "<html" in response.text
    assert "There is nothing at this address." in response.text


def test_malformed_requests_never_500(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    cases = [
        client.post("/admin/users/not-a-number/active", data={"active": "x", "csrf_token": token}),
        client.post(
            f"/admin/users/{world.observer.id}/active",
            data={"active": "maybe", "csrf_token": token},
        ),
        client.post("/admin/users", data={"email": "x" * 5000, "csrf_token": token}),
        client.post(
            "/admin/roster",
            data={"csrf_token": token},
            files={"file": ("x.csv", b"\x00\xff\xfe", "text/csv")},
        ),
        client.post(
            "/admin/schools",
            content=b"\xff\xfe garbage",
            headers={"content-type": "application/x-www-form-urlencoded", "x-csrf-token": token},
        ),
        client.get("/admin/users/1/active"),
        client.put("/admin/users", headers={"x-csrf-token": token}),
        client.post("/login", content=b"{not json", headers={"content-type": "application/json"}),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code)


def test_validation_error_json_names_the_field(client: TestClient, world: World) -> None:
    token = login(client, world.admin)
    response = client.post(
        f"/admin/users/{world.observer.id}/active",
        data={"active": "maybe", "csrf_token": token},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "active"


def test_responses_carry_security_headers(client: TestClient) -> None:
    response = client.get("/login")
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_unexpected_errors_render_a_500_page_without_details(app, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    @app.get("/boom-for-test")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = TestClient(app, raise_server_exceptions=False).get("/boom-for-test")
    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert "Something went wrong on our side" in response.text
