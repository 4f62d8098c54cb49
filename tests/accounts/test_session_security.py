"""Signing out ends the session on the server, a bogus bearer header never switches CSRF off,
forwarded addresses are believed only from configured proxies, and personnel data is never
cached."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts import service as accounts
from app.accounts.models import UserSession
from app.config import ConfigError, Settings
from tests.helpers import World, csrf_from, login
from tests.sync.conftest import item


def test_sign_out_ends_the_session_for_a_copied_cookie(
    app: FastAPI, ready: World, session: Session
) -> None:
    browser = TestClient(app, follow_redirects=False)
    token = login(browser, ready.observer)
    copied = dict(browser.cookies)
    thief = TestClient(app, follow_redirects=False, cookies=copied)
    assert thief.get("/observations").status_code == 200
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 303
    response = thief.get("/observations")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert thief.get("/api/sync/pull").status_code == 401
    session.rollback()
    assert session.exec(select(UserSession)).all() == []


def test_each_sign_in_is_its_own_session(app: FastAPI, ready: World) -> None:
    tablet, laptop = (TestClient(app, follow_redirects=False) for _ in range(2))
    tablet_token = login(tablet, ready.observer)
    login(laptop, ready.observer)
    tablet.post("/logout", data={"csrf_token": tablet_token})
    assert laptop.get("/api/sync/pull").status_code == 200


def test_an_invalid_bearer_header_does_not_skip_csrf(
    app: FastAPI, ready: World, session: Session
) -> None:
    client = TestClient(app, follow_redirects=False)
    login(client, ready.observer)
    bogus = {"Authorization": "Bearer wt_not-a-real-token"}
    response = client.post(
        "/api/sync/push", json={"device_id": "d", "items": [item(ready)]}, headers=bogus
    )
    assert response.status_code == 403
    response = client.post("/account/tokens", data={"name": "x"}, headers=bogus)
    assert response.status_code == 403
    anonymous = TestClient(app, follow_redirects=False)
    csrf_from(anonymous)
    response = anonymous.post(
        "/login",
        data={"email": ready.observer.email, "password": "x"},
        headers=bogus,
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert anonymous.get("/api/session").json()["user"] is None  # nobody was signed in
    script = anonymous.post("/api/sync/push", json={"device_id": "d", "items": []}, headers=bogus)
    assert script.status_code == 401  # a script with a dead token is told to re-authenticate
    assert "token is not valid" in script.json()["detail"]


def test_a_live_bearer_token_still_needs_no_csrf(
    app: FastAPI, ready: World, session: Session
) -> None:
    raw, _ = accounts.create_token(session=session, user=ready.observer, name="script")
    session.commit()
    script = TestClient(app)
    response = script.post(
        "/api/sync/push",
        json={"device_id": "d", "items": [item(ready)]},
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "created"


def test_wildcard_trusted_proxies_are_refused() -> None:
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        Settings(trusted_proxies="*")


def test_serve_believes_forwarded_headers_only_from_trusted_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    from app import cli
    from app.config import get_settings

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setenv("WALKTHROUGH_TRUSTED_PROXIES", "10.1.2.3,10.9.0.0/16")
    get_settings.cache_clear()
    try:
        assert cli.main(["serve", "--port", "8123"]) == 0
    finally:
        get_settings.cache_clear()
    assert seen["proxy_headers"] is True
    assert seen["forwarded_allow_ips"] == "10.1.2.3,10.9.0.0/16"


def test_the_container_never_trusts_every_forwarder() -> None:
    from pathlib import Path

    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert "forwarded-allow-ips" not in dockerfile
    assert "walkthrough serve" in dockerfile


def test_personnel_data_is_never_cached(app: FastAPI, ready: World, session: Session) -> None:
    client = TestClient(app, follow_redirects=False)
    login(client, ready.admin)
    for path in (
        "/",
        "/observations",
        "/dashboard",
        "/admin/teachers",
        "/exports/download?dataset=observations_long",
        "/api/exports/observations.csv",
        "/api/sync/pull",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-store", path
    assert "no-store" not in client.get("/static/app.css").headers.get("cache-control", "")
