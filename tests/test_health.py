"""Health check on a working and a broken database."""

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


def test_health_is_ok_with_a_working_database(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_health_is_503_with_the_reason_when_the_database_is_unreachable() -> None:
    settings = Settings(
        env="test",
        secret_key="x" * 32,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/nowhere?connect_timeout=2",
    )
    app = create_app(settings)
    response = TestClient(app).get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert "OperationalError" in body["database"]


def test_health_is_503_when_the_sqlite_file_is_a_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(env="test", secret_key="x" * 32, database_url=f"sqlite:///{tmp_path}")
    app = create_app(settings)
    response = TestClient(app).get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"


def test_favicon_and_static_caching(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO container
    assert icon.headers["cache-control"] == "public, max-age=86400"
    # Versioned vendor files are immutable; the app's own are revalidated on each use.
    vendored = client.get("/static/vendor/htmx-2.0.11.min.js")
    assert vendored.headers["cache-control"] == "public, max-age=31536000, immutable"
    own = client.get("/static/app.css")
    assert own.headers["cache-control"] == "no-cache" and own.headers.get("etag")
    assert (
        client.get("/static/app.css", headers={"If-None-Match": own.headers["etag"]}).status_code
        == 304
    )
    # Pages keep personnel data out of caches.
    assert client.get("/login").headers["cache-control"] == "no-store"
