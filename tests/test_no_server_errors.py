"""Hand-written hostile input for every kind of route: Unicode digits, numbers beyond 32 and 64
bits, deep nesting, NUL bytes. Each answers 4xx with a reason, never 500; a bad push item is
rejected alone while the rest of its batch goes through."""

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.accounts import service as accounts
from tests.calibration.helpers import create_session
from tests.helpers import World, login
from tests.sync.conftest import item

HUGE = "9" * 30
BIG64 = str(2**63)
ODD_NUMBERS = ["²", "٣", "１", HUGE, BIG64, "-1", "1e3", " 7 ", "0x10"]


def _client(app: FastAPI) -> TestClient:
    return TestClient(app, follow_redirects=False, raise_server_exceptions=False)


@pytest.fixture
def admin(app: FastAPI, ready: World) -> tuple[TestClient, str]:
    client = _client(app)
    return client, login(client, ready.admin)


def test_unicode_digits_and_huge_numbers_in_query_strings(
    admin: tuple[TestClient, str], ready: World
) -> None:
    client, _token = admin
    paths = [
        "/observations?school_id={}",
        "/observations?teacher_id={}&observer_id={}&rubric_version_id={}",
        "/dashboard?rubric_version_id={}&school_id={}",
        "/admin/teachers?school_id={}",
        "/exports?school_id={}&observer_id={}&rubric=math-discourse-quality:{}",
        "/exports/download?school_id={}&observer_id={}",
        "/api/exports/observations.csv?school_id={}&rubric=x:{}",
        "/api/sync/pull?since={}",
        "/rubrics/math-discourse-quality/compare?a={}&b={}",
    ]
    for template in paths:
        for odd in ODD_NUMBERS:
            path = template.format(*([odd] * template.count("{}")))
            response = client.get(path)
            assert response.status_code < 500, (path, response.status_code)


ODD_DATES = ["9999-12-31", "0001-01-01", "2026-02-30", "2026-1-5", "٢٠٢٦-١١-٠٢", "x"]
ODD_CURSORS = [
    # A time without its offset, a huge id, wrong shapes: each is the first page, never a 500.
    "WyJhZnRlciIsIFsiMjAyNi0wOS0wMVQwMDowMDowMCIsICI0Y2ZjYmY0My1mMjM5LTRkZmMtYWFkYi01NDhlMzI0MzNhZWEiXV0",
    "WyJhZnRlciIsIFsiVCIsICI5OTk5OTk5OTk5OTk5OTk5OTk5OTk5Il1d",
    "WyJiZWZvcmUiLCBbXV0",
    "////",
]


def test_odd_dates_and_cursors_on_every_list_and_dashboard(
    admin: tuple[TestClient, str], ready: World
) -> None:
    client, _token = admin
    for odd in ODD_DATES:
        for path in (
            f"/dashboard?from={odd}&to={odd}",
            f"/dashboard?to={odd}&by=week",
            f"/dashboard.csv?from={odd}&to={odd}",
            f"/dashboard/trends?to={odd}",
            f"/dashboard/coverage?since={odd}",
            f"/observations?from={odd}&to={odd}",
            f"/exports?from={odd}&to={odd}",
            f"/exports/download?dataset=observations_long&to={odd}",
        ):
            response = client.get(path)
            assert response.status_code < 500, (path, response.status_code)
    for cursor in ODD_CURSORS:
        for path in (
            "/observations",
            f"/teachers/{ready.teacher.id}",
            "/admin/teachers",
            "/admin/users",
        ):
            response = client.get(f"{path}?cursor={cursor}")
            assert response.status_code == 200, (path, cursor, response.status_code)


def test_unicode_digits_and_huge_numbers_in_path_ids(admin: tuple[TestClient, str]) -> None:
    client, token = admin
    gets = [
        "/teachers/{}",
        "/calibration/{}",
        "/calibration/{}/report",
        "/calibration/{}/ratings.csv",
        "/api/calibration/sessions/{}/report",
        "/rubrics/math-discourse-quality/versions/{}",
        "/api/rubrics/math-discourse-quality/versions/{}",
        "/capture/discourse-walkthrough/{}",
    ]
    posts = [
        "/admin/users/{}/active",
        "/admin/users/{}/password",
        "/account/tokens/{}/revoke",
        "/calibration/{}/items",
        "/calibration/{}/status",
        f"/observations/{uuid.uuid4()}/conflicts/{{}}",
    ]
    for odd in [*ODD_NUMBERS, "%C2%B2"]:
        for template in gets:
            response = client.get(template.format(odd))
            assert response.status_code < 500, (template, odd, response.status_code)
            assert response.status_code in (404, 422), (template, odd, response.status_code)
        for template in posts:
            response = client.post(template.format(odd), data={"csrf_token": token})
            assert response.status_code < 500, (template, odd, response.status_code)


