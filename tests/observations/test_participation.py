"""Participation maps: the item kind in the format, the value's validation (a bad event is
rejected with a reason, alone in its batch), the lesson's figures against hand-computed
examples (the same file the capture page's node tests read), and the pages that show a map."""

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.observations import participation
from app.rubrics.loader import ParticipationItem, validate_text
from tests.helpers import World, login, make_observation
from tests.sync.conftest import item as sync_item
from tests.sync.conftest import push

EXAMPLES = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "participation-examples.json").read_text()
)
ITEM = ParticipationItem.model_validate(
    {
        "key": "talk_map",
        "title": "Who talks",
        "kind": "participation",
        **EXAMPLES["item"],
        "groups_meaning": "Table groups, as the district defines them",
    }
)


@pytest.mark.parametrize("example", EXAMPLES["examples"], ids=lambda e: e["name"][:40])
def test_the_figures_match_the_hand_computed_examples(example: dict[str, Any]) -> None:
    s = participation.summarise(ITEM, example["map"])
    e = example["expect"]
    assert (s.students, s.contributions, s.speakers, s.top_fifth) == (
        e["students"],
        e["contributions"],
        e["speakers"],
        e["top_fifth"],
    )
    assert s.per_marker == e["per_marker"]
    assert s.shades == e["shades"]  # as participation-core.js shades the markers
    for name in ("top_share", "top_fifth_share", "gini"):
        assert getattr(s, name) == (pytest.approx(e[name]) if e[name] is not None else None), name
    assert [n for _k, _l, n in s.by_talk] == e["by_talk"]
    assert [n for _k, _l, n in s.by_move] == e["by_move"]
    for got, want in zip(s.groups, e.get("groups", []), strict=False):
        assert (got.key, got.students, got.contributions) == (
            want["key"],
            want["students"],
            want["contributions"],
        )
        assert got.share_of_students == pytest.approx(want["share_of_students"])
        assert got.share_of_contributions == pytest.approx(want["share_of_contributions"])


def test_gini_edges() -> None:
    assert participation.gini([]) is None
    assert participation.gini([0, 0, 0]) is None
    assert participation.gini([7]) == 0
    assert participation.gini([1, 0]) == pytest.approx(0.5)
    assert participation.gini([5] + [0] * 23) == pytest.approx(23 / 24)


ITEM_YAML = """\
slug: talk
version: 1
title: Talk
description: A map.
status: draft
source:
  attribution: Us
sections:
  - key: s
    title: S
    items:
      - key: talk_map
        kind: participation
        title: Who talks
{extra}"""


def _problems(extra: str) -> list[str]:
    definition, errors = validate_text(ITEM_YAML.format(extra=extra), display="talk.yaml")
    assert definition is None
    return [str(e) for e in errors]


def test_the_format_validates_a_participation_item() -> None:
    good, errors = validate_text(
        ITEM_YAML.format(
            extra="        talk_types:\n          - {key: short, label: Short answer}\n"
        ),
        display="talk.yaml",
    )
    assert errors == [] and good is not None
    (item,) = [i for _s, i in good.items()]
    assert isinstance(item, ParticipationItem)
    assert (item.seats, item.per_row, item.groups, item.teacher_moves) == (24, 6, [], [])
    assert _problems("") == [
        "talk.yaml:12:9: sections[0].items[0].talk_types: required but missing"
    ]
    twice = _problems(
        "        talk_types:\n          - {key: short, label: Short}\n"
        "          - {key: short, label: Again}\n"
    )
    assert twice == [
        "talk.yaml:17:14: sections[0].items[0].talk_types[1].key: 'short' is listed twice"
    ], twice
    unexplained = _problems(
        "        talk_types:\n          - {key: short, label: Short}\n"
        "        groups:\n          - {key: g1, label: Group 1}\n"
    )
    assert len(unexplained) == 1 and "groups_meaning" in unexplained[0]
    assert "say what the grouping labels mean" in unexplained[0]
    too_many = _problems(
        "        talk_types:\n          - {key: short, label: Short}\n        seats: 500\n"
    )
    assert len(too_many) == 1 and too_many[0].startswith(
        "talk.yaml:17:9: sections[0].items[0].seats"
    )
    evidence = _problems(
        "        talk_types:\n          - {key: short, label: Short}\n        evidence: true\n"
    )
    assert len(evidence) == 1 and "takes no evidence note" in evidence[0]
    wrong_kind = _problems("        kind: participation\n")
    assert wrong_kind


