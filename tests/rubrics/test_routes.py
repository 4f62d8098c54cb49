"""Rubric pages and API: role access (drafts for admins only), caching headers, the diff page."""

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.rubrics.loader import RUBRICS_DIR, sync_rubrics
from tests.helpers import World, login
from tests.rubrics.test_loader import VALID, write

ROLES = ["observer", "principal", "facilitator", "admin"]


@pytest.fixture
def with_draft(app: FastAPI, tmp_path: Path) -> None:
    """The shipped rubrics plus a draft 'demo' rubric."""
    import shutil

    for folder in RUBRICS_DIR.iterdir():
        if folder.is_dir() and list(folder.glob("v*.yaml")):
            shutil.copytree(folder, tmp_path / folder.name)
    write(tmp_path, VALID.replace("status: published", "status: draft"))
    sync_rubrics(app.state.engine, tmp_path)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_the_library_and_a_version(
    client: TestClient, world: World, role: str
) -> None:
    login(client, getattr(world, role))
    library = client.get("/rubrics")
    assert library.status_code == 200
    assert "Mathematical Discourse Quality" in library.text
    assert "Math-Talk Learning Community" in library.text
    page = client.get("/rubrics/math-talk-community/versions/1")
    assert page.status_code == 200
    assert "Responsibility for learning" in page.text
    assert "Hufferd-Ackles" in page.text


@pytest.mark.parametrize("role", ["observer", "principal"])
def test_observers_and_principals_never_see_drafts(
    client: TestClient, world: World, with_draft: None, role: str
) -> None:
    login(client, getattr(world, role))
    assert "Demo rubric" not in client.get("/rubrics").text
    assert client.get("/rubrics/demo/versions/1").status_code == 404
    assert client.get("/api/rubrics/demo/versions/1").status_code == 404
    slugs = {r["slug"] for r in client.get("/api/rubrics").json()["rubrics"]}
    assert "demo" not in slugs


def test_admin_sees_drafts_marked_as_such(
    client: TestClient, world: World, with_draft: None
) -> None:
    login(client, world.admin)
    assert "Demo rubric" in client.get("/rubrics").text
    page = client.get("/rubrics/demo/versions/1")
    assert page.status_code == 200
    assert "Draft: only admins and facilitators see this version" in page.text
    api = client.get("/api/rubrics/demo/versions/1")
    assert api.headers["cache-control"] == "private, no-cache"


def test_signed_out_users_get_401_from_the_api_and_login_from_pages(
    client: TestClient, world: World
) -> None:
    assert client.get("/api/rubrics").status_code == 401
    assert client.get("/api/rubrics/math-talk-community/versions/1").status_code == 401
    assert client.get("/rubrics").status_code == 303


def test_api_lists_versions_with_hashes(client: TestClient, world: World, session: Session) -> None:
    login(client, world.observer)
    body = client.get("/api/rubrics").json()
    entries = {(r["slug"], r["version"]): r for r in body["rubrics"]}
    assert set(entries) == {
        ("discourse-walkthrough", 1),
        ("math-discourse-quality", 1),
        ("math-discourse-quality", 2),
        ("math-talk-community", 1),
        ("who-talks", 1),
    }
    mdq = entries[("math-discourse-quality", 2)]
    assert mdq["status"] == "published"
    assert len(mdq["content_hash"]) == 64
    assert mdq["url"] == "/api/rubrics/math-discourse-quality/versions/2"


def test_published_version_json_is_immutably_cached_with_an_etag(
    client: TestClient, world: World
) -> None:
    login(client, world.observer)
    response = client.get("/api/rubrics/math-discourse-quality/versions/2")
    assert response.status_code == 200
    body = response.json()
    assert body["slug"] == "math-discourse-quality"
    assert body["version"] == 2
    assert "status" not in body
    keys = [i["key"] for s in body["sections"] for i in s["items"]]
    assert "student_questions" in keys
    assert response.headers["etag"] == f'"{body["content_hash"]}"'
    assert response.headers["cache-control"] == "private, max-age=31536000, immutable"
    again = client.get(
        "/api/rubrics/math-discourse-quality/versions/2",
        headers={"If-None-Match": response.headers["etag"]},
    )
    assert again.status_code == 304
    assert again.content == b""


def test_rubric_list_revalidates_with_an_etag(client: TestClient, world: World) -> None:
    login(client, world.observer)
    first = client.get("/api/rubrics")
    assert first.headers["cache-control"] == "private, no-cache"
    second = client.get("/api/rubrics", headers={"If-None-Match": first.headers["etag"]})
    assert second.status_code == 304


def test_unknown_version_is_404_json(client: TestClient, world: World) -> None:
    login(client, world.observer)
    response = client.get("/api/rubrics/math-talk-community/versions/9")
    assert response.status_code == 404
    assert "no rubric 'math-talk-community' version 9" in response.json()["detail"]
    assert client.get("/api/rubrics/x/versions/not-a-number").status_code == 422


def test_compare_page_shows_the_shipped_v1_v2_changes(client: TestClient, world: World) -> None:
    login(client, world.principal)
    page = client.get("/rubrics/math-discourse-quality/compare?a=1&b=2")
    assert page.status_code == 200
    text = page.text
    assert "2 items changed from v1 to v2" in text
    assert "Students ask mathematical questions" in text
    assert "change-added" in text
    assert "change-reworded" in text
    assert "without the teacher in between" in text
    default = client.get("/rubrics/math-discourse-quality/compare")
    assert "2 items changed from v1 to v2" in default.text


def test_compare_with_a_single_version_explains_why_not(client: TestClient, world: World) -> None:
    login(client, world.observer)
    response = client.get("/rubrics/math-talk-community/compare")
    assert response.status_code == 400
    assert "fewer than two versions" in response.text


def test_facilitators_see_drafts_they_may_work_on(
    client: TestClient, world: World, with_draft: None
) -> None:
    login(client, world.facilitator)
    assert "Demo rubric" in client.get("/rubrics").text
    assert client.get("/rubrics/demo/versions/1").status_code == 200
    slugs = {r["slug"] for r in client.get("/api/rubrics").json()["rubrics"]}
    assert "demo" in slugs
