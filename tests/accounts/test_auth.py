"""Sign-in, sign-out, throttling, session cookies and session invalidation."""

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.accounts import service
from tests.helpers import PASSWORD, World, csrf_from, login


def test_login_with_right_password_reaches_home(client: TestClient, world: World) -> None:
    login(client, world.observer)
    response = client.get("/")
    assert response.status_code == 200
    assert "Observer Person" in response.text


def test_login_with_wrong_password_is_refused_with_a_message(
    client: TestClient, world: World
) -> None:
    token = csrf_from(client)
    response = client.post(
        "/login", data={"email": world.observer.email, "password": "nope", "csrf_token": token}
    )
    assert response.status_code == 401
    assert "do not match an active account" in response.text
    assert client.get("/").status_code == 303


def test_login_email_is_case_insensitive(client: TestClient, world: World) -> None:
    token = csrf_from(client)
    response = client.post(
        "/login",
        data={"email": "  OBSERVER@Example.org ", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 303


def test_unauthenticated_page_redirects_to_login_with_next(
    client: TestClient, world: World
) -> None:
    response = client.get("/admin/users?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin/users%3Fx%3D1"


def test_login_follows_next_but_never_off_site(client: TestClient, world: World) -> None:
    token = csrf_from(client)
    data = {"email": world.admin.email, "password": PASSWORD, "csrf_token": token}
    response = client.post("/login", data={**data, "next": "/admin/users"})
    assert response.headers["location"] == "/admin/users"
    client.cookies.clear()
    token = csrf_from(client)
    response = client.post(
        "/login", data={**data, "csrf_token": token, "next": "//evil.example/steal"}
    )
    assert response.headers["location"] == "/"


def test_logout_ends_the_session(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert client.get("/").status_code == 303


def test_session_cookie_is_httponly_and_samesite_lax(client: TestClient, world: World) -> None:
    response = client.get("/login")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # local http by default


def test_session_cookie_is_secure_when_configured(settings, world: World) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    app = create_app(settings.model_copy(update={"secure_cookies": True}))
    with TestClient(app, base_url="https://testserver") as secure_client:
        cookie = secure_client.get("/login").headers["set-cookie"].lower()
    app.state.engine.dispose()
    assert "; secure" in cookie


def test_throttling_after_repeated_failures_blocks_even_the_right_password(
    client: TestClient, world: World
) -> None:
    token = csrf_from(client)
    wrong = {"email": world.observer.email, "password": "wrong", "csrf_token": token}
    for _ in range(5):
        assert client.post("/login", data=wrong).status_code == 401
    right = {**wrong, "password": PASSWORD}
    response = client.post("/login", data=right)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.text
    other = {"email": world.admin.email, "password": PASSWORD, "csrf_token": token}
    assert client.post("/login", data=other).status_code == 303  # other accounts unaffected


def test_password_reset_clears_throttle_and_signs_out_old_sessions(
    client: TestClient,
    app,
    world: World,
    session: Session,  # type: ignore[no-untyped-def]
) -> None:
    login(client, world.observer)
    user = service.get_user(session=session, user_id=world.observer.id)  # type: ignore[arg-type]
    service.reset_password(session=session, user=user, password="a brand new password")
    session.commit()
    assert client.get("/").status_code == 303  # the old cookie no longer works
    login(client, world.observer, password="a brand new password")


def test_deactivated_user_cannot_sign_in_and_is_signed_out(
    client: TestClient, world: World, session: Session
) -> None:
    login(client, world.observer)
    user = service.get_user(session=session, user_id=world.observer.id)  # type: ignore[arg-type]
    service.set_active(session=session, admin=world.admin, user=user, active=False)
    session.commit()
    assert client.get("/").status_code == 303
    token = csrf_from(client)
    response = client.post(
        "/login", data={"email": world.observer.email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 401


def test_login_rehashes_nothing_and_records_last_login(
    client: TestClient, world: World, session: Session
) -> None:
    login(client, world.observer)
    session.rollback()  # end the read snapshot: see what the app committed
    session.expire_all()
    user = service.get_user(session=session, user_id=world.observer.id)  # type: ignore[arg-type]
    assert user.last_login_at is not None
    assert user.last_login_at.tzinfo is not None
    assert user.password_hash.startswith("$argon2id$")


def test_production_hashing_cost() -> None:
    """Outside the tests' cheap setting, passwords get argon2id at its recommended cost."""
    import app.security

    digest = app.security.production_hasher().hash("a long enough passphrase")
    assert digest.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
