"""A district's busy moment against a real uvicorn, on SQLite and on PostgreSQL: devices push
while leads export (each export writes an audit row, each token use a last-used time) and an
admin imports a 10,000-teacher roster. Nothing fails, nothing is lost, the server answers."""

import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from app.demo import DEMO_PASSWORD
from tests.browser.helpers import LiveServer
from tests.helpers import BACKENDS, POSTGRES_ADMIN_URL, _psycopg_dsn

PUSHERS, PUSHES_EACH = 30, 8
EXPORTERS, EXPORTS_EACH = 10, 4


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path)
    name = None
    if request.param == "postgres":
        assert POSTGRES_ADMIN_URL is not None
        name = f"wt_live_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(_psycopg_dsn(POSTGRES_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        live.database_url = (
            make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        )
    live.start()
    yield live
    live.stop()
    if name:
        with psycopg.connect(_psycopg_dsn(POSTGRES_ADMIN_URL or ""), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sign_in(base: str, email: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    response = client.post(
        "/login", data={"email": email, "password": DEMO_PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.status_code == 303
    csrf = client.get("/api/session").json()["csrf_token"]
    return client, csrf


def _item(n: int) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "base_revision": 0,
        "payload": {
            "rubric_slug": "discourse-walkthrough",
            "rubric_version": 1,
            "teacher_name": "Load Teacher",
            "observed_at": "2026-11-20T09:15:00-06:00",
            "status": "submitted",
            "values": {"students_explaining": {"value": n % 10}},
        },
    }


def test_pushes_exports_and_an_import_at_once_never_fail(server: LiveServer) -> None:
    admin, admin_csrf = _sign_in(server.url, "admin@demo.walkthrough.test")
    page = admin.post("/account/tokens", data={"csrf_token": admin_csrf, "name": "R"})
    raw = re.search(r"data-new-token>(wt_[^<]+)<", page.text)
    assert raw
    bearer = {"Authorization": f"Bearer {raw.group(1)}"}
    coaches = [_sign_in(server.url, "coach@demo.walkthrough.test") for _ in range(3)]

    failures: list[str] = []
    statuses: list[str] = []
    healthy: list[int] = []
    importing = threading.Event()
    start = threading.Barrier(PUSHERS + EXPORTERS + 1)

    def pusher(k: int) -> None:
        client, csrf = coaches[k % len(coaches)]
        start.wait()
        for n in range(PUSHES_EACH):
            r = client.post(
                "/api/sync/push",
                json={"device_id": f"tablet-{k}", "items": [_item(n)]},
                headers={"X-CSRF-Token": csrf},
            )
            if r.status_code != 200:
                failures.append(f"push {r.status_code} {r.text[:200]}")
            else:
                statuses.append(r.json()["results"][0]["status"])

    def exporter(k: int) -> None:
        start.wait()
        with httpx.Client(base_url=server.url, timeout=60) as script:
            for n in range(EXPORTS_EACH):
                if (k + n) % 2:
                    r = script.get("/api/exports/observations.csv?kind=long", headers=bearer)
                else:
                    r = admin.get("/exports/download?dataset=observations_long&format=csv")
                if r.status_code != 200:
                    failures.append(f"export {r.status_code} {r.text[:200]}")

    def importer() -> None:
        rows = ["school,teacher,district_id"]
        rows += [f"Load School {i % 30},Teacher {i},L{i}" for i in range(10_000)]
        start.wait()
        importing.set()
        r = admin.post(
            "/admin/roster",
            data={"csrf_token": admin_csrf},
            files={"file": ("big.csv", "\r\n".join(rows).encode(), "text/csv")},
        )
        importing.clear()
        if r.status_code != 200:
            failures.append(f"import {r.status_code}")

    threads = [threading.Thread(target=pusher, args=(k,)) for k in range(PUSHERS)]
    threads += [threading.Thread(target=exporter, args=(k,)) for k in range(EXPORTERS)]
    threads.append(threading.Thread(target=importer))
    for t in threads:
        t.start()
    importing.wait(timeout=60)
    with httpx.Client(base_url=server.url, timeout=10) as probe:
        while importing.is_set():
            healthy.append(probe.get("/healthz").status_code)
    for t in threads:
        t.join()

    assert failures == []
    assert statuses == ["created"] * (PUSHERS * PUSHES_EACH)
    assert server.count("SELECT count(*) FROM observation") == PUSHERS * PUSHES_EACH
    assert server.count("SELECT count(*) FROM export_log") == EXPORTERS * EXPORTS_EACH
    assert server.count("SELECT count(*) FROM teacher") == 10_000 + 8
    assert healthy and set(healthy) == {200}
