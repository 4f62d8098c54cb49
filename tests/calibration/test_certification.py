"""District certification: each observer's agreement with master per rubric, the district's
rule (thresholds, sessions in a row, expiry), the page for facilitators and admins, each
observer's own history, and the CSV; plus the join QR code and the session's ratings CSV in
the district export's layout."""

import re
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts.models import Role
from app.calibration import service
from app.calibration.models import CalibrationSession
from app.db import utcnow
from app.exports.csv import CALIBRATION_COLUMNS
from app.exports.models import ExportLog
from tests.calibration.helpers import create_session, first_stimulus_id, join_as_guest, rate_as
from tests.helpers import World, login

ITEMS = ("questioning", "explaining_thinking", "sources_of_ideas", "responsibility_for_learning")


def _session_with(
    client: TestClient, token: str, app: FastAPI, raters: dict[TestClient, tuple[str, dict]]
) -> CalibrationSession:
    """A revealed session, master level 2 on every item; each (client, csrf) rates `levels`."""
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    client.post(
        f"/calibration/{calibration.id}/master",
        data={"csrf_token": token, **{f"master-{sid}-{k}": "2" for k in ITEMS}},
    )
    for rater, (rtoken, levels) in raters.items():
        joined = rater.post("/join", data={"csrf_token": rtoken, "code": calibration.code})
        assert joined.status_code == 303
        rate_as(rater, rtoken, calibration.code, levels, sid)
    revealed = client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reveal"}
    )
    assert revealed.status_code == 303
    return calibration


# exact 2/4 = 50%, within one 3/4 = 75%
EDGE = {
    "questioning": 2,
    "explaining_thinking": 2,
    "sources_of_ideas": 3,
    "responsibility_for_learning": 0,
}
PERFECT = dict.fromkeys(ITEMS, 2)
POOR = dict.fromkeys(ITEMS, 0)


