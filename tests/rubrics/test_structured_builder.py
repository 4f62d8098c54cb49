"""The structured rubric editor, driven through its real form: a new rubric from its name,
items of every kind added, filled, moved and removed, levels added, errors shown beside their
fields with everything typed kept, the crosswalk beside each item, and the round trip form ->
draft -> YAML -> import giving the same content hash."""

import re
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.rubrics.loader import validate_text
from tests.helpers import World, login

BUILD = "/rubrics/team-talk/versions/1/build"


class _Form(HTMLParser):
    """The fields a browser would send from the builder's form (before any button)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._in_form = False
        self._textarea: str | None = None
        self._select: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and "data-builder" in a:
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and a.get("name"):
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self._textarea, self._text = a.get("name"), ""
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a.get("value", "")))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, self._text))
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False


def form(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Fields as httpx sends a form: each name with its values in order."""
    out: dict[str, list[str]] = {}
    for k, v in fields:
        out.setdefault(k, []).append(v)
    return out


def fields_of(page: str) -> list[tuple[str, str]]:
    import html

    parser = _Form()
    parser.feed(page)
    return [(k, html.unescape(v)) for k, v in parser.fields]


def send(
    client: TestClient, page: str, step: str, **changes: str
) -> tuple[int, str]:  # the answer's status and page
    fields = [(k, changes.pop(k, v)) for k, v in fields_of(page)]
    fields += list(changes.items())  # fields the page did not have yet
    answer = client.post(BUILD, data=form([*fields, ("step", step)]))
    if answer.status_code == 303:
        return 303, client.get(answer.headers["location"]).text
    return answer.status_code, answer.text


def start(client: TestClient, csrf: str) -> str:
    made = client.post(
        "/rubrics/new",
        data={
            "csrf_token": csrf,
            "slug": "team-talk",
            "title": "Team talk",
            "description": "How students talk in teams.",
            "attribution": "Written by the district's math team.",
        },
    )
    assert made.status_code == 303, made.text
    assert made.headers["location"] == BUILD
    return client.get(BUILD).text


def keys_in_order(page: str) -> list[str]:
    return re.findall(r'<fieldset class="builder-item" data-item="([^"]*)"', page)


@pytest.mark.parametrize("who", ["admin", "facilitator"])
def test_a_rubric_built_in_the_form_round_trips_through_yaml(
    client: TestClient, world: World, who: str
) -> None:
    csrf = login(client, getattr(world, who))
    page = start(client, csrf)
    assert keys_in_order(page) == ["check_1"]
    status, page = send(client, page, "add-item:0:scale")
    assert status == 200 and "Not saved yet" in page
    assert keys_in_order(page) == ["check_1", "scale_1"]
    status, page = send(client, page, "add-level:0:1")
    assert page.count('name="sections[0].items[1].levels[2].value"') == 1
    status, page = send(client, page, "add-item:0:count")
    status, page = send(client, page, "add-item:0:text")
    status, page = send(client, page, "up:0:1")  # the scale first
    assert keys_in_order(page) == ["scale_1", "check_1", "count_1", "text_1"]
    status, page = send(client, page, "remove:0:3")
    assert keys_in_order(page) == ["scale_1", "check_1", "count_1"]
    status, page = send(client, page, "add-section")
    status, page = send(client, page, "down:0:2")  # the tally into the next section
    assert keys_in_order(page) == ["scale_1", "check_1", "count_1", "check_2"]
    filled = {
        "sections[0].title": "Talk",
        "sections[0].items[0].title": "Students explain their thinking",
        "sections[0].items[0].key": "explaining",
        "sections[0].items[0].prompt": "Quote a student.",
        "sections[0].items[1].title": "A norm for talk is posted",
        "sections[1].title": "Questions",
        "sections[1].items[0].title": "Questions students asked",
        "sections[1].items[0].max": "30",
        "sections[1].items[1].title": "A student asked why",
    }
    for k, (label, descriptor) in enumerate(
        [("Rarely", "Few explain."), ("Often", "Many explain."), ("Always", "All explain.")]
    ):
        filled[f"sections[0].items[0].levels[{k}].label"] = label
        filled[f"sections[0].items[0].levels[{k}].descriptor"] = descriptor
    status, page = send(client, page, "save", **filled)
    assert status == 303, page
    assert "Saved the draft." in page

    download = client.get("/api/rubrics/team-talk/versions/1.yaml", headers={"X-CSRF-Token": csrf})
    assert download.status_code == 200
    parsed, errors = validate_text(download.text, display="download")
    assert errors == [] and parsed is not None
    stored = client.get("/api/rubrics").json()["rubrics"]
    [row] = [r for r in stored if r["slug"] == "team-talk"]
    assert parsed.content_hash() == row["content_hash"]
    assert [(i.key, i.kind) for _s, i in parsed.items()] == [
        ("explaining", "scale"),
        ("check_1", "check"),
        ("count_1", "count"),
        ("check_2", "check"),
    ]
    scale = next(i for _s, i in parsed.items() if i.key == "explaining")
    assert [lv.label for lv in scale.levels] == ["Rarely", "Often", "Always"]  # type: ignore[union-attr]
    # The builder shows the saved draft again, as saved.
    again = client.get(BUILD).text
    assert 'value="Students explain their thinking"' in again
    if who == "facilitator":  # drafts, never publishes
        assert client.get("/rubrics/team-talk/versions/1/publish").status_code == 403
        assert "A district admin publishes it." in client.get("/rubrics/team-talk/versions/1").text


