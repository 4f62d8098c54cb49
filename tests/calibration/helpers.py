"""Helpers for the calibration tests: create a session, join it as a guest, rate."""

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.calibration.models import CalibrationSession, Stimulus
from tests.helpers import csrf_from

TRANSCRIPT = "T: What do you notice?\nS1: Three fourths is bigger.\nS2: I disagree, because..."


def create_session(
    client: TestClient, token: str, rubric_slug: str = "math-talk-community"
) -> CalibrationSession:
    page = client.get("/calibration").text
    rubric_id = re.search(
        rf'<option value="(\d+)"[^>]*>[^<]*{"Math-Talk" if "talk" in rubric_slug else ""}', page
    )
    assert rubric_id
    response = client.post(
        "/calibration",
        data={
            "csrf_token": token,
            "title": "Fall convening",
            "rubric_version_id": rubric_id.group(1),
            "stimulus_title": "Grade 4 fractions",
            "kind": "transcript",
            "transcript": TRANSCRIPT,
        },
    )
    assert response.status_code == 303, response.text
    session_id = int(response.headers["location"].rsplit("/", 1)[1])
    with Session(client.app.state.engine) as s:  # type: ignore[attr-defined]
        found = s.get(CalibrationSession, session_id)
        assert found is not None
        return found


def join_as_guest(app: FastAPI, code: str, name: str) -> tuple[TestClient, str]:
    guest = TestClient(app, follow_redirects=False)
    token = csrf_from(guest, "/join")
    response = guest.post("/join", data={"csrf_token": token, "code": code.lower(), "name": name})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/c/{code}"
    return guest, token


def first_stimulus_id(app: FastAPI, calibration: CalibrationSession) -> int:
    with Session(app.state.engine) as s:
        st = s.exec(select(Stimulus).where(Stimulus.session_id == calibration.id)).one()
        assert st.id is not None
        return st.id


def rate_as(
    client: TestClient, token: str, code: str, values: dict[str, int], stimulus_id: int
) -> None:
    response = client.post(
        f"/api/calibration/{code}/ratings",
        json=[{"stimulus_id": stimulus_id, "item_key": k, "value": v} for k, v in values.items()],
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 200, response.text
