"""The builder's pages (admins): import a YAML file or pasted text as a draft with errors by
line and nothing lost, edit, preview on the real capture page, publish and retire after a
confirmation, a new version; and each page's roles."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.helpers import World, login
from tests.rubrics.test_builder_api import DRAFT

PAGES = [
    ("get", "/rubrics/builder-demo/versions/1/edit"),
    ("post", "/rubrics/builder-demo/versions/1/edit"),
    ("get", "/rubrics/builder-demo/versions/1/preview"),
    ("get", "/rubrics/builder-demo/versions/1/publish"),
    ("post", "/rubrics/builder-demo/versions/1/publish"),
    ("get", "/rubrics/builder-demo/versions/1/retire"),
    ("post", "/rubrics/builder-demo/versions/1/retire"),
    ("post", "/rubrics/builder-demo/versions/1/new-version"),
    ("post", "/rubrics/import"),
    ("get", "/rubrics/builder-demo/versions/1/build"),
    ("post", "/rubrics/builder-demo/versions/1/build"),
    ("post", "/rubrics/new"),
]
# A facilitator drafts: every page but publishing and retiring (a second draft, or a new
# version of a draft, is refused as for an admin; the builder's form here holds no rubric).
FACILITATOR = {
    ("get", "/rubrics/builder-demo/versions/1/edit"): 200,
    ("post", "/rubrics/builder-demo/versions/1/edit"): 303,
    ("get", "/rubrics/builder-demo/versions/1/preview"): 200,
    ("get", "/rubrics/builder-demo/versions/1/publish"): 403,
    ("post", "/rubrics/builder-demo/versions/1/publish"): 403,
    ("get", "/rubrics/builder-demo/versions/1/retire"): 403,
    ("post", "/rubrics/builder-demo/versions/1/retire"): 403,
    ("post", "/rubrics/builder-demo/versions/1/new-version"): 409,
    ("post", "/rubrics/import"): 409,
    ("get", "/rubrics/builder-demo/versions/1/build"): 200,
    ("post", "/rubrics/builder-demo/versions/1/build"): 422,
    ("post", "/rubrics/new"): 422,
}


def _import(client: TestClient, csrf: str, text: str = DRAFT):  # type: ignore[no-untyped-def]
    return client.post("/rubrics/import", data={"csrf_token": csrf, "text": text})


def test_an_admin_imports_edits_previews_publishes_and_retires(
    client: TestClient, world: World
) -> None:
    csrf = login(client, world.admin)
    assert "Import a rubric as a draft" in client.get("/rubrics").text
    made = _import(client, csrf)
    assert made.status_code == 303
    assert made.headers["location"] == "/rubrics/builder-demo/versions/1"
    page = client.get("/rubrics/builder-demo/versions/1").text
    assert "Build the draft" in page and "Edit the YAML" in page and "Publish…" in page
    assert "Created by Admin Person" in page

    edit = client.get("/rubrics/builder-demo/versions/1/edit").text
    assert "slug: builder-demo" in edit and "title: Demo rubric" in edit
    saved = client.post(
        "/rubrics/builder-demo/versions/1/edit",
        data={
            "csrf_token": csrf,
            "text": DRAFT.replace("title: A rating", "title: A better rating"),
        },
    )
    assert saved.status_code == 303
    assert "A better rating" in client.get("/rubrics/builder-demo/versions/1").text

    preview = client.get("/rubrics/builder-demo/versions/1/preview").text
    assert "data-preview" in preview and "A better rating" in preview
    assert "data-capture" in preview and "/static/capture.js" not in preview

    confirm = client.get("/rubrics/builder-demo/versions/1/publish").text
    assert "immutable" in confirm and "4 item(s)" in confirm
    published = client.post("/rubrics/builder-demo/versions/1/publish", data={"csrf_token": csrf})
    assert published.status_code == 200
    assert "Published Demo rubric v1" in published.text
    assert "Retire…" in published.text and "Build the draft" not in published.text
    refused = client.get("/rubrics/builder-demo/versions/1/edit")
    assert refused.status_code == 409
    assert "never changes" in refused.text
    again = client.post(
        "/rubrics/builder-demo/versions/1/edit", data={"csrf_token": csrf, "text": DRAFT}
    )
    assert again.status_code == 409

    retired = client.post("/rubrics/builder-demo/versions/1/retire", data={"csrf_token": csrf})
    assert "Retired Demo rubric v1" in retired.text
    copy = client.post("/rubrics/builder-demo/versions/1/new-version", data={"csrf_token": csrf})
    assert copy.headers["location"] == "/rubrics/builder-demo/versions/2/edit"
    history = client.get("/rubrics/builder-demo/versions/1").text
    for step in ("Created", "Changed", "Published", "Retired"):
        assert f"{step} by Admin Person" in history


def test_a_bad_import_lists_each_problem_by_line_and_keeps_the_text(
    client: TestClient, world: World
) -> None:
    csrf = login(client, world.admin)
    broken = DRAFT.replace("title: Main", "titel: Main")
    answer = _import(client, csrf, broken)
    assert answer.status_code == 422
    line = broken.splitlines().index("    titel: Main") + 1
    assert f"Line {line}, <code>sections[0].titel</code>: unknown key" in answer.text
    assert "titel: Main" in answer.text  # the pasted text is still in the box
    file = client.post(
        "/rubrics/import",
        data={"csrf_token": csrf},
        files={"file": ("demo.yaml", b"\xff\xfe not utf-8", "application/yaml")},
    )
    assert file.status_code == 422
    assert "not UTF-8" in file.text


def test_a_bad_edit_keeps_what_was_typed(client: TestClient, world: World) -> None:
    csrf = login(client, world.admin)
    _import(client, csrf)
    typed = DRAFT.replace("kind: scale", "kind: slider") + "# my careful edit\n"
    answer = client.post(
        "/rubrics/builder-demo/versions/1/edit", data={"csrf_token": csrf, "text": typed}
    )
    assert answer.status_code == 422
    assert "kind must be one of" in answer.text
    assert "# my careful edit" in answer.text


@pytest.mark.parametrize(("method", "path"), PAGES)
@pytest.mark.parametrize("role", ["observer", "principal", "facilitator"])
def test_only_admins_and_facilitators_use_the_builder_pages(
    app: FastAPI, client: TestClient, world: World, role: str, method: str, path: str
) -> None:
    _import(client, login(client, world.admin))
    other = TestClient(app, follow_redirects=False)
    csrf = login(other, getattr(world, role))
    kwargs = {"data": {"csrf_token": csrf, "text": DRAFT}} if method == "post" else {}
    expected = FACILITATOR[(method, path)] if role == "facilitator" else 403
    assert getattr(other, method)(path, **kwargs).status_code == expected


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_the_builder_pages_ask_the_signed_out_to_sign_in(
    app: FastAPI, method: str, path: str
) -> None:
    anonymous = TestClient(app, follow_redirects=False)
    answer = getattr(anonymous, method)(path)
    assert answer.status_code in ((303, 401) if method == "get" else (403,))