def _certification(session: Session, **kwargs: object) -> list[dict]:
    session.rollback()  # a fresh read: what the requests above committed
    return service.certification(session=session, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def coach(app: FastAPI, world: World) -> tuple[TestClient, str]:
    c = TestClient(app, follow_redirects=False)
    return c, login(c, world.observer)


def test_the_rule_is_met_at_its_edges_and_not_below(
    client: TestClient, world: World, app: FastAPI, session: Session, coach: tuple[TestClient, str]
) -> None:
    token = login(client, world.facilitator)
    _session_with(client, token, app, {coach[0]: (coach[1], EDGE)})
    at_edge = service.CertificationRule(exact=0.5, within_one=0.75)
    [row] = _certification(session, rule=at_edge, now=utcnow())
    assert row["status"] == "certified" and row["user"].id == world.observer.id
    assert (row["latest"]["exact"], row["latest"]["within_one"]) == (0.5, 0.75)
    above = service.CertificationRule(exact=0.51, within_one=0.75)
    [row] = _certification(session, rule=above, now=utcnow())
    assert row["status"] == "not_certified"
    assert row["why"] == "latest session: 75% within one level, 50% exact"
    above = service.CertificationRule(exact=0.5, within_one=0.76)
    [row] = _certification(session, rule=above, now=utcnow())
    assert row["status"] == "not_certified"


def test_certification_expires_after_the_districts_period(
    client: TestClient, world: World, app: FastAPI, session: Session, coach: tuple[TestClient, str]
) -> None:
    token = login(client, world.facilitator)
    calibration = _session_with(client, token, app, {coach[0]: (coach[1], PERFECT)})
    session.expire_all()
    revealed_at = session.get(CalibrationSession, calibration.id).revealed_at  # type: ignore[union-attr]
    assert revealed_at is not None
    rule = service.CertificationRule(valid_days=30)
    [row] = _certification(session, rule=rule, now=revealed_at + timedelta(days=29))
    assert row["status"] == "certified" and row["expires"] == revealed_at + timedelta(days=30)
    [row] = _certification(session, rule=rule, now=revealed_at + timedelta(days=30))
    assert row["status"] == "expired"


def test_sessions_in_a_row_and_a_later_session_below_the_bar(
    client: TestClient, world: World, app: FastAPI, session: Session, coach: tuple[TestClient, str]
) -> None:
    token = login(client, world.facilitator)
    rule = service.CertificationRule(in_a_row=2)
    _session_with(client, token, app, {coach[0]: (coach[1], PERFECT)})
    [row] = _certification(session, rule=rule, now=utcnow())
    assert row["status"] == "not_certified" and "1 of the 2 sessions" in row["why"]
    _session_with(client, token, app, {coach[0]: (coach[1], PERFECT)})
    [row] = _certification(session, rule=rule, now=utcnow())
    assert row["status"] == "certified" and len(row["sessions"]) == 2
    _session_with(client, token, app, {coach[0]: (coach[1], POOR)})
    [row] = _certification(session, rule=rule, now=utcnow())
    assert row["status"] == "not_certified" and row["why"].startswith("latest session: 0%")
    # The observer reads it on their own page, with every session.
    page = coach[0].get("/calibration-history").text
    assert "Not certified" in page and page.count("<td>Fall convening</td>") == 3


def test_facilitators_and_admins_see_everyone_observers_only_themselves(
    client: TestClient, world: World, app: FastAPI, session: Session, coach: tuple[TestClient, str]
) -> None:
    principal = TestClient(app, follow_redirects=False)
    ptoken = login(principal, world.principal)
    token = login(client, world.facilitator)
    _session_with(client, token, app, {coach[0]: (coach[1], PERFECT), principal: (ptoken, POOR)})
    page = client.get("/calibration/certification").text
    assert "Observer Person" in page and "Principal Person" in page
    assert re.search(r'data-observer="Observer Person">.*?data-status="certified"', page, re.S)
    assert re.search(r'data-observer="Principal Person">.*?data-status="not_certified"', page, re.S)
    assert "1 certified" in page
    admin = TestClient(app, follow_redirects=False)
    login(admin, world.admin)
    assert admin.get("/calibration/certification").status_code == 200
    assert admin.get("/calibration/certification?rubric=no-such").status_code == 422
    assert (
        "No observer" in admin.get("/calibration/certification?rubric=discourse-walkthrough").text
    )
    for who in (coach[0], principal):
        assert who.get("/calibration/certification").status_code == 403
        assert who.get("/exports/certification.csv").status_code == 403
    own = coach[0].get("/calibration-history").text
    assert "Certified until" in own and "Principal Person" not in own
    assert (
        TestClient(app, follow_redirects=False).get("/calibration/certification").status_code == 303
    )


def test_certification_csv_is_exact_and_recorded(
    client: TestClient, world: World, app: FastAPI, session: Session, coach: tuple[TestClient, str]
) -> None:
    token = login(client, world.facilitator)
    calibration = _session_with(client, token, app, {coach[0]: (coach[1], PERFECT)})
    response = client.get("/exports/certification.csv?rubric=math-talk-community")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    lines = response.text.split("\r\n")
    assert lines[0] == (
        "observer_id,observer,role,school,rubric_slug,status,certified_on,expires_on,sessions,"
        "latest_session_id,latest_session,latest_session_on,latest_ratings,latest_exact,"
        "latest_within_one,rule_exact,rule_within_one,rule_sessions_in_a_row,rule_valid_days"
    )
    fields = lines[1].split(",")
    assert fields[:6] == [
        str(world.observer.id),
        "Observer Person",
        "observer",
        "Lincoln Elementary",
        "math-talk-community",
        "certified",
    ]
    assert fields[8:11] == ["1", str(calibration.id), "Fall convening"]
    assert fields[12:] == ["4", "1.0000", "1.0000", "0.6", "0.8", "1", "365"]
    assert lines[2] == ""
    session.expire_all()
    entry = session.exec(select(ExportLog).where(ExportLog.kind == "certification")).one()
    assert entry.user_id == world.facilitator.id and entry.rows == 1
    assert entry.filters == {"rubric": "math-talk-community"}


def test_the_session_csv_is_the_district_export_of_that_session(
    client: TestClient, world: World, app: FastAPI, session: Session, coach: tuple[TestClient, str]
) -> None:
    token = login(client, world.facilitator)
    first = _session_with(client, token, app, {coach[0]: (coach[1], PERFECT)})
    _session_with(client, token, app, {coach[0]: (coach[1], POOR)})
    text = client.get(f"/calibration/{first.id}/ratings.csv").text
    lines = text.split("\r\n")
    assert lines[0] == ",".join(name for name, _t, _m in CALIBRATION_COLUMNS)
    assert len(lines) == 2 + len(ITEMS) and all(
        line.startswith(f"{first.id},") for line in lines[1:-1]
    )
    admin = TestClient(app, follow_redirects=False)
    login(admin, world.admin)
    district = admin.get("/exports/download?dataset=calibration&format=csv").text.split("\r\n")
    assert district[0] == lines[0]
    assert [line for line in district if line.startswith(f"{first.id},")] == lines[1:-1]
    session.expire_all()
    logged = session.exec(select(ExportLog).where(ExportLog.kind == "calibration")).all()
    assert {"format": "csv", "session_id": first.id} in [e.filters for e in logged]
    # Only its facilitator (or an admin) downloads it.
    other = world.user(Role.facilitator, email="f2@example.org")
    session.commit()
    stranger = TestClient(app, follow_redirects=False)
    login(stranger, other)
    assert stranger.get(f"/calibration/{first.id}/ratings.csv").status_code == 404
    assert coach[0].get(f"/calibration/{first.id}/ratings.csv").status_code == 403
    assert admin.get(f"/calibration/{first.id}/ratings.csv").status_code == 200


def test_the_board_shows_a_qr_code_of_the_join_link(client: TestClient, world: World) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    page = client.get(f"/calibration/{calibration.id}").text
    figure = page[page.index("data-join-qr") :]
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in figure and 'class="join-qr"' in figure
    assert f"http://testserver/join?code={calibration.code}" in figure
    import segno

    expected = segno.make(f"http://testserver/join?code={calibration.code}", error="m")
    assert expected.symbol_size(scale=6, border=2)[0] == int(
        re.search(r'<svg[^>]*width="(\d+)"', figure).group(1)  # type: ignore[union-attr]
    )


def test_after_reveal_raters_cannot_revise_and_a_re_reveal_keeps_the_date(
    client: TestClient, world: World, app: FastAPI, session: Session, coach: tuple[TestClient, str]
) -> None:
    token = login(client, world.facilitator)
    calibration = _session_with(client, token, app, {coach[0]: (coach[1], POOR)})
    first = _certification(session, rule=service.CertificationRule(), now=utcnow())[0]["latest"][
        "on"
    ]
    client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reopen"}
    )
    sid = first_stimulus_id(app, calibration)
    # The coach saw the master scores: their ratings stand as they were.
    late = coach[0].post(
        f"/api/calibration/{calibration.code}/ratings",
        json=[{"stimulus_id": sid, "item_key": k, "value": 2} for k in ITEMS],
        headers={"X-CSRF-Token": coach[1]},
    )
    assert late.status_code == 409 and "done" in late.text
    # Someone who had not rated yet still may.
    rate_as(*join_as_guest(app, calibration.code, "Late Lee"), calibration.code, PERFECT, sid)
    client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reveal"}
    )
    [row] = _certification(session, rule=service.CertificationRule(), now=utcnow())
    assert row["status"] == "not_certified" and row["latest"]["on"] == first


def test_a_later_round_being_rated_leaves_the_revealed_one_counted(
    client: TestClient, world: World, app: FastAPI, session: Session, coach: tuple[TestClient, str]
) -> None:
    token = login(client, world.facilitator)
    calibration = _session_with(client, token, app, {coach[0]: (coach[1], PERFECT)})
    client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "next_round"}
    )
    [row] = _certification(session, rule=service.CertificationRule(), now=utcnow())
    assert row["status"] == "certified" and row["latest"]["n"] == len(ITEMS)
