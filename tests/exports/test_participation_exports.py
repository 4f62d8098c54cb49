"""Participation maps in the exports: the long and wide formats give a map's number of student
contributions (the wide format its figures too), and the participation events data set has
one row per logged contribution. Checked row by row against the hand-computed examples in
tests/fixtures/participation-examples.json, with the same scope, filters and formula safety
as the observation exports."""

import csv
import io
import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import frictionless
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.observations.models import Observation
from app.rubrics import service as rubric_service
from app.rubrics.loader import RubricDefinition
from tests.helpers import World, login, make_observation

EXAMPLES = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "participation-examples.json").read_text()
)["examples"]
NONE_SPOKE = EXAMPLES[0]["map"]  # 4 markers, no contributions
ONE_VOICE = EXAMPLES[1]["map"]  # marker 2 made all 5: Gini 3/4
GINI_0625 = EXAMPLES[2]["map"]  # counts 3,1,0,0 and a teacher move: Gini 0.625
EVEN = EXAMPLES[3]["map"]  # five students, two each: Gini 0
GROUPED = EXAMPLES[4]["map"]  # ten students, markers 1 and 2 labelled g1: Gini 0.7

WHO_TALKS = "rubric=who-talks:1"
EVENT_HEADER = (
    "observation_id,revision,status,observed_at,submitted_at,school,teacher,teacher_district_id,"
    "observer,grade,subject,rubric_slug,rubric_version,observed_date,item_key,map_markers,sequence,marker,"
    "speaker,talk_type,talk_label,second,minute,group_key"
)
# The wide format's columns of the who-talks item talk_map, after the observation's own.
MAP_COLUMNS = [
    "talk_map",
    "talk_map__not_observed",
    "talk_map__evidence",
    "talk_map__students",
    "talk_map__speakers",
    "talk_map__top3_share",
    "talk_map__top20_share",
    "talk_map__gini",
    "talk_map__talk_explains",
    "talk_map__talk_question",
    "talk_map__talk_builds",
    "talk_map__talk_short",
    "talk_map__move_presses",
    "talk_map__move_invites",
    "talk_map__move_revoices",
]


def _at(day: int) -> datetime:
    return datetime(2026, 11, day, 15, 30, tzinfo=UTC)


@pytest.fixture
def maps(ready: World, session: Session) -> dict[str, Observation]:
    """Who-talks observations: three Lincoln maps (one with nobody speaking), one without a
    map, one at Roosevelt by its principal, and a Lincoln draft."""
    assert ready.roosevelt.id is not None

    def talk(value: dict[str, Any] | None, pattern: str) -> dict[str, Any]:
        values: dict[str, Any] = {"pattern": {"value": pattern}}
        if value is not None:
            values["talk_map"] = {"value": value}
        return values

    return {
        "mapped": make_observation(
            session,
            ready.observer,
            teacher=ready.teacher,
            rubric=("who-talks", 1),
            values=talk(GINI_0625, "=Two voices"),
            observed_at=_at(2),
        ),
        "silent": make_observation(
            session,
            ready.observer,
            teacher=ready.teacher,
            rubric=("who-talks", 1),
            values=talk(NONE_SPOKE, "Quiet"),
            observed_at=_at(3),
        ),
        "empty": make_observation(
            session,
            ready.observer,
            teacher=ready.teacher,
            rubric=("who-talks", 1),
            values=talk(None, "No map today"),
            observed_at=_at(4),
        ),
        "far": make_observation(
            session,
            ready.other_principal,
            teacher_name="=Far Teacher",
            school_id=ready.roosevelt.id,
            rubric=("who-talks", 1),
            values=talk(ONE_VOICE, "One voice"),
            observed_at=_at(5),
            grade="7",
        ),
        "draft": make_observation(
            session,
            ready.observer,
            teacher=ready.teacher,
            rubric=("who-talks", 1),
            values=talk(EVEN, "Even"),
            observed_at=_at(6),
            status="draft",
        ),
    }


