"""CSV exports: exact text, round trips through csv and pandas, formula safety, scope, tokens,
the codebook zip and the audit log."""

import csv
import io
import json
import re
import zipfile
from datetime import UTC, datetime

import frictionless
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts.models import Teacher
from app.exports.csv import DANGEROUS, cell
from app.exports.models import ExportLog
from app.observations.models import Observation
from tests.helpers import World, login, make_observation

EVIDENCE = 'Said "3/4, not 2/3"\nthen =SUM(A1)'


@pytest.fixture
def seeded(ready: World, session: Session) -> dict[str, Observation]:
    assert ready.roosevelt.id is not None
    far = Teacher(name="Zoë Ørsted-Núñez", school_id=ready.roosevelt.id, district_id="T-9")
    session.add(far)
    ready.teacher.district_id = "T-1"
    session.add(ready.teacher)
    session.commit()
    lincoln = make_observation(
        session,
        ready.observer,
        teacher=ready.teacher,
        rubric=("math-talk-community", 1),
        values={
            "questioning": {"value": 2, "evidence": EVIDENCE},
            "explaining_thinking": {"value": 0},
            "notes": {"value": "-5 minutes late, @ everyone"},
        },
        observed_at=datetime(2026, 11, 2, 15, 30, tzinfo=UTC),
    )
    roosevelt = make_observation(
        session,
        ready.other_principal,
        teacher=far,
        rubric=("math-talk-community", 1),
        values={"questioning": {"value": 3}},
        observed_at=datetime(2026, 11, 3, 15, 30, tzinfo=UTC),
    )
    return {"lincoln": lincoln, "roosevelt": roosevelt}


def _get(client: TestClient, url: str, **kw):  # type: ignore[no-untyped-def]
    response = client.get(url, **kw)
    assert response.status_code == 200, response.text
    return response


def test_long_csv_exact_text(
    client: TestClient, world: World, seeded: dict[str, Observation]
) -> None:
    login(client, world.principal)
    obs = seeded["lincoln"]
    text = _get(client, "/exports/download?dataset=observations_long&format=csv").content.decode()
    submitted = obs.submitted_at.isoformat()  # type: ignore[union-attr]
    head = (
        f"{obs.id},1,submitted,2026-11-02T15:30:00+00:00,{submitted},"
        "Lincoln Elementary,Ana García,T-1,"
        "Observer Person,,,math-talk-community,1"
    )
    section = "Components of the math-talk community"
    expected = (
        "observation_id,revision,status,observed_at,submitted_at,school,teacher,teacher_district_id,"
        "observer,grade,subject,rubric_slug,rubric_version,section,item_key,item_title,item_kind,value,"
        "level_label,not_observed,evidence,tags,overall_notes,observed_date,duration_seconds,"
        "timed_notes,feedback_state,feedback_shared_at,feedback_opened_at,feedback_reflected_at,"
        "feedback_acknowledged_at,feedback_reflection\r\n"
        f"{head},{section},questioning,Questioning,scale,2,Level 2,false,"
        '"Said ""3/4, not 2/3""\nthen =SUM(A1)",,,2026-11-02,,,not_shared,,,,,\r\n'
        f"{head},{section},explaining_thinking,Explaining mathematical thinking,scale,0,Level 0,"
        "false,,,,2026-11-02,,,not_shared,,,,,\r\n"
        f"{head},{section},sources_of_ideas,Source of mathematical ideas,scale,,,"
        "false,,,,2026-11-02,,,not_shared,,,,,\r\n"
        f"{head},{section},responsibility_for_learning,Responsibility for learning,scale,,,"
        "false,,,,2026-11-02,,,not_shared,,,,,\r\n"
        f'{head},Notes,notes,Evidence and notes,text,"\'-5 minutes late, @ everyone",,false,,,,'
        "2026-11-02,,,not_shared,,,,,\r\n"
    )
    assert text == expected