def _talk(
    world: World, obs_id: uuid.UUID | None = None, base: int = 0, **map_: Any
) -> dict[str, Any]:
    value = {"markers": 4, "per_row": 4, "groups": {}, "events": [], **map_}
    return sync_item(
        world,
        obs_id,
        base,
        rubric_slug="who-talks",
        values={"talk_map": {"value": value}, "pattern": {"value": "Two voices"}},
    )


def test_a_bad_event_is_rejected_with_its_reason_and_the_rest_of_the_batch_goes_through(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    good = _talk(world, events=[{"marker": 1, "talk": "explains", "at": 30}])
    cases = {
        "not on the map": ({"marker": 9, "talk": "short", "at": 1}, "marker 9 is not on the map"),
        "unknown talk": (
            {"marker": 1, "talk": "shouts", "at": 1},
            "'shouts' is not one of the talk types",
        ),
        "teacher move as talk": (
            {"marker": 2, "talk": "revoices", "at": 1},
            "not one of the talk types",
        ),
        "student talk as move": (
            {"marker": 0, "talk": "short", "at": 1},
            "not one of the teacher moves",
        ),
        "negative second": ({"marker": 1, "talk": "short", "at": -5}, "greater than or equal to 0"),
        "extra field": ({"marker": 1, "talk": "short", "at": 1, "name": "Maya"}, "name"),
        "time as text": ({"marker": 1, "talk": "short", "at": "late"}, "valid integer"),
    }
    bad = {
        name: _talk(world, events=[{"marker": 1, "talk": "short", "at": 3}, event])
        for name, (event, _why) in cases.items()
    }
    labelled = _talk(world, groups={"1": "g1"})
    padded = _talk(world, groups={"007": "g1"})  # one way to write each marker
    noted = _talk(world)
    noted["payload"]["values"]["talk_map"]["evidence"] = "Maya spoke first"  # a name: refused
    results = push(client, token, good, *bad.values(), labelled, padded, noted)
    assert results[-2]["status"] == "rejected" and "groups.007" in results[-2]["reason"]
    assert results[-1]["status"] == "rejected"
    assert "takes no evidence note" in results[-1]["reason"]
    results = results[:-2]
    assert results[0]["status"] == "created", results[0]
    for result, (name, (_event, why)) in zip(results[1:-1], cases.items(), strict=True):
        assert result["status"] == "rejected", name
        text = json.dumps(result)
        assert why in text, (name, text)
    assert (
        results[1]["reason"] == "talk_map: Contribution 2: marker 9 is not on the map (it has 4)."
    )
    assert "Contribution 2" in json.dumps(results[1])
    # A malformed map is explained as a map, not as a number, text or yes/no it is not.
    assert "valid boolean" not in results[7]["reason"], results[7]
    assert results[-1]["status"] == "rejected"
    assert "has no grouping labels" in json.dumps(results[-1])
    assert sum(1 for r in results if r["status"] == "created") == 1


def test_a_map_goes_to_other_kinds_only_as_an_error(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    wrong = sync_item(world, values={"overall_discourse": {"value": {"markers": 3, "events": []}}})
    (result,) = push(client, token, wrong)
    assert result["status"] == "rejected"
    assert "Choose one of the levels" in json.dumps(result)
    plain = _talk(world)
    plain["payload"]["values"]["talk_map"] = {"value": 4}
    (result,) = push(client, token, plain)
    assert result["status"] == "rejected"
    assert "A participation map" in json.dumps(result)


def test_the_observation_page_shows_the_map_and_its_figures(
    client: TestClient, world: World, session: Session
) -> None:
    example = EXAMPLES["examples"][2]  # counts 3,1,0,0 and one teacher move: Gini 0.625
    obs = make_observation(
        session,
        world.observer,
        teacher=world.teacher,
        rubric=("who-talks", 1),
        values={"talk_map": {"value": example["map"]}},
    )
    login(client, world.observer)
    page = client.get(f"/observations/{obs.id}")
    assert page.status_code == 200
    assert "4 contributions; 2 of 4 students spoke at least once (50%)" in page.text
    assert 'data-measure="gini">0.62<' in page.text or 'data-measure="gini">0.63<' in page.text
    assert 'data-talk-count="explains">2<' in page.text
    assert 'data-move-count="revoices">1<' in page.text
    assert "contributions per student 3, 1, 0, 0" in page.text
    capture = client.get(f"/observations/{obs.id}/edit")
    assert capture.status_code == 200
    assert "data-participation" in capture.text and "/static/participation.js" in capture.text
    assert '"talk_types"' in capture.text


def test_the_plain_form_keeps_the_map_and_refuses_a_garbled_one(
    client: TestClient, world: World, session: Session
) -> None:
    example = EXAMPLES["examples"][1]
    obs = make_observation(
        session,
        world.observer,
        teacher=world.teacher,
        rubric=("who-talks", 1),
        status="draft",
        values={"talk_map": {"value": example["map"]}},
    )
    token = login(client, world.observer)
    page = client.get(f"/observations/{obs.id}/edit")
    kept = json.dumps(example["map"], separators=(",", ":"))
    assert kept.replace('"', "&#34;") in page.text or kept.replace('"', "&quot;") in page.text
    saved = client.post(
        f"/observations/{obs.id}",
        data={
            "csrf_token": token,
            "action": "draft",
            "item-talk_map": kept,
            "item-pattern": "One voice",
        },
    )
    assert saved.status_code == 303, saved.text
    session.expire_all()
    session.refresh(obs)
    assert obs.values["talk_map"]["value"]["events"] == example["map"]["events"]
    garbled = client.post(
        f"/observations/{obs.id}",
        data={
            "csrf_token": token,
            "action": "draft",
            "item-talk_map": "{nope",
            "item-pattern": "x",
        },
    )
    assert garbled.status_code == 422
    assert "The participation map could not be read" in garbled.text
    assert "{nope" in garbled.text


def test_the_teacher_sees_the_lesson_map_when_it_is_shared_and_only_then(
    app: Any, client: TestClient, world: World, session: Session
) -> None:
    example = EXAMPLES["examples"][2]
    obs = make_observation(
        session,
        world.observer,
        teacher=world.teacher,
        rubric=("who-talks", 1),
        values={
            "talk_map": {"value": example["map"]},
            "pattern": {"value": "Student 1 carried the talk.", "evidence": "private"},
        },
    )
    csrf = login(client, world.observer)
    card = client.get(f"/observations/{obs.id}").text
    # Offered, and checked by default: the map is the most useful thing to show a teacher.
    assert re.search(r'name="items" value="talk_map" checked', card), card
    teacher = TestClient(app, follow_redirects=False)

    def shared(items: list[str]) -> str:
        answer = client.post(
            f"/observations/{obs.id}/share", data={"csrf_token": csrf, "items": items}
        )
        assert answer.status_code == 303, answer.text
        page = client.get(answer.headers["location"]).text
        token = re.search(r'value="([^"]+/f/[^"]+)"', page).group(1).rsplit("/f/", 1)[1]  # type: ignore[union-attr]
        return teacher.get(f"/f/{token}").text

    with_map = shared(["talk_map", "pattern"])
    assert "4 contributions; 2 of 4 students spoke at least once (50%)" in with_map
    assert "contributions per student 3, 1, 0, 0" in with_map
    assert "Student 1 carried the talk." in with_map and "private" not in with_map
    without = shared(["pattern"])
    assert "contributions per student" not in without


def test_history_and_conflicts_see_a_change_inside_a_map() -> None:
    from app.observations.service import diff_snapshots
    from app.rubrics.loader import RubricDefinition

    definition = RubricDefinition.model_validate(
        {
            "slug": "t",
            "version": 1,
            "title": "T",
            "description": "D",
            "status": "draft",
            "source": {"attribution": "A"},
            "sections": [{"key": "s", "title": "S", "items": [ITEM.model_dump()]}],
        }
    )
    one = {
        "markers": 4,
        "per_row": 4,
        "groups": {},
        "events": [{"marker": 1, "talk": "short", "at": 5}],
    }
    other = {**one, "events": [{"marker": 2, "talk": "short", "at": 5}]}  # same totals
    later = {**one, "events": [{"marker": 1, "talk": "short", "at": 9}]}  # same counts

    def snap(value: dict[str, Any]) -> dict[str, Any]:
        return {"values": {"talk_map": {"value": value}}}

    [change] = diff_snapshots(snap(one), snap(other), definition)
    assert "per student: 1, 0, 0, 0" in change.old and "per student: 0, 1, 0, 0" in change.new
    [change] = diff_snapshots(snap(one), snap(later), definition)
    assert change.new.endswith(
        "(the same counts: the times, order or labels of contributions differ)"
    )
    assert diff_snapshots(snap(one), snap(dict(one)), definition) == []


def test_pages_round_halves_up_as_the_capture_page_does() -> None:
    from app.web import half_up

    assert half_up(0.125) == "0.13" and half_up(0.625) == "0.63"
    assert half_up(1 / 8, 0, percent=True) == "13%"
    assert half_up(None) == "—"


def test_a_contribution_logged_a_day_after_the_lesson_keeps_no_time() -> None:
    value = participation.ParticipationMap.model_validate(
        {"markers": 2, "events": [{"marker": 1, "talk": "short", "at": None}]}
    )
    assert value.events[0].at is None
    assert participation.problem(ITEM, value) is None