def _get(client: TestClient, url: str, **kw: Any) -> Any:
    response = client.get(url, **kw)
    assert response.status_code == 200, response.text
    return response


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def _head(obs: Observation, world: World) -> list[str]:
    """The observation's first 13 columns, as every observation data set begins."""
    far = obs.school_id == world.roosevelt.id
    return [
        str(obs.id),
        "1",
        obs.status.value,
        obs.observed_at.astimezone(UTC).isoformat(),
        obs.submitted_at.isoformat() if obs.submitted_at else "",
        "Roosevelt Middle" if far else "Lincoln Elementary",
        "'=Far Teacher" if far else "Ana García",
        "",
        "Principal Person" if far else "Observer Person",
        "7" if far else "",
        "",
        "who-talks",
        "1",
    ]


def _token(client: TestClient, csrf: str) -> str:
    raw = re.search(
        r"data-new-token>(wt_[^<]+)<",
        client.post("/account/tokens", data={"csrf_token": csrf, "name": "R"}).text,
    )
    assert raw is not None
    return raw.group(1)


def test_long_export_gives_a_maps_student_contributions(
    client: TestClient, world: World, maps: dict[str, Observation]
) -> None:
    login(client, world.admin)
    rows = _rows(
        _get(client, f"/exports/download?dataset=observations_long&format=csv&{WHO_TALKS}").text
    )
    header = rows[0]
    assert header[13:21] == [
        "section",
        "item_key",
        "item_title",
        "item_kind",
        "value",
        "level_label",
        "not_observed",
        "evidence",
    ]
    got = [(r[0], r[13:21]) for r in rows[1:]]
    item = ["Who talks", "talk_map", "Participation map", "participation"]
    text = ["Who talks", "pattern", "What the map shows", "text"]
    assert got == [
        (str(maps["mapped"].id), [*item, "4", "", "false", ""]),  # the teacher's move not counted
        (str(maps["mapped"].id), [*text, "'=Two voices", "", "false", ""]),
        (str(maps["silent"].id), [*item, "0", "", "false", ""]),  # laid out, nobody spoke
        (str(maps["silent"].id), [*text, "Quiet", "", "false", ""]),
        (str(maps["empty"].id), [*item, "", "", "false", ""]),  # no map: empty, not 0
        (str(maps["empty"].id), [*text, "No map today", "", "false", ""]),
        (str(maps["far"].id), [*item, "5", "", "false", ""]),
        (str(maps["far"].id), [*text, "One voice", "", "false", ""]),
        (str(maps["draft"].id), [*item, "10", "", "false", ""]),
        (str(maps["draft"].id), [*text, "Even", "", "false", ""]),
    ]
    assert rows[1][:13] == _head(maps["mapped"], world)
    assert {len(r) for r in rows} == {len(header)}


def test_wide_export_gives_each_lessons_figures(
    client: TestClient, world: World, maps: dict[str, Observation]
) -> None:
    login(client, world.admin)
    rows = _rows(
        _get(client, f"/exports/download?dataset=observations_wide&format=csv&{WHO_TALKS}").text
    )
    header = rows[0]
    assert header[15:33] == [
        *MAP_COLUMNS,
        "pattern",
        "pattern__not_observed",
        "pattern__evidence",
    ]
    assert header[13:15] == ["tags", "overall_notes"] and header[33] == "observed_date"
    by_id = {r[0]: r for r in rows[1:]}
    assert [r[0] for r in rows[1:]] == [
        str(maps[k].id) for k in ("mapped", "silent", "empty", "far", "draft")
    ]
    # value, not observed, evidence; students, speakers, top 3, top 20%, Gini;
    # talk explains, question, builds, short; moves presses, invites, revoices
    blank = ["", "false", ""]
    expected = {
        "mapped": [
            *["4", "false", "", "4", "2", "1.0", "0.75", "0.625"],
            *["2", "1", "0", "1", "0", "0", "1"],
        ],
        "silent": [*["0", "false", "", "4", "0", "", "", ""], *["0"] * 7],
        "empty": [*blank, *[""] * 12],
        "far": [
            *["5", "false", "", "4", "1", "1.0", "1.0", "0.75"],
            *["1", "1", "0", "3", "0", "0", "0"],
        ],
        "draft": [
            *["10", "false", "", "5", "5", "0.6", "0.2", "0.0"],
            *["0", "0", "5", "5", "0", "0", "0"],
        ],
    }
    for name, cells in expected.items():
        row = by_id[str(maps[name].id)]
        assert row[15:30] == cells, name
        assert row[:13] == _head(maps[name], world), name
    assert by_id[str(maps["mapped"].id)][30:33] == ["'=Two voices", "false", ""]
    assert by_id[str(maps["mapped"].id)][33] == "2026-11-02"
    assert {len(r) for r in rows} == {len(header)}


