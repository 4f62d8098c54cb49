"""A participation map built in the structured editor: added with its default talk types,
codes added and removed, teacher moves and grouping labels, errors beside their fields with
what was typed kept, and the round trip form -> draft -> YAML with the same content hash."""

import re

from fastapi.testclient import TestClient

from app.rubrics.loader import ParticipationItem, validate_text
from tests.helpers import World, login
from tests.rubrics.test_structured_builder import send, start

AT = "sections[0].items[1]"


def test_a_participation_map_is_built_in_the_form_and_round_trips(
    client: TestClient, world: World
) -> None:
    csrf = login(client, world.facilitator)
    page = start(client, csrf)
    status, page = send(client, page, "add-item:0:participation")
    assert status == 200 and "Added a participation map" in page
    assert page.count(f'name="{AT}.talk_types[3].label"') == 1  # four talk types to start
    assert f'name="{AT}.seats"' in page
    assert f'name="{AT}.evidence"' not in page  # a map takes no evidence note
    status, page = send(client, page, "add-code:0:1:teacher_moves")
    assert "Added a teacher move" in page
    status, page = send(client, page, "add-code:0:1:talk_types")
    status, page = send(client, page, "remove-code:0:1:talk_types:4")  # taken back
    assert f'name="{AT}.talk_types[4].key"' not in page
    status, page = send(client, page, "remove-code:0:1:talk_types:3")  # no short answers
    status, page = send(
        client,
        page,
        "save",
        **{
            "sections[0].title": "Talk",
            "sections[0].items[0].title": "A norm for talk is posted",
            f"{AT}.title": "Who talks",
            f"{AT}.key": "talk_map",
            f"{AT}.seats": "28",
            f"{AT}.per_row": "7",
            f"{AT}.teacher_moves[0].key": "presses",
            f"{AT}.teacher_moves[0].label": "Presses for reasoning",
        },
    )
    assert status == 303, re.findall(r'data-error-for="([^"]+)">([^<]+)<', page)
    download = client.get("/api/rubrics/team-talk/versions/1.yaml", headers={"X-CSRF-Token": csrf})
    parsed, errors = validate_text(download.text, display="download")
    assert errors == [] and parsed is not None
    [row] = [r for r in client.get("/api/rubrics").json()["rubrics"] if r["slug"] == "team-talk"]
    assert parsed.content_hash() == row["content_hash"]
    item = next(i for _s, i in parsed.items() if i.key == "talk_map")
    assert isinstance(item, ParticipationItem)
    assert [c.key for c in item.talk_types] == ["explains", "question", "builds"]
    assert [(c.key, c.label) for c in item.teacher_moves] == [("presses", "Presses for reasoning")]
    assert (item.seats, item.per_row, item.groups, item.evidence) == (28, 7, [], False)
    # The preview is the real capture page, with the map.
    preview = client.get("/rubrics/team-talk/versions/1/preview")
    assert preview.status_code == 200 and "data-participation-item" in preview.text


def test_participation_errors_land_beside_their_fields_and_keep_what_was_typed(
    client: TestClient, world: World
) -> None:
    csrf = login(client, world.admin)
    page = start(client, csrf)
    status, page = send(client, page, "add-item:0:participation")
    status, page = send(client, page, "add-code:0:1:groups")
    status, page = send(
        client,
        page,
        "save",
        **{
            "sections[0].title": "Talk",
            "sections[0].items[0].title": "A norm",
            f"{AT}.title": "Who talks",
            f"{AT}.seats": "500",
            f"{AT}.talk_types[1].key": "explains",  # the first one's key again
            f"{AT}.groups[0].key": "g1",
            f"{AT}.groups[0].label": "Table group 1",
        },
    )
    assert status == 422
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', page))
    assert errors == {f"{AT}.seats": "Input should be less than or equal to 80"}
    assert 'value="500"' in page and 'value="Table group 1"' in page
    # With the layout fixed, the codebook's own checks speak, each beside its field.
    status, page = send(client, page, "save", **{f"{AT}.seats": "30"})
    assert status == 422
    errors = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', page))
    assert set(errors) == {f"{AT}.talk_types[1].key", f"{AT}.groups_meaning"}, errors
    assert "listed twice" in errors[f"{AT}.talk_types[1].key"]
    assert "say what the grouping labels mean" in errors[f"{AT}.groups_meaning"]
    status, page = send(
        client,
        page,
        "save",
        **{f"{AT}.talk_types[1].key": "reasons", f"{AT}.groups_meaning": "Table groups of four."},
    )
    assert status == 303, re.findall(r'data-error-for="([^"]+)">([^<]+)<', page)