def test_every_problem_is_shown_beside_its_field_and_nothing_typed_is_lost(
    client: TestClient, world: World
) -> None:
    csrf = login(client, world.admin)
    page = start(client, csrf)
    status, page = send(client, page, "add-item:0:scale")
    status, page = send(
        client,
        page,
        "save",
        **{
            "sections[0].items[0].title": "",  # required
            "sections[0].items[0].key": "Bad Key",
            "sections[0].items[1].title": "Talk",
            "sections[0].items[1].levels[0].label": "Low",
            "sections[0].items[1].levels[0].descriptor": "A descriptor I wrote carefully.",
            "sections[0].items[1].levels[1].value": "two",
            "sections[0].items[1].levels[1].label": "High",
            "sections[0].items[1].levels[1].descriptor": "",
        },
    )
    assert status == 422
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', page))
    assert set(errors) == {
        "sections[0].items[0].title",
        "sections[0].items[0].key",
        "sections[0].items[1].levels[1].value",
        "sections[0].items[1].levels[1].descriptor",
    }, errors
    assert errors["sections[0].items[0].title"] == "must not be empty"
    assert "valid integer" in errors["sections[0].items[1].levels[1].value"]
    assert 'aria-invalid="true"' in page
    # The banner at the top links to each field with a problem (far down a tablet's page).
    assert 'href="#sections[0].items[1].levels[1].value"' in page
    kept = dict(fields_of(page))
    assert kept["sections[0].items[0].key"] == "Bad Key"
    assert kept["sections[0].items[1].levels[0].descriptor"] == "A descriptor I wrote carefully."
    assert kept["sections[0].items[1].levels[1].value"] == "two"
    # Nothing was saved: the draft is as it was made.
    assert "Bad Key" not in client.get("/api/rubrics/team-talk/versions/1.yaml").text


def test_a_new_rubric_needs_its_name_and_a_free_slug(client: TestClient, world: World) -> None:
    csrf = login(client, world.admin)
    bad = client.post(
        "/rubrics/new",
        data={
            "csrf_token": csrf,
            "slug": "Team Talk",
            "title": "T",
            "description": "D",
            "attribution": "",
        },
    )
    assert bad.status_code == 422
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', bad.text))
    assert set(errors) == {"slug", "attribution"}
    assert 'value="Team Talk"' in bad.text  # kept as typed
    taken = client.post(
        "/rubrics/new",
        data={
            "csrf_token": csrf,
            "slug": "math-talk-community",
            "title": "T",
            "description": "D",
            "attribution": "A",
        },
    )
    assert taken.status_code == 422 and "is already a rubric" in taken.text