def test_shares_are_rounded_to_four_places(
    client: TestClient, world: World, ready: World, session: Session
) -> None:
    # Ten students, counts 3,0,1,1,1,0,...: the top 3 made 5 of 6, the top 20% (2) 4 of 6.
    grouped = {**GROUPED, "groups": {}}
    make_observation(
        session,
        world.observer,
        teacher=world.teacher,
        rubric=("who-talks", 1),
        values={"talk_map": {"value": grouped}},
    )
    login(client, world.admin)
    row = next(
        csv.DictReader(
            io.StringIO(
                _get(
                    client, f"/exports/download?dataset=observations_wide&format=csv&{WHO_TALKS}"
                ).text
            )
        )
    )
    assert (row["talk_map__top3_share"], row["talk_map__top20_share"]) == ("0.8333", "0.6667")
    assert (row["talk_map__gini"], row["talk_map__speakers"]) == ("0.7", "4")


def _event(
    obs: Observation,
    world: World,
    seq: int,
    marker: int,
    talk: str,
    label: str,
    at: int,
    group: str = "",
) -> list[str]:
    date = obs.observed_at.astimezone(UTC).date().isoformat()  # 15:30 UTC is that day in Chicago
    speaker = "teacher" if marker == 0 else "student"
    return [
        *_head(obs, world),
        date,
        "talk_map",
        str(obs.values["talk_map"]["value"]["markers"]),  # the map's size, silent ones included
        str(seq),
        str(marker),
        speaker,
        talk,
        label,
        str(at),
        str(at // 60),
        group,
    ]


def test_events_one_row_per_contribution(
    client: TestClient, world: World, maps: dict[str, Observation]
) -> None:
    login(client, world.admin)
    text = _get(client, "/exports/download?dataset=participation_events&format=csv").text
    assert text.startswith(EVENT_HEADER + "\r\n")
    rows = _rows(text)[1:]
    mapped, far, draft = maps["mapped"], maps["far"], maps["draft"]
    short, explains, question = "Short answer", "Explains reasoning", "Asks a question"
    expected = [
        _event(mapped, world, 1, 1, "explains", explains, 5),
        _event(mapped, world, 2, 0, "revoices", "Revoices", 9),
        _event(mapped, world, 3, 1, "explains", explains, 61),
        _event(mapped, world, 4, 2, "short", short, 75),
        _event(mapped, world, 5, 1, "question", question, 130),
        # the silent map and the observation without one give no rows
        _event(far, world, 1, 2, "short", short, 10),
        _event(far, world, 2, 2, "short", short, 20),
        _event(far, world, 3, 2, "explains", explains, 30),
        _event(far, world, 4, 2, "short", short, 40),
        _event(far, world, 5, 2, "question", question, 50),
        *(
            _event(draft, world, i + 1, i % 5 + 1, talk, label, i + 1)
            for i, (talk, label) in enumerate(
                [("builds", "Builds on a peer")] * 5 + [("short", short)] * 5
            )
        ),
    ]
    assert len(rows) == len(expected) == 20
    for got, want in zip(rows, expected, strict=True):
        assert got == want
    # The student rows of a map add up to its value in the long and wide formats.
    assert sum(1 for r in rows if r[0] == str(mapped.id) and r[18] == "student") == 4


def test_events_a_minute_is_the_whole_minutes_of_the_second(
    client: TestClient, world: World, session: Session, ready: World
) -> None:
    make_observation(
        session,
        world.observer,
        teacher=world.teacher,
        rubric=("who-talks", 1),
        values={
            "talk_map": {
                "value": {
                    "markers": 2,
                    "per_row": 2,
                    "groups": {},
                    "events": [
                        {"marker": 1, "talk": "short", "at": 0},
                        {"marker": 1, "talk": "short", "at": 59},
                        {"marker": 2, "talk": "short", "at": 60},
                        {"marker": 2, "talk": "short", "at": 3599},
                    ],
                }
            }
        },
    )
    login(client, world.admin)
    rows = list(
        csv.DictReader(
            io.StringIO(
                _get(client, "/exports/download?dataset=participation_events&format=csv").text
            )
        )
    )
    assert [(r["second"], r["minute"]) for r in rows] == [
        ("0", "0"),
        ("59", "0"),
        ("60", "1"),
        ("3599", "59"),
    ]


def _grouped_rubric(session: Session, world: World) -> None:
    """A district rubric whose map uses grouping labels, with a talk label that would start a
    spreadsheet formula."""
    item = {
        "key": "talk_map",
        "kind": "participation",
        "title": "Who talks",
        "talk_types": [
            {"key": "explains", "label": "Explains reasoning"},
            {"key": "question", "label": "Asks a question"},
            {"key": "builds", "label": "Builds on a peer"},
            {"key": "short", "label": "-Short answer"},
        ],
        "groups": [{"key": "g1", "label": "Group 1"}],
        "groups_meaning": "Table groups, as the district defines them",
    }
    definition = RubricDefinition.model_validate(
        {
            "slug": "table-talk",
            "version": 1,
            "title": "Table talk",
            "description": "A map.",
            "status": "draft",
            "source": {"attribution": "Us"},
            "sections": [{"key": "s", "title": "S", "items": [item]}],
        }
    )
    rubric_service.create_draft(session=session, user=world.admin, definition=definition)
    rubric_service.publish(session=session, user=world.admin, slug="table-talk", version=1)
    session.commit()


def test_events_carry_grouping_labels_and_are_formula_safe(
    client: TestClient, app: FastAPI, world: World, session: Session, ready: World
) -> None:
    _grouped_rubric(session, world)
    make_observation(
        session,
        world.observer,
        teacher_name="@Teacher",
        school_id=world.lincoln.id,
        rubric=("table-talk", 1),
        values={"talk_map": {"value": GROUPED}},
    )
    csrf = login(client, world.admin)
    safe = list(
        csv.DictReader(
            io.StringIO(
                _get(client, "/exports/download?dataset=participation_events&format=csv").text
            )
        )
    )
    assert [(r["marker"], r["talk_type"], r["talk_label"], r["group_key"]) for r in safe] == [
        ("1", "explains", "Explains reasoning", "g1"),
        ("1", "explains", "Explains reasoning", "g1"),
        ("1", "question", "Asks a question", "g1"),
        ("3", "short", "'-Short answer", ""),
        ("4", "short", "'-Short answer", ""),
        ("5", "builds", "Builds on a peer", ""),
    ]
    assert {r["teacher"] for r in safe} == {"'@Teacher"}
    assert {r["rubric_slug"] for r in safe} == {"table-talk"}
    # Scripts asking for the exact text get it.
    script = TestClient(app)
    exact = script.get(
        "/api/exports/observations.csv?kind=events&raw=1",
        headers={"Authorization": f"Bearer {_token(client, csrf)}"},
    )
    assert exact.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exact.text)))
    assert rows[3]["talk_label"] == "-Short answer" and rows[0]["teacher"] == "@Teacher"


