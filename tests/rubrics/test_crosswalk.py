"""The crosswalk between rubric versions: its format and every check (field and line), the
draft a new version starts from, the lineage through several versions, and its effects on a
seeded trend, the harmonised long export and the compare page."""

import csv
import io
import uuid

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.rubrics.crosswalk import lineage, links
from app.rubrics.loader import RUBRICS_DIR, RubricDefinition, validate_file, validate_text
from tests.helpers import World, login
from tests.rubrics.test_builder_api import _token

V1 = """\
slug: cw-demo
version: 1
title: Crosswalk demo
description: A rubric whose second version changes a scale.
status: draft
source:
  attribution: Written for the tests.
sections:
  - key: main
    title: Main
    items:
      - key: talk
        kind: scale
        title: Student talk
        levels:
          - {value: 1, label: None, descriptor: No student talk.}
          - {value: 2, label: Some, descriptor: Some student talk.}
          - {value: 3, label: Much, descriptor: Much student talk.}
          - {value: 4, label: Most, descriptor: Students talk most of the time.}
      - key: goal_posted
        kind: check
        title: The goal is posted
      - key: questions
        kind: count
        title: Questions asked
"""


def _v2(crosswalk: str) -> str:
    """Version 2: talk on three levels, the look-for renamed, the tally now capped (a changed
    scale), and a new item; with the crosswalk given."""
    return (
        V1.replace("version: 1", "version: 2")
        .replace(
            """          - {value: 3, label: Much, descriptor: Much student talk.}
          - {value: 4, label: Most, descriptor: Students talk most of the time.}
""",
            """          - {value: 3, label: Much, descriptor: Much or most student talk.}
""",
        )
        .replace("key: goal_posted", "key: objective_visible")
        .replace(
            """        title: Questions asked
""",
            """        title: Questions asked
        max: 20
      - key: reasoning
        kind: check
        title: A student explains their reasoning
""",
        )
        + crosswalk
    )


CROSSWALK = """\
crosswalk:
  from_version: 1
  items:
    - key: talk
      status: continues
      levels: {1: 1, 2: 2, 3: 3, 4: 3}
    - key: objective_visible
      status: continues
      previous: goal_posted
    - key: questions
      status: changed
    - key: reasoning
      status: new
"""


@pytest.fixture
def admin(app: FastAPI, world: World) -> TestClient:
    script = TestClient(app)
    script.headers.update(_token(TestClient(app, follow_redirects=False), world.admin))
    return script


def _publish(admin: TestClient, body: str) -> dict:  # type: ignore[type-arg]
    made = admin.post("/api/rubrics/drafts", content=body, headers={"Content-Type": "text/yaml"})
    assert made.status_code == 201, made.text
    slug, version = made.json()["slug"], made.json()["version"]
    published = admin.post(f"/api/rubrics/{slug}/versions/{version}/publish")
    assert published.status_code == 200, published.text
    return made.json()


def _problems(admin: TestClient, body: str) -> list[tuple[str, int | None, str]]:
    refused = admin.post("/api/rubrics/drafts", content=body, headers={"Content-Type": "text/yaml"})
    assert refused.status_code == 422, refused.text
    return [(d["field"], d["line"], d["message"]) for d in refused.json()["errors"]]


def test_a_crosswalk_is_checked_against_the_version_it_bridges_from(admin: TestClient) -> None:
    body = _v2(CROSSWALK).replace("from_version: 1", "from_version: 7")
    line = body.splitlines().index("  from_version: 7") + 1
    assert _problems(admin, body) == [
        ("crosswalk.from_version", line, "'cw-demo' has no published version 7 to bridge from")
    ]
    _publish(admin, V1)
    cases = {
        # the levels of talk changed: they must be mapped
        CROSSWALK.replace("      levels: {1: 1, 2: 2, 3: 3, 4: 3}\n", ""): (
            "crosswalk.items[0].levels",
            "the levels of 'talk' changed: map each old level (1, 2, 3, 4) to a new one, "
            "or mark it changed",
        ),
        CROSSWALK.replace("{1: 1, 2: 2, 3: 3, 4: 3}", "{1: 1, 2: 2, 3: 3}"): (
            "crosswalk.items[0].levels",
            "map every old level of 'talk': 4 missing",
        ),
        CROSSWALK.replace("4: 3}", "4: 5}"): (
            "crosswalk.items[0].levels[4]",
            "5 is not a level of 'talk' in this version",
        ),
        CROSSWALK.replace("4: 3}", "4: 3, 9: 3}"): (
            "crosswalk.items[0].levels[9]",
            "9 is not a level of 'talk' in version 1",
        ),
        CROSSWALK.replace("previous: goal_posted", "previous: goal_missing"): (
            "crosswalk.items[1].previous",
            "version 1 has no item 'goal_missing' to continue (name it in previous, or mark "
            "this item new)",
        ),
        CROSSWALK.replace("previous: goal_posted", "previous: questions"): (
            "crosswalk.items[1].status",
            "'questions' was a count item and 'objective_visible' is a check item: mark it "
            "changed (not comparable)",
        ),
        CROSSWALK.replace("key: reasoning", "key: nowhere"): (
            "crosswalk.items[3].key",
            "'nowhere' is not an item of this version",
        ),
        CROSSWALK.replace("status: changed", "status: changed\n      previous: questions"): (
            "crosswalk.items[2].previous",
            "only an item that continues has previous",
        ),
        CROSSWALK.replace("key: reasoning", "key: talk"): (
            "crosswalk.items[3].key",
            "'talk' is listed twice",
        ),
        CROSSWALK.replace("status: new", "status: gone"): (
            "crosswalk.items[3].status",
            "Input should be 'continues', 'changed' or 'new'",
        ),
    }
    for crosswalk, (field, message) in cases.items():
        found = _problems(admin, _v2(crosswalk))
        assert [(f, m) for f, _line, m in found] == [(field, message)], crosswalk
        crosswalk_starts = _v2(crosswalk).splitlines().index("crosswalk:") + 1
        assert all(line is not None and line > crosswalk_starts for _f, line, _m in found), found