def test_wide_csv_exact_text(
    client: TestClient, world: World, seeded: dict[str, Observation]
) -> None:
    login(client, world.admin)
    text = _get(
        client,
        "/exports/download?dataset=observations_wide&format=csv&rubric=math-talk-community:1",
    ).content.decode()
    lines = text.split("\r\n")
    assert lines[0] == (
        "observation_id,revision,status,observed_at,submitted_at,school,teacher,teacher_district_id,"
        "observer,grade,subject,rubric_slug,rubric_version,tags,overall_notes,"
        "questioning,questioning__not_observed,questioning__evidence,"
        "explaining_thinking,explaining_thinking__not_observed,explaining_thinking__evidence,"
        "sources_of_ideas,sources_of_ideas__not_observed,sources_of_ideas__evidence,"
        "responsibility_for_learning,responsibility_for_learning__not_observed,responsibility_for_learning__evidence,"
        "notes,notes__not_observed,notes__evidence,"
        "observed_date,duration_seconds,timed_notes,feedback_state,feedback_shared_at,"
        "feedback_opened_at,feedback_reflected_at,feedback_acknowledged_at,feedback_reflection"
    )
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 3 and rows[2][6] == "Zoë Ørsted-Núñez"
    assert rows[1][15:18] == ["2", "false", EVIDENCE]
    assert rows[1][27] == "'-5 minutes late, @ everyone"
    assert rows[1][30:33] == ["2026-11-02", "", ""]
    assert rows[1][33:] == ["not_shared", "", "", "", "", ""]


def test_round_trip_through_csv_and_pandas(
    client: TestClient, world: World, seeded: dict[str, Observation]
) -> None:
    login(client, world.admin)
    long_text = _get(client, "/exports/download?dataset=observations_long&format=csv").content
    rows = list(csv.DictReader(io.StringIO(long_text.decode("utf-8"), newline="")))
    assert len(rows) == 10
    questioning = next(
        r for r in rows if r["item_key"] == "questioning" and r["school"] == "Lincoln Elementary"
    )
    assert questioning["evidence"] == EVIDENCE
    frame = pd.read_csv(io.BytesIO(long_text), keep_default_na=False)
    assert list(frame["teacher"].unique()) == ["Ana García", "Zoë Ørsted-Núñez"]
    assert frame.loc[frame["item_key"] == "questioning", "evidence"].iloc[0] == EVIDENCE
    wide = pd.read_csv(
        io.BytesIO(
            _get(
                client,
                "/exports/download?dataset=observations_wide&format=csv&rubric=math-talk-community:1",
            ).content
        )
    )
    assert wide["questioning"].tolist() == [2, 3]
    assert str(wide["questioning"].dtype) == "int64"  # numbers stay numbers
    assert wide["rubric_version"].dtype.kind == "i"
    assert wide["questioning__not_observed"].tolist() == [False, False]


@pytest.mark.parametrize("first", DANGEROUS)
def test_every_dangerous_leading_character_is_neutralised(first: str) -> None:
    assert cell(first + "1+1") == "'" + first + "1+1"
    assert cell("safe " + first) == "safe " + first
    assert cell(-3) == -3 and cell(2.5) == 2.5  # a negative number is not text
    assert cell(True) == "true"


def test_excel_option_adds_a_bom(
    client: TestClient, world: World, seeded: dict[str, Observation]
) -> None:
    login(client, world.admin)
    plain = _get(client, "/exports/download?dataset=observations_long&format=csv").content
    excel = _get(client, "/exports/download?dataset=observations_long&format=csv&bom=1").content
    assert not plain.startswith(b"\xef\xbb\xbf")
    assert excel == b"\xef\xbb\xbf" + plain