def test_events_for_a_principal_are_their_schools_submitted_maps_only(
    client: TestClient, app: FastAPI, world: World, maps: dict[str, Observation]
) -> None:
    csrf = login(client, world.principal)
    mine = {str(maps["mapped"].id)}
    page = _get(
        client,
        f"/exports/download?dataset=participation_events&format=csv&school_id={world.roosevelt.id}",
    ).text
    rows = _rows(page)[1:]
    assert len(rows) == 5 and {r[0] for r in rows} == mine  # not the draft, not Roosevelt
    assert "Roosevelt" not in page
    api = TestClient(app).get(
        f"/api/exports/observations.csv?kind=events&school_id={world.roosevelt.id}",
        headers={"Authorization": f"Bearer {_token(client, csrf)}"},
    )
    assert api.status_code == 200 and {r[0] for r in _rows(api.text)[1:]} == mine
    assert "data-rows>5<" in _get(client, "/exports?dataset=participation_events").text
    other = TestClient(app, follow_redirects=False)
    login(other, world.other_principal)
    theirs = _rows(_get(other, "/exports/download?dataset=participation_events&format=csv").text)[
        1:
    ]
    assert {r[0] for r in theirs} == {str(maps["far"].id)} and len(theirs) == 5


@pytest.mark.parametrize("role", ["observer", "facilitator"])
def test_events_are_not_for_observers_or_facilitators(
    client: TestClient, world: World, maps: dict[str, Observation], role: str
) -> None:
    login(client, getattr(world, role))
    assert client.get("/exports?dataset=participation_events").status_code == 403
    assert (
        client.get("/exports/download?dataset=participation_events&format=csv").status_code == 403
    )
    assert client.get("/api/exports/observations.csv?kind=events").status_code == 403