def test_nul_bytes_anywhere_are_refused_with_a_reason(
    admin: tuple[TestClient, str], ready: World
) -> None:
    client, token = admin
    assert client.get("/observations?tag=a%00b").status_code == 400
    assert client.get("/rubrics/a%00b/versions/1").status_code in (400, 404)
    forms = {
        "/admin/schools": {"name": "A\x00B", "code": "X"},
        "/admin/users": {"email": "n@x.org", "name": "N\x00", "role": "observer", "password": "x"},
        "/account/tokens": {"name": "\x00"},
        "/calibration": {"title": "T\x00", "rubric_version_id": "1"},
        "/join": {"code": "ABC\x00", "name": "x"},
        "/observations": {"teacher": "A\x00", "rubric": "discourse-walkthrough:1"},
    }
    for path, data in forms.items():
        response = client.post(path, data={"csrf_token": token, **data})
        assert response.status_code == 400, (path, response.status_code, response.text[:200])
        assert "NUL" in response.text


def test_roster_with_a_nul_byte_names_its_row(admin: tuple[TestClient, str]) -> None:
    client, token = admin
    csv = b"school,teacher\r\nLincoln,Ana\r\nLincoln,Bo\x00b\r\n"
    response = client.post(
        "/admin/roster",
        data={"csrf_token": token},
        files={"file": ("roster.csv", csv, "text/csv")},
    )
    assert response.status_code == 422
    assert "<td>3</td><td>teacher</td><td>The cell contains a NUL character" in response.text


def test_a_bad_push_item_is_rejected_alone(app: FastAPI, ready: World, session: Session) -> None:
    client = _client(app)
    token = login(client, ready.observer)
    good = item(ready)
    bad = [
        item(ready, teacher_id=int(HUGE)),
        item(ready, teacher_id=2**63),
        item(ready, school_id=2**40, teacher_id=None, teacher_name="Typed"),
        item(ready, rubric_version=2**31),
        item(ready, overall_notes="a\x00b"),
        item(ready, tags=["x\x00"]),
        item(ready, values={"students_explaining": {"value": 2**70}}),
        {"id": str(uuid.uuid4()), "base_revision": 2**64, "payload": item(ready)["payload"]},
        {"id": "not-a-uuid", "payload": {}},
        [[[[["deep"]]]]],
    ]
    response = client.post(
        "/api/sync/push",
        json={"device_id": "tablet", "items": [*bad, good]},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * len(bad) + ["created"]
    assert all(r["reason"] for r in results[:-1])


def test_deeply_nested_json_is_a_400(app: FastAPI, ready: World) -> None:
    client = _client(app)
    token = login(client, ready.observer)
    deep = b'{"device_id":"x","items":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for path in ("/api/sync/push", "/api/agreement", "/api/calibration/ABCDEF/ratings"):
        response = client.post(
            path,
            content=deep,
            headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500, (path, response.status_code)


def test_calibration_report_before_anyone_rated(admin: tuple[TestClient, str]) -> None:
    client, token = admin
    calibration = create_session(client, token)
    for path in (
        f"/calibration/{calibration.id}/report",
        f"/api/calibration/sessions/{calibration.id}/report",
        f"/calibration/{calibration.id}/ratings.csv",
        f"/api/calibration/{calibration.code}/report",
    ):
        response = client.get(path)
        assert response.status_code < 500, (path, response.status_code, response.text[:300])


def test_a_server_error_still_carries_the_security_headers(
    app: FastAPI, ready: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.observations import service

    def broken(**_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "list_observations", broken)
    client = _client(app)
    login(client, ready.admin)
    response = client.get("/observations")
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "boom" not in response.text


def test_tokens_with_odd_values_never_break_sign_in(app: FastAPI, ready: World) -> None:
    client = _client(app)
    for header in ("Bearer \x00", "Bearer " + "x" * 5000, "Bearer wt_%C2%B2", "Bearer "):
        response = client.get("/api/sync/pull", headers={"Authorization": header})
        assert response.status_code == 401, (header[:20], response.status_code)
    _ = accounts