def test_numbers_beyond_any_version_or_level_are_refused_not_crashed(admin: TestClient) -> None:
    _publish(admin, V1)
    for body in (
        _v2(CROSSWALK).replace("from_version: 1", "from_version: 9223372036854775808"),
        _v2(CROSSWALK).replace("{1: 1, 2: 2, 3: 3, 4: 3}", "{1: 1, 99999999999999999999: 2}"),
        _v2(CROSSWALK).replace("value: 1, label: None", "value: 99999999999999999999, label: N"),
        _v2(CROSSWALK).replace("        max: 20", "        max: 99999999999999999999"),
    ):
        assert _problems(admin, body), body


def test_a_new_version_starts_with_every_item_continuing(admin: TestClient) -> None:
    _publish(admin, V1)
    draft = admin.post("/api/rubrics/cw-demo/versions/1/new-version")
    assert draft.status_code == 201, draft.text
    crosswalk = draft.json()["content"]["crosswalk"]
    assert crosswalk == {
        "from_version": 1,
        "items": [
            {"key": k, "status": "continues", "previous": None, "levels": None}
            for k in ("talk", "goal_posted", "questions")
        ],
    }
    # The YAML download reads back to the same content hash, crosswalk included.
    text = admin.get("/api/rubrics/cw-demo/versions/2.yaml").text
    parsed, errors = validate_text(text, display="download")
    assert errors == [] and parsed is not None
    assert parsed.content_hash() == draft.json()["content_hash"]


def test_versions_without_a_crosswalk_keep_their_hash_and_read_it_from_their_keys() -> None:
    v1, _ = validate_file(RUBRICS_DIR / "math-discourse-quality" / "v1.yaml")
    v2, _ = validate_file(RUBRICS_DIR / "math-discourse-quality" / "v2.yaml")
    assert v1 is not None and v2 is not None and v2.crosswalk is None
    assert "crosswalk" not in v2.model_dump(mode="json")
    found = {link.key: (link.status, link.stated) for link in links(v2, v1)}
    assert found["student_questions"] == ("new", False)
    assert found["building_on_ideas"] == ("continues", False)  # reworded, same scale
    assert {s for s, _stated in found.values()} == {"continues", "new"}


def _definition(text: str) -> RubricDefinition:
    return RubricDefinition.model_validate(yaml.safe_load(text))


def test_the_lineage_follows_every_version_and_composes_level_maps() -> None:
    v1 = _definition(V1.replace("status: draft", "status: published"))
    v2 = _definition(_v2(CROSSWALK).replace("status: draft", "status: published"))
    v3 = _definition(
        _v2("").replace("version: 2", "version: 3").replace("status: draft", "status: published")
        + """\
crosswalk:
  from_version: 2
  items:
    - {key: talk, status: continues, levels: {1: 3, 2: 2, 3: 1}}
    - {key: objective_visible, status: continues}
    - {key: reasoning, status: continues}
"""
    )
    traces = lineage(v3, {1: v1, 2: v2})
    # v3 reverses v2's talk scale; v2 folded v1's 3 and 4 together.
    assert [(t.version, t.key, t.levels) for t in traces["talk"]] == [
        (2, "talk", {1: 3, 2: 2, 3: 1}),
        (1, "talk", {1: 3, 2: 2, 3: 1, 4: 1}),
    ]
    assert [(t.version, t.key) for t in traces["objective_visible"]] == [
        (2, "objective_visible"),
        (1, "goal_posted"),
    ]
    assert [t.version for t in traces["reasoning"]] == [2]  # new in v2
    assert traces["questions"] == []  # not listed in v3's crosswalk: new there


def _push_visit(
    client: TestClient, token: str, world: World, version: int, day: str, values: dict
) -> None:  # type: ignore[type-arg]
    item = {
        "id": str(uuid.uuid4()),
        "base_revision": 0,
        "payload": {
            "rubric_slug": "cw-demo",
            "rubric_version": version,
            "teacher_id": world.teacher.id,
            "observed_at": f"{day}T10:00:00-05:00",
            "status": "submitted",
            "values": values,
        },
    }
    response = client.post(
        "/api/sync/push",
        json={"device_id": "d", "items": [item]},
        headers={"X-CSRF-Token": token},
    )
    assert response.json()["results"][0]["status"] == "created", response.text