def test_events_follow_the_filters_and_the_page_counts_them(
    client: TestClient, world: World, session: Session, maps: dict[str, Observation]
) -> None:
    make_observation(  # a rubric without a map: no events
        session,
        world.observer,
        teacher=world.teacher,
        rubric=("math-talk-community", 1),
        values={"questioning": {"value": 2}},
        observed_at=_at(3),
    )
    login(client, world.admin)

    def ids(query: str) -> list[str]:
        text = _get(
            client, f"/exports/download?dataset=participation_events&format=csv&{query}"
        ).text
        return [r[0] for r in _rows(text)[1:]]

    mapped, far, draft = (str(maps[k].id) for k in ("mapped", "far", "draft"))
    assert ids(f"observer_id={world.observer.id}") == [mapped] * 5 + [draft] * 10
    assert ids("status=submitted") == [mapped] * 5 + [far] * 5
    assert ids("from=2026-11-05&to=2026-11-05") == [far] * 5
    assert ids(f"school_id={world.roosevelt.id}") == [far] * 5
    assert ids("rubric=math-talk-community:1") == []
    assert "data-rows>20<" in _get(client, "/exports?dataset=participation_events").text
    assert (
        "data-rows>15<"
        in _get(
            client, f"/exports?dataset=participation_events&observer_id={world.observer.id}"
        ).text
    )
    assert "data-events-hint" in _get(client, "/exports?dataset=participation_events").text
    assert client.get("/api/exports/observations.csv?kind=maps").status_code == 422


