"""Personal API tokens: shown once, stored hashed, bearer auth without CSRF, revocable."""

import re

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts.models import ApiToken
from tests.helpers import World, login
from tests.sync.conftest import item


def _create(client: TestClient, token: str, name: str = "R report") -> str:
    page = client.post("/account/tokens", data={"csrf_token": token, "name": name})
    assert page.status_code == 200
    raw = re.search(r"data-new-token>(wt_[^<]+)<", page.text)
    assert raw, page.text
    return raw.group(1)


def test_token_is_shown_once_and_stored_only_as_a_hash(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    raw = _create(client, token)
    stored = session.exec(select(ApiToken)).one()
    assert raw not in stored.token_hash and len(stored.token_hash) == 64
    assert raw.startswith(stored.prefix)
    listing = client.get("/account/tokens").text
    assert raw not in listing and stored.prefix in listing


def test_bearer_token_pushes_without_a_cookie_or_csrf(
    client: TestClient, world: World, app, session: Session
) -> None:  # type: ignore[no-untyped-def]
    raw = _create(client, login(client, world.observer))
    script = TestClient(app)
    response = script.post(
        "/api/sync/push",
        json={"device_id": "script", "items": [item(world)]},
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "created"
    assert (
        script.get("/api/sync/pull", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    )
    session.rollback()
    assert session.exec(select(ApiToken)).one().last_used_at is not None


def test_revoked_and_unknown_tokens_are_refused(
    client: TestClient, world: World, app, session: Session
) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, world.observer)
    raw = _create(client, csrf)
    token_id = session.exec(select(ApiToken)).one().id
    assert (
        client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code
        == 303
    )
    script = TestClient(app)
    for bearer in (raw, "wt_not-a-real-token", "garbage"):
        response = script.get("/api/sync/pull", headers={"Authorization": f"Bearer {bearer}"})
        assert response.status_code == 401, bearer
    assert "Revoked" in client.get("/account/tokens").text


def test_tokens_of_deactivated_users_stop_working(
    client: TestClient, world: World, app, session: Session
) -> None:  # type: ignore[no-untyped-def]
    from app.accounts import service

    raw = _create(client, login(client, world.observer))
    user = service.get_user(session=session, user_id=world.observer.id)  # type: ignore[arg-type]
    service.set_active(session=session, admin=world.admin, user=user, active=False)
    session.commit()
    response = TestClient(app).get("/api/sync/pull", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401


def test_a_user_cannot_revoke_someone_elses_token(
    client: TestClient, world: World, app, session: Session
) -> None:  # type: ignore[no-untyped-def]
    _create(client, login(client, world.observer))
    token_id = session.exec(select(ApiToken)).one().id
    other = TestClient(app, follow_redirects=False)
    csrf = login(other, world.principal)
    assert (
        other.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code
        == 404
    )


def test_token_needs_a_name(client: TestClient, world: World) -> None:
    csrf = login(client, world.observer)
    response = client.post("/account/tokens", data={"csrf_token": csrf, "name": "  "})
    assert response.status_code == 422
    assert "Name the token" in response.text


def test_token_pages_need_sign_in(client: TestClient, world: World) -> None:
    assert client.get("/account/tokens").status_code == 303
