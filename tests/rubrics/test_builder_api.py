"""Rubric versions made in the app through the API: drafts from YAML or JSON with errors that
name field and line, publishing that makes a version immutable, new versions, retiring, the
YAML round trip, the audit, and each route's roles."""

import json
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.rubrics.loader import RubricDefinition, validate_text
from tests.helpers import World, login
from tests.rubrics.test_loader import VALID

DRAFT = VALID.replace("slug: demo", "slug: builder-demo").replace(
    "status: published", "status: draft"
)


def _token(client: TestClient, user) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A personal API token of `user`, as the header a script sends."""
    csrf = login(client, user)
    page = client.post("/account/tokens", data={"csrf_token": csrf, "name": "builder"}).text
    match = re.search(r"data-new-token>(wt_[^<]+)<", page)
    assert match
    return {"Authorization": f"Bearer {match.group(1)}"}


@pytest.fixture
def admin(app: FastAPI, world: World) -> TestClient:
    script = TestClient(app)
    script.headers.update(_token(TestClient(app, follow_redirects=False), world.admin))
    return script


def _yaml(body: str) -> dict[str, str]:
    return {"content": body, "headers": {"Content-Type": "application/yaml"}}  # type: ignore[dict-item]


def test_a_draft_from_yaml_is_made_changed_and_shown_to_admins_only(
    admin: TestClient, client: TestClient, world: World
) -> None:
    made = admin.post(
        "/api/rubrics/drafts", content=DRAFT, headers={"Content-Type": "application/yaml"}
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["slug"], body["version"], body["status"]) == ("builder-demo", 1, "draft")
    assert made.headers["Location"] == "/api/rubrics/builder-demo/versions/1"
    assert body["content"]["title"] == "Demo rubric"

    changed = admin.put(
        "/api/rubrics/builder-demo/versions/1",
        content=DRAFT.replace("title: Demo rubric", "title: Demo rubric, revised"),
        headers={"Content-Type": "application/yaml"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Demo rubric, revised"
    assert changed.json()["content_hash"] != body["content_hash"]

    login(client, world.observer)
    assert client.get("/api/rubrics/builder-demo/versions/1").status_code == 404
    assert "builder-demo" not in client.get("/api/rubrics").text
    history = admin.get("/api/rubrics/builder-demo/versions/1/history").json()["events"]
    assert [(e["action"], e["user"]) for e in history] == [
        ("created", world.admin.email),
        ("changed", world.admin.email),
    ]


def test_a_draft_from_json_is_accepted_too(admin: TestClient) -> None:
    import yaml

    data = yaml.safe_load(DRAFT)
    made = admin.post("/api/rubrics/drafts", json=data)
    assert made.status_code == 201, made.text
    assert made.json()["version"] == 1


def test_every_problem_names_its_field_and_line(admin: TestClient) -> None:
    broken = DRAFT.replace("kind: scale", "kind: slider").replace("title: Main", "titel: Main")
    answer = admin.post(
        "/api/rubrics/drafts", content=broken, headers={"Content-Type": "application/yaml"}
    )
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    found = {e["field"]: (e["line"], e["message"]) for e in errors}
    lines = broken.splitlines()
    assert found["sections[0].titel"][0] == lines.index("    titel: Main") + 1
    assert found["sections[0].title"] == (lines.index("    titel: Main"), "required but missing")
    item_line, message = found["sections[0].items[0]"]  # the item whose kind is unknown
    assert item_line == lines.index("      - key: rating") + 1
    assert "kind must be one of" in message
    assert all(e["message"] for e in errors)
    syntax = admin.post(
        "/api/rubrics/drafts",
        content="slug: [unclosed",
        headers={"Content-Type": "application/yaml"},
    )
    assert syntax.status_code == 422
    assert syntax.json()["errors"][0]["line"] == 1
    assert "YAML syntax error" in syntax.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b"slug: builder-demo\x00",
        b"null",
        b"'just a string'",
        b"{" * 5000,
        b"a: " + b"x" * 1_100_000,
    ],
)
def test_a_malformed_body_is_a_clear_422_never_a_500(admin: TestClient, body: bytes) -> None:
    answer = admin.post(
        "/api/rubrics/drafts", content=body, headers={"Content-Type": "application/yaml"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] if "detail" in answer.json() else answer.json()


def test_a_published_version_never_changes_by_api_or_page(
    admin: TestClient, session: Session
) -> None:
    admin.post("/api/rubrics/drafts", content=DRAFT, headers={"Content-Type": "application/yaml"})
    published = admin.post("/api/rubrics/builder-demo/versions/1/publish")
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published"
    assert published.json()["published_at"]
    digest = published.json()["content_hash"]
    assert (
        digest
        == RubricDefinition.model_validate(
            {**published.json()["content"], "status": "published"}
        ).content_hash()
    )

    again = admin.put(
        "/api/rubrics/builder-demo/versions/1",
        content=DRAFT,
        headers={"Content-Type": "application/yaml"},
    )
    assert again.status_code == 409
    assert "never changes" in again.json()["detail"] if "detail" in again.json() else again.text
    assert "new-version" in again.text
    assert admin.post("/api/rubrics/builder-demo/versions/1/publish").status_code == 409
    version = admin.get("/api/rubrics/builder-demo/versions/1")
    assert version.headers["ETag"] == f'"{digest}"'
    assert "immutable" in version.headers["Cache-Control"]

    # A new version is a draft copy; the published one is untouched.
    copy = admin.post("/api/rubrics/builder-demo/versions/1/new-version")
    assert copy.status_code == 201, copy.text
    assert (copy.json()["version"], copy.json()["status"]) == (2, "draft")
    assert admin.post("/api/rubrics/builder-demo/versions/1/new-version").status_code == 409
    assert admin.get("/api/rubrics/builder-demo/versions/1").json()["content_hash"] == digest


def test_retiring_hides_a_version_from_new_work_and_keeps_it_readable(
    admin: TestClient, client: TestClient, world: World
) -> None:
    admin.post("/api/rubrics/drafts", content=DRAFT, headers={"Content-Type": "application/yaml"})
    assert admin.post("/api/rubrics/builder-demo/versions/1/retire").status_code == 409  # a draft
    admin.post("/api/rubrics/builder-demo/versions/1/publish")
    login(client, world.observer)
    assert "builder-demo:1" in client.get("/observations/new").text
    retired = admin.post("/api/rubrics/builder-demo/versions/1/retire")
    assert retired.status_code == 200, retired.text
    assert retired.json()["status"] == "retired"
    assert "builder-demo:1" not in client.get("/observations/new").text
    assert client.get("/api/rubrics/builder-demo/versions/1").status_code == 200
    assert client.get("/rubrics/builder-demo/versions/1").status_code == 200
    assert admin.post("/api/rubrics/builder-demo/versions/1/retire").status_code == 409
    events = admin.get("/api/rubrics/builder-demo/versions/1/history").json()["events"]
    assert [e["action"] for e in events] == ["created", "published", "retired"]


def test_the_yaml_download_reads_back_to_the_same_content_hash(admin: TestClient) -> None:
    made = admin.post(
        "/api/rubrics/drafts", content=DRAFT, headers={"Content-Type": "application/yaml"}
    )
    downloaded = admin.get("/api/rubrics/builder-demo/versions/1.yaml")
    assert downloaded.status_code == 200
    assert downloaded.headers["Content-Type"].startswith("application/yaml")
    assert "builder-demo-v1.yaml" in downloaded.headers["Content-Disposition"]
    definition, errors = validate_text(downloaded.text, display="download")
    assert errors == [] and definition is not None
    assert definition.content_hash() == made.json()["content_hash"]
    back = admin.put(
        "/api/rubrics/builder-demo/versions/1",
        content=downloaded.content,
        headers={"Content-Type": "application/yaml"},
    )
    assert back.status_code == 200
    assert back.json()["content_hash"] == made.json()["content_hash"]


def test_a_second_draft_of_one_rubric_waits_for_the_first(admin: TestClient) -> None:
    assert (
        admin.post(
            "/api/rubrics/drafts", content=DRAFT, headers={"Content-Type": "application/yaml"}
        ).status_code
        == 201
    )
    second = admin.post(
        "/api/rubrics/drafts", content=DRAFT, headers={"Content-Type": "application/yaml"}
    )
    assert second.status_code == 409
    assert "already has a draft" in second.text
    published_status = DRAFT.replace("status: draft", "status: published")
    other = admin.post(
        "/api/rubrics/drafts",
        content=published_status.replace("slug: builder-demo", "slug: other-demo"),
        headers={"Content-Type": "application/yaml"},
    )
    assert other.status_code == 422  # a version made in the app starts as a draft


def test_the_body_of_a_draft_must_match_its_address(admin: TestClient) -> None:
    admin.post("/api/rubrics/drafts", content=DRAFT, headers={"Content-Type": "application/yaml"})
    wrong = admin.put(
        "/api/rubrics/builder-demo/versions/1",
        content=DRAFT.replace("slug: builder-demo", "slug: elsewhere"),
        headers={"Content-Type": "application/yaml"},
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "slug"


ROUTES = [
    ("post", "/api/rubrics/drafts"),
    ("put", "/api/rubrics/builder-demo/versions/1"),
    ("post", "/api/rubrics/builder-demo/versions/1/publish"),
    ("post", "/api/rubrics/builder-demo/versions/1/retire"),
    ("post", "/api/rubrics/builder-demo/versions/1/new-version"),
    ("get", "/api/rubrics/builder-demo/versions/1/history"),
]


# What a facilitator gets: they draft (the draft exists already: 409 for a second one, and
# for a new version of a draft), but publishing and retiring are for admins.
FACILITATOR = {
    "/api/rubrics/drafts": 409,
    "/api/rubrics/builder-demo/versions/1": 200,
    "/api/rubrics/builder-demo/versions/1/publish": 403,
    "/api/rubrics/builder-demo/versions/1/retire": 403,
    "/api/rubrics/builder-demo/versions/1/new-version": 409,
    "/api/rubrics/builder-demo/versions/1/history": 200,
}


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("role", [None, "observer", "principal", "facilitator"])
def test_only_admins_and_facilitators_build_rubrics_and_only_admins_publish(
    app: FastAPI,
    client: TestClient,
    world: World,
    admin: TestClient,
    role: str | None,
    method: str,
    path: str,
) -> None:
    admin.post("/api/rubrics/drafts", content=DRAFT, headers={"Content-Type": "application/yaml"})
    other = TestClient(app)
    if role is not None:
        other.headers.update(_token(TestClient(app, follow_redirects=False), getattr(world, role)))
    answer = getattr(other, method)(
        path, **({"content": DRAFT} if method in ("post", "put") else {})
    )
    # No one signed in: a read asks to sign in; a write is refused before anything else
    # (no session, so no CSRF token).
    expected = 403 if role is not None or method != "get" else 401
    if role == "facilitator":
        expected = FACILITATOR[path]
    assert answer.status_code == expected, answer.text
    listed = admin.get("/api/rubrics").json()
    rows = listed["rubrics"] if isinstance(listed, dict) else listed
    assert [r["status"] for r in rows if r["slug"] == "builder-demo"] == ["draft"]


def test_a_signed_in_admin_needs_the_csrf_token(client: TestClient, world: World) -> None:
    csrf = login(client, world.admin)
    refused = client.post("/api/rubrics/drafts", content=DRAFT)
    assert refused.status_code == 403
    made = client.post("/api/rubrics/drafts", content=DRAFT, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text


def test_the_api_is_described_in_openapi(client: TestClient, world: World) -> None:
    login(client, world.admin)
    spec = json.loads(client.get("/api/openapi.json").text)
    paths = spec["paths"]
    assert "post" in paths["/api/rubrics/drafts"]
    assert "application/yaml" in paths["/api/rubrics/drafts"]["post"]["requestBody"]["content"]
    for tail in ("publish", "retire", "new-version", "history"):
        assert f"/api/rubrics/{{slug}}/versions/{{version}}/{tail}" in paths


def _observation(world: World, observed_at: str) -> dict[str, object]:
    from tests.sync.conftest import item

    return item(
        world,
        rubric_slug="builder-demo",
        rubric_version=1,
        observed_at=observed_at,
        values={"rating": {"value": 2}, "tally": {"value": 3}, "seen": {"value": True}},
    )


def test_a_published_version_reaches_tablets_and_its_observations_sync_once(
    admin: TestClient, client: TestClient, world: World
) -> None:
    from tests.sync.conftest import push

    token = login(client, world.observer)
    worker_before = client.get("/sw.js").text
    admin.post("/api/rubrics/drafts", content=DRAFT, headers={"Content-Type": "application/yaml"})
    assert "/capture/builder-demo/1" not in client.get("/sw.js").text  # a draft stays off tablets
    since = client.get("/api/sync/pull?since=0").json()["cursor"]
    admin.post("/api/rubrics/builder-demo/versions/1/publish")

    worker = client.get("/sw.js").text
    assert '"/capture/builder-demo/1"' in worker
    cache = re.compile(r"walkthrough-[0-9a-f]{12}")
    assert cache.search(worker).group(0) != cache.search(worker_before).group(0)  # type: ignore[union-attr]
    pulled = client.get(f"/api/sync/pull?since={since}").json()["rubric_versions"]
    assert [(r["slug"], r["version"], r["status"]) for r in pulled] == [
        ("builder-demo", 1, "published")
    ]
    assert client.get("/capture/builder-demo/1").status_code == 200

    observation = _observation(world, "2026-11-20T09:15:00-06:00")
    assert [r["status"] for r in push(client, token, observation)] == ["created"]
    assert [r["status"] for r in push(client, token, observation)] == ["duplicate"]


def test_work_started_before_a_version_was_retired_still_syncs(
    admin: TestClient, client: TestClient, world: World
) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.sync.conftest import push

    token = login(client, world.observer)
    admin.post("/api/rubrics/drafts", content=DRAFT, headers={"Content-Type": "application/yaml"})
    admin.post("/api/rubrics/builder-demo/versions/1/publish")
    started = (datetime.now(UTC) - timedelta(hours=1)).isoformat()  # on a tablet, offline
    admin.post("/api/rubrics/builder-demo/versions/1/retire")
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    before, after = push(client, token, _observation(world, started), _observation(world, later))
    assert before["status"] == "created"
    assert after["status"] == "rejected"
    assert "retired" in after["reason"]