def test_a_new_versions_crosswalk_is_edited_beside_each_item(
    app: FastAPI, client: TestClient, world: World
) -> None:
    csrf = login(client, world.admin)
    made = client.post(
        "/rubrics/math-talk-community/versions/1/new-version", data={"csrf_token": csrf}
    )
    assert made.status_code == 303
    build = "/rubrics/math-talk-community/versions/2/build"
    page = client.get(build).text
    assert "relates to version 1" in page
    first = re.search(r'name="(sections\[0\]\.items\[0\])\.cw_status"', page)
    assert first
    item = first.group(1)
    fields = [(k, v) for k, v in fields_of(page)]
    changed = dict(fields)
    changed[f"{item}.cw_levels"] = "9:1"  # no level 9 in version 1
    answer = client.post(build, data=form([*changed.items(), ("step", "save")]))
    assert answer.status_code == 422
    found = re.findall(r'data-error-for="([^"]+)">([^<]+)<', answer.text)
    assert {name for name, _m in found} == {f"{item}.cw_levels"}
    messages = [m.replace("&#39;", "'") for _n, m in found]
    assert "9 is not a level of 'questioning' in version 1" in messages
    assert "map every old level of 'questioning': 0, 1, 2, 3 missing" in messages
    changed[f"{item}.cw_levels"] = ""
    changed[f"{item}.cw_status"] = "changed"
    saved = client.post(build, data=form([*changed.items(), ("step", "save")]))
    assert saved.status_code == 303, saved.text
    content = client.get("/api/rubrics/math-talk-community/versions/2").json()
    statuses = [e["status"] for e in content["crosswalk"]["items"]]
    assert statuses[0] == "changed" and set(statuses[1:]) == {"continues"}


HOSTILE = [
    ({"sections": "foo"}, "save"),
    ({"sections.foo": "x"}, "save"),
    ({"sections[1]": "x"}, "save"),
    ({"sections[1]": "x"}, "add-section"),
    ({"crosswalk": "x"}, "save"),
    (
        {
            "sections[0].items[0].key.a": "1",
            "sections[0].items[0].cw_status": "new",
            "crosswalk.from_version": "1",
        },
        "save",
    ),
    ({"sections[0].items[0].key[0]": "x"}, "save"),
    ({"sections[0].items": "x"}, "add-item:0:check"),
    ({"sections[0].items[1]": "x"}, "save"),
    ({"sections[0].items[1]": "x"}, "up:0:1"),
    ({"sections[0].items[0].levels": "x"}, "add-level:0:0"),
    ({"sections[0].items[0].levels[0]": "x"}, "add-level:0:0"),
    ({"source": "x"}, "save"),
    ({}, "up-section:²"),
    ({}, "up:0:²"),
    ({}, "up-section:" + "9" * 5000),
    ({}, "remove-level:0:0:" + "9" * 5000),
    ({"source" + ".a" * 3000: "x"}, "save"),
    ({"crosswalk.from_version": "99999999999999999999"}, "save"),
    (
        {"sections[0].items[0].kind": "scale", "sections[0].items[0].levels[0].value": "9" * 30},
        "save",
    ),
    ({"sections[0].items[0].kind": "count", "sections[0].items[0].max": "9" * 30}, "save"),
]


@pytest.mark.parametrize(("extra", "step"), HOSTILE)
def test_a_hand_made_build_form_never_breaks_the_server(
    client: TestClient, world: World, extra: dict[str, str], step: str
) -> None:
    csrf = login(client, world.admin)
    page = start(client, csrf)
    fields = [*fields_of(page), *extra.items(), ("step", step)]
    answer = client.post(BUILD, data=form(fields))
    assert answer.status_code in (200, 303, 400, 422), answer.text[:300]
    if answer.status_code in (200, 422):
        assert "<form" in answer.text  # the form comes back, never an error page


def test_a_large_rubric_fits_in_one_form(client: TestClient, world: World) -> None:
    """About four fields per level: 60 scale items of 5 levels is some 1,500 fields."""
    csrf = login(client, world.admin)
    page = start(client, csrf)
    fields = [(k, v) for k, v in fields_of(page) if not k.startswith("sections[")]
    fields += [("sections[0].key", "main"), ("sections[0].title", "Main")]
    for i in range(60):
        at = f"sections[0].items[{i}]"
        fields += [(f"{at}.kind", "scale"), (f"{at}.key", f"item_{i}"), (f"{at}.title", "T")]
        for k in range(5):
            fields += [
                (f"{at}.levels[{k}].value", str(k + 1)),
                (f"{at}.levels[{k}].label", f"L{k}"),
                (f"{at}.levels[{k}].descriptor", "D"),
            ]
    assert len(fields) > 1000
    answer = client.post(BUILD, data=form([*fields, ("step", "save")]))
    assert answer.status_code == 303, answer.text[:500]