def test_principals_never_receive_another_schools_rows(
    client: TestClient, world: World, app: FastAPI, seeded: dict[str, Observation]
) -> None:
    csrf = login(client, world.principal)
    page = _get(
        client,
        f"/exports/download?dataset=observations_long&format=csv&school_id={world.roosevelt.id}",
    ).text
    assert "Roosevelt" not in page and "Lincoln Elementary" in page
    raw = re.search(
        r"data-new-token>(wt_[^<]+)<",
        client.post("/account/tokens", data={"csrf_token": csrf, "name": "R"}).text,
    ).group(1)  # type: ignore[union-attr]
    script = TestClient(app)
    api = script.get(
        f"/api/exports/observations.csv?school_id={world.roosevelt.id}",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert api.status_code == 200
    assert (
        "Roosevelt" not in api.text and "Zoë" not in api.text and "Lincoln Elementary" in api.text
    )


def test_revoked_tokens_are_refused(
    client: TestClient, world: World, app: FastAPI, session: Session, seeded: dict[str, Observation]
) -> None:
    from app.accounts.models import ApiToken

    csrf = login(client, world.admin)
    raw = re.search(
        r"data-new-token>(wt_[^<]+)<",
        client.post("/account/tokens", data={"csrf_token": csrf, "name": "pandas"}).text,
    ).group(1)  # type: ignore[union-attr]
    script = TestClient(app)
    assert (
        script.get(
            "/api/exports/observations.csv", headers={"Authorization": f"Bearer {raw}"}
        ).status_code
        == 200
    )
    token_id = session.exec(select(ApiToken)).one().id
    client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    assert (
        script.get(
            "/api/exports/observations.csv", headers={"Authorization": f"Bearer {raw}"}
        ).status_code
        == 401
    )


@pytest.mark.parametrize("role", ["observer", "facilitator"])
def test_other_roles_cannot_export(client: TestClient, world: World, role: str) -> None:
    login(client, getattr(world, role))
    assert client.get("/exports").status_code == 403
    assert client.get("/exports/download").status_code == 403
    assert client.get("/api/exports/observations.csv").status_code == 403


def test_wide_refuses_a_mix_of_rubric_versions(
    client: TestClient, world: World, session: Session, seeded: dict[str, Observation]
) -> None:
    make_observation(
        session, world.observer, teacher=world.teacher, rubric=("discourse-walkthrough", 1)
    )
    login(client, world.admin)
    page = client.get("/exports?dataset=observations_wide")
    assert "needs a single rubric version; this choice has 2" in page.text
    assert client.get("/exports/download?dataset=observations_wide").status_code == 422


def test_page_counts_rows_before_download(
    client: TestClient, world: World, seeded: dict[str, Observation]
) -> None:
    login(client, world.admin)
    assert "data-rows>10<" in client.get("/exports?dataset=observations_long").text
    assert (
        "data-rows>2<"
        in client.get("/exports?dataset=observations_wide&rubric=math-talk-community:1").text
    )
    fragment = client.get(
        "/exports?dataset=observations_long&from=2026-11-03", headers={"HX-Request": "true"}
    )
    assert "<html" not in fragment.text and "data-rows>5<" in fragment.text


@pytest.mark.parametrize(
    "query",
    [
        "dataset=observations_long",
        "dataset=observations_long&harmonised=1",
        "dataset=observations_wide&rubric=math-talk-community:1",
        "dataset=calibration",
    ],
)
def test_every_zip_is_a_valid_frictionless_data_package(
    client: TestClient,
    world: World,
    seeded: dict[str, Observation],
    tmp_path,
    query: str,  # type: ignore[no-untyped-def]
) -> None:
    login(client, world.admin)
    data = _get(client, f"/exports/download?{query}&format=zip").content
    archive = zipfile.ZipFile(io.BytesIO(data))
    archive.extractall(tmp_path)
    names = set(archive.namelist())
    csv_name = next(n for n in names if n.startswith("walkthrough-"))
    expected = {csv_name, "codebook.csv", "datapackage.json"}
    if "calibration" not in query:
        expected.add("rubric_items.csv")
    assert names == expected
    report = frictionless.validate(str(tmp_path / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    # Every file is one rectangle: as many cells on each row as in its header.
    for name in names - {"datapackage.json"}:
        rows = list(csv.reader(io.StringIO(archive.read(name).decode("utf-8-sig"))))
        assert {len(r) for r in rows} == {len(rows[0])}, name
    package = json.loads(archive.read("datapackage.json"))
    assert package["resources"][0]["path"] == csv_name
    codebook = archive.read("codebook.csv").decode()
    if "long" in query:
        fields = {f["name"]: f["type"] for f in package["resources"][0]["schema"]["fields"]}
        assert fields["observed_at"] == "datetime" and fields["rubric_version"] == "integer"
        assert fields["observed_date"] == "date" and fields["duration_seconds"] == "integer"
        assert "observation_id,string," in codebook and "timed_notes,string," in codebook
        assert (
            "math-talk-community,1,Components of the math-talk community,"
            "questioning,scale,Questioning,2,Level 2" in archive.read("rubric_items.csv").decode()
        )
    if "wide" in query:
        assert "questioning__not_observed,boolean," in codebook
    if "harmonised" in query:
        assert "harmonised_item_key,string," in codebook
        header = archive.read(csv_name).decode("utf-8-sig").splitlines()[0]
        assert header.endswith("harmonised_version,harmonised_item_key,harmonised_value")
    else:
        assert "harmonised" not in codebook


def test_timed_notes_duration_and_the_local_day_are_exported(
    client: TestClient, world: World, session: Session
) -> None:
    from app.observations import service

    payload = service.ObservationPayload(
        rubric_slug="math-talk-community",
        rubric_version=1,
        teacher_id=world.teacher.id,
        observed_at=datetime(2026, 11, 1, 4, 30, tzinfo=UTC),  # 23:30 on Oct 31 in Chicago
        duration_seconds=540,
        status="submitted",  # type: ignore[arg-type]
        notes=[
            service.TimedNote(minute=3, text='Launch, "pairs"'),
            service.TimedNote(minute=7, text="=share"),
        ],
    )
    service.write_one(
        session=session,
        author=world.observer,
        device=None,
        obs_id=__import__("uuid").uuid4(),
        base_revision=0,
        payload=payload,
    )
    session.commit()
    login(client, world.admin)
    for kind in ("observations_long", "observations_wide&rubric=math-talk-community:1"):
        text = _get(client, f"/exports/download?dataset={kind}&format=csv").text
        row = next(csv.DictReader(io.StringIO(text)))
        assert row["observed_date"] == "2026-10-31" and row["duration_seconds"] == "540"
        assert json.loads(row["timed_notes"]) == [
            {"minute": 3, "text": 'Launch, "pairs"'},
            {"minute": 7, "text": "=share"},
        ]


def test_scripts_can_ask_for_the_exact_text(
    client: TestClient, world: World, app: FastAPI, session: Session
) -> None:
    make_observation(
        session,
        world.observer,
        teacher=world.teacher,
        rubric=("discourse-walkthrough", 1),
        values={"glow": {"value": "-1 point for the launch"}},
    )
    csrf = login(client, world.admin)
    raw = re.search(
        r"data-new-token>(wt_[^<]+)<",
        client.post("/account/tokens", data={"csrf_token": csrf, "name": "R"}).text,
    ).group(1)  # type: ignore[union-attr]
    script = TestClient(app)
    headers = {"Authorization": f"Bearer {raw}"}
    safe = script.get("/api/exports/observations.csv?kind=long", headers=headers).text
    exact = script.get("/api/exports/observations.csv?kind=long&raw=1", headers=headers).text
    assert ",'-1 point for the launch," in safe
    assert ",-1 point for the launch," in exact and "'-1 point" not in exact
    # In a browser the download stays spreadsheet-safe whatever the address says.
    browser = _get(client, "/exports/download?dataset=observations_long&format=csv&raw=1").text
    assert "'-1 point for the launch" in browser


def test_every_export_is_in_the_audit_log(
    client: TestClient, world: World, app: FastAPI, session: Session, seeded: dict[str, Observation]
) -> None:
    csrf = login(client, world.admin)
    _get(client, "/exports/download?dataset=observations_long&format=csv&status=submitted")
    raw = re.search(
        r"data-new-token>(wt_[^<]+)<",
        client.post("/account/tokens", data={"csrf_token": csrf, "name": "R"}).text,
    ).group(1)  # type: ignore[union-attr]
    TestClient(app).get(
        "/api/exports/observations.csv?kind=wide&rubric=math-talk-community:1",
        headers={"Authorization": f"Bearer {raw}"},
    )
    session.rollback()
    entries = session.exec(select(ExportLog).order_by(ExportLog.id)).all()
    assert [(e.kind, e.rows, e.via_token) for e in entries] == [
        ("observations_long", 10, False),
        ("observations_wide", 2, True),
    ]
    assert entries[0].filters["status"] == "submitted"
    log = client.get("/admin/exports").text
    assert "observations_wide" in log and "API token" in log


def test_calibration_export_is_for_admins(client: TestClient, world: World, app: FastAPI) -> None:
    login(client, world.admin)
    text = _get(client, "/exports/download?dataset=calibration&format=csv").text
    assert text.startswith("session_id,session_title,rubric_slug,rubric_version,round,rater,")
    principal = TestClient(app, follow_redirects=False)
    login(principal, world.principal)
    assert principal.get("/exports/download?dataset=calibration&format=csv").status_code == 422
