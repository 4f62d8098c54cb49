"""The offline client's server side: service worker, capture shells, the device page; per role."""

import pytest
from fastapi.testclient import TestClient

from tests.conftest import World, login


def test_service_worker_precaches_every_published_capture_page(
    client: TestClient, ready: World
) -> None:
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert response.headers["cache-control"] == "no-cache"
    body = response.text
    for path in (
        "/capture/discourse-walkthrough/1",
        "/capture/math-discourse-quality/2",
        "/static/offline.js",
    ):
        assert f'"{path}"' in body
    assert 'request.method !== "GET"' in body  # never intercepts POST
    assert 'const CACHE = "walkthrough-' in body


def test_cache_name_changes_with_the_build(client: TestClient, ready: World, settings) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app

    def cache_line(body: str) -> str:
        return next(line for line in body.split("\n") if line.startswith("const CACHE ="))

    first = cache_line(client.get("/sw.js").text)
    other = create_app(settings.model_copy(update={"build_id": "another-build"}))
    with TestClient(other) as second_client:
        second = cache_line(second_client.get("/sw.js").text)
    other.state.engine.dispose()
    assert first.startswith("const CACHE") and first != second


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