def test_events_and_wide_round_trip_through_csv_and_pandas(
    client: TestClient, world: World, maps: dict[str, Observation]
) -> None:
    login(client, world.admin)
    events = _get(client, "/exports/download?dataset=participation_events&format=csv").content
    frame = pd.read_csv(io.BytesIO(events), keep_default_na=False)
    assert len(frame) == 20
    for column in ("marker", "sequence", "second", "minute", "rubric_version"):
        assert frame[column].dtype.kind == "i", column
    assert frame.groupby("speaker").size().to_dict() == {"student": 19, "teacher": 1}
    assert frame.loc[frame["speaker"] == "teacher", "talk_type"].tolist() == ["revoices"]
    assert (frame["minute"] == frame["second"] // 60).all()
    rows = list(csv.DictReader(io.StringIO(events.decode("utf-8"), newline="")))
    assert [r["talk_type"] for r in rows[:5]] == [
        "explains",
        "revoices",
        "explains",
        "short",
        "question",
    ]
    wide = pd.read_csv(
        io.BytesIO(
            _get(
                client, f"/exports/download?dataset=observations_wide&format=csv&{WHO_TALKS}"
            ).content
        )
    )
    assert wide["talk_map__gini"].dtype.kind == "f"
    gini = wide["talk_map__gini"].tolist()
    assert gini[0] == 0.625 and gini[3] == 0.75 and gini[4] == 0.0
    assert pd.isna(gini[1]) and pd.isna(gini[2])  # nobody spoke; no map
    assert wide["talk_map"].tolist()[:2] == [4.0, 0.0] and pd.isna(wide["talk_map"][2])


@pytest.mark.parametrize(
    "query",
    [
        "dataset=participation_events",
        f"dataset=observations_wide&{WHO_TALKS}",
        f"dataset=observations_long&{WHO_TALKS}",
    ],
)
def test_zips_with_maps_are_valid_frictionless_data_packages(
    client: TestClient,
    world: World,
    maps: dict[str, Observation],
    tmp_path: Path,
    query: str,
) -> None:
    login(client, world.admin)
    archive = zipfile.ZipFile(
        io.BytesIO(_get(client, f"/exports/download?{query}&format=zip").content)
    )
    archive.extractall(tmp_path)
    names = set(archive.namelist())
    csv_name = next(n for n in names if n.startswith("walkthrough-"))
    assert names == {
        csv_name,
        "codebook.csv",
        "datapackage.json",
        "rubric_items.csv",
        "participation_codes.csv",
    }
    codes = list(csv.DictReader(io.StringIO(archive.read("participation_codes.csv").decode())))
    assert [(c["code_list"], c["code_key"]) for c in codes] == [
        ("talk_type", "explains"),
        ("talk_type", "question"),
        ("talk_type", "builds"),
        ("talk_type", "short"),
        ("teacher_move", "presses"),
        ("teacher_move", "invites"),
        ("teacher_move", "revoices"),
    ]
    assert codes[0]["code_label"] == "Explains reasoning"
    assert codes[0]["code_description"].startswith("Says why or how")
    report = frictionless.validate(str(tmp_path / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    package = json.loads(archive.read("datapackage.json"))
    fields = {f["name"]: f for f in package["resources"][0]["schema"]["fields"]}
    header = archive.read(csv_name).decode().splitlines()[0].split(",")
    assert list(fields) == header  # the codebook describes every column, in order
    codebook = {
        r["column"]: r for r in csv.DictReader(io.StringIO(archive.read("codebook.csv").decode()))
    }
    assert list(codebook) == header
    if "events" in query:
        assert csv_name.startswith("walkthrough-participation-events-")
        assert package["name"] == "walkthrough-participation-events"
        assert package["resources"][0]["name"] == "participation-events"
        assert fields["marker"]["type"] == "integer" and fields["second"]["type"] == "integer"
        assert "never named" in codebook["marker"]["meaning"]
        assert [v["slug"] for v in package["rubric_versions"]] == ["who-talks"]
    if "wide" in query:
        assert fields["talk_map"]["type"] == "integer"
        assert "student contributions" in codebook["talk_map"]["meaning"]
        assert fields["talk_map__gini"]["type"] == "number"
        assert fields["talk_map__top3_share"]["type"] == "number"
        assert fields["talk_map__talk_builds"]["type"] == "integer"
        assert "Builds on a peer" in codebook["talk_map__talk_builds"]["meaning"]
        assert "Revoices" in codebook["talk_map__move_revoices"]["meaning"]
    if "long" in query:
        assert (
            "participation map the number of student contributions"
            in (codebook["value"]["meaning"])
        )
        assert "participation" in codebook["item_kind"]["meaning"]


def test_events_are_in_the_audit_log(
    client: TestClient, world: World, session: Session, maps: dict[str, Observation]
) -> None:
    from sqlmodel import select

    from app.exports.models import ExportLog

    login(client, world.admin)
    _get(client, "/exports/download?dataset=participation_events&format=csv&status=submitted")
    session.rollback()
    (entry,) = session.exec(select(ExportLog)).all()
    assert (entry.kind, entry.rows, entry.filters["status"]) == (
        "participation_events",
        10,
        "submitted",
    )