@pytest.fixture
def two_versions(admin: TestClient, client: TestClient, world: World) -> None:
    """Two visits on v1 in September, one on v2 in October."""
    _publish(admin, V1)
    _publish(admin, _v2(CROSSWALK))
    token = login(client, world.observer)
    for talk, posted in ((4, True), (2, False)):
        values = {
            "talk": {"value": talk},
            "goal_posted": {"value": posted},
            "questions": {"value": 3},
        }
        _push_visit(client, token, world, 1, "2026-09-15", values)
    values = {
        "talk": {"value": 1},
        "objective_visible": {"value": True},
        "questions": {"value": 5},
        "reasoning": {"value": True},
    }
    _push_visit(client, token, world, 2, "2026-10-15", values)


def _trend(page: str, key: str) -> dict[str, str]:
    """Period -> value shown in one item's trend table."""
    import re

    section = page.split(f'data-trend="{key}"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(
        r'data-period="([\d-]+)".*?data-measure="value">([^<]*)<', section, flags=re.S
    )
    return dict(rows)


def test_trends_join_earlier_versions_through_the_crosswalk(
    two_versions: None, world: World, app: FastAPI
) -> None:
    client = TestClient(app, follow_redirects=False)
    login(client, world.admin)
    with app.state.engine.connect() as conn:
        from sqlalchemy import text

        v2_id = conn.execute(
            text("SELECT id FROM rubric_version WHERE slug = 'cw-demo' AND version = 2")
        ).scalar_one()
    page = client.get(f"/dashboard/trends?rubric_version_id={v2_id}&by=month").text
    assert 'data-across="joined"' in page
    # September's talk levels 4 and 2 become 3 and 2 on v2's scale: mean 2.50.
    assert _trend(page, "talk") == {"2026-09-01": "2.50", "2026-10-01": "1.00"}
    assert _trend(page, "objective_visible") == {"2026-09-01": "50%", "2026-10-01": "100%"}
    # Changed, and new: each starts in v2 (September, before it, is a gap, not a zero).
    assert _trend(page, "questions") == {"2026-09-01": "—", "2026-10-01": "5.00"}
    assert _trend(page, "reasoning") == {"2026-09-01": "—", "2026-10-01": "100%"}
    assert "Changed in v2: not comparable" in page
    assert "Continues v1 &#39;goal_posted&#39;: earlier visits are joined." in page
    # Each item's n is its own: the new item rests on October's one visit, marked small.
    section = page.split('data-trend="reasoning"', 1)[1].split("</section>", 1)[0]
    october = section.split('data-period="2026-10-01"', 1)[1].split("</tr>", 1)[0]
    assert 'data-measure="visits">1<' in october and "small" in october
    talk = page.split('data-trend="talk"', 1)[1].split("</section>", 1)[0]
    assert 'data-period="2026-09-01" class="small-group" data-small><th scope="row">' in talk
    alone = client.get(f"/dashboard/trends?rubric_version_id={v2_id}&by=month&across=0").text
    assert 'data-across="alone"' in alone
    assert _trend(alone, "talk") == {"2026-10-01": "1.00"}


def test_the_harmonised_long_export_maps_each_row_onto_the_latest_version(
    two_versions: None, admin: TestClient
) -> None:
    response = admin.get("/api/exports/observations.csv?kind=long&harmonised=1&rubric=cw-demo")
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    got = sorted(
        (
            r["rubric_version"],
            r["item_key"],
            r["value"],
            r["harmonised_version"],
            r["harmonised_item_key"],
            r["harmonised_value"],
        )
        for r in rows
    )
    assert got == sorted(
        [
            ("1", "talk", "4", "2", "talk", "3"),
            ("1", "talk", "2", "2", "talk", "2"),
            ("1", "goal_posted", "true", "2", "objective_visible", "true"),
            ("1", "goal_posted", "false", "2", "objective_visible", "false"),
            ("1", "questions", "3", "2", "", ""),
            ("1", "questions", "3", "2", "", ""),
            ("2", "talk", "1", "2", "talk", "1"),
            ("2", "objective_visible", "true", "2", "objective_visible", "true"),
            ("2", "questions", "5", "2", "questions", "5"),
            ("2", "reasoning", "true", "2", "reasoning", "true"),
        ]
    )
    plain = admin.get("/api/exports/observations.csv?kind=long&rubric=cw-demo").text
    assert "harmonised_value" not in plain.splitlines()[0]


def test_the_compare_page_shows_the_crosswalk(
    two_versions: None, client: TestClient, world: World
) -> None:
    page = client.get("/rubrics/cw-demo/compare?a=1&b=2").text  # the observer, signed in
    assert "Crosswalk from v1 to v2" in page
    assert 'data-link="talk" data-status="continues"' in page
    assert "4 → 3" in page
    assert 'data-link="objective_visible" data-status="continues"' in page
    assert "<code>goal_posted</code>" in page
    assert 'data-link="questions" data-status="changed"' in page
    assert 'data-link="reasoning" data-status="new"' in page
