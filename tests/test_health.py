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
