"""The offline client's server side: service worker, capture shells, the device page; per role."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.config import Settings
from app.rubrics.models import RubricVersion
from tests.helpers import World, login

HARNESS = Path(__file__).with_name("sw_harness.mjs")


def _run_worker(client: TestClient, tmp_path: Path) -> dict[str, Any]:
    """The generated service worker, run in Node by sw_harness.mjs: install, activate, then
    fetches while offline, as a browser would dispatch them."""
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert response.headers["cache-control"] == "no-cache"
    worker = tmp_path / f"sw-{len(list(tmp_path.iterdir()))}.js"
    worker.write_text(response.text)
    done = subprocess.run(
        ["node", str(HARNESS), str(worker)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_service_worker_keeps_every_published_capture_page_for_offline_use(
    client: TestClient, ready: World, session: Session, tmp_path: Path
) -> None:
    run = _run_worker(client, tmp_path)
    published = [
        f"/capture/{v.slug}/{v.version}"
        for v in session.exec(select(RubricVersion).where(RubricVersion.status == "published"))
    ]
    assert len(published) >= 3
    for path in [*published, "/static/offline.js", "/static/app.css"]:
        assert path in run["precached"], path
    # A new build's worker removes the caches of older builds, and keeps personal pages.
    assert "walkthrough-old-build" in run["caches_after_install"]
    assert run["caches_after_activate"] == sorted([run["cache_name"], "walkthrough-pages"])
    # Offline: capture pages (whatever their query) and static files come from the cache,
    # and nothing is asked of the network for them.
    assert run["offline_capture"] == "network /capture/discourse-walkthrough/1"
    assert run["offline_static"] == "network /static/offline.js"
    assert run["offline_fetches"] == []
    # Writes and the API are never answered by the worker: they reach the network (and fail
    # offline, so the page keeps the work in its outbox) rather than a cached copy.
    assert run["post_answered"] is None
    assert run["form_post_answered"] is None
    assert run["api_get_answered"] is None
    # A page seen online is shown offline from its last good copy.
    assert run["offline_page"] == "network /observations"


def test_cache_name_changes_with_the_build(
    client: TestClient, ready: World, settings: Settings, tmp_path: Path
) -> None:
    from app.main import create_app

    first = _run_worker(client, tmp_path)["cache_name"]
    other = create_app(settings.model_copy(update={"build_id": "another-build"}))
    with TestClient(other) as second_client:
        second = _run_worker(second_client, tmp_path)["cache_name"]
    other.state.engine.dispose()
    assert first.startswith("walkthrough-") and second.startswith("walkthrough-")
    assert first != second


@pytest.mark.parametrize("role", ["observer", "principal", "admin"])
def test_recording_roles_get_capture_shells(client: TestClient, ready: World, role: str) -> None:
    login(client, getattr(ready, role))
    page = client.get("/capture/discourse-walkthrough/1")
    assert page.status_code == 200
    assert 'data-mode="shell"' in page.text
    assert client.get("/capture/math-discourse-quality/9").status_code == 404
    assert client.get("/outbox").status_code == 200


def test_facilitators_get_no_capture_shell(client: TestClient, ready: World) -> None:
    login(client, ready.facilitator)
    assert client.get("/capture/discourse-walkthrough/1").status_code == 403
    assert client.get("/outbox").status_code == 200


def test_signed_out_visitors_are_sent_to_sign_in(client: TestClient, ready: World) -> None:
    for path in (
        "/outbox",
        "/capture/discourse-walkthrough/1",
        "/calibration-history",
        "/account/tokens",
    ):
        assert client.get(path).status_code == 303, path
    assert client.get("/agreement").status_code == 200  # the calculator is public
    assert client.get("/join").status_code == 200


def test_manifest_and_icons_are_served(client: TestClient) -> None:
    manifest = client.get("/static/manifest.webmanifest").json()
    assert manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        assert client.get(icon["src"]).status_code == 200
