"""Calibration sessions: create, join by code, blind rating, board, reveal, rounds, history."""

import threading

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from app.calibration.models import Rating
from app.calibration.routes import join_limit
from app.calibration.service import CODE_ALPHABET
from tests.calibration.helpers import (
    create_session,
    first_stimulus_id,
    join_as_guest,
    rate_as,
)
from tests.helpers import World, csrf_from, login


@pytest.fixture(autouse=True)
def _fresh_limits() -> None:
    join_limit._hits.clear()


def test_facilitator_creates_a_session_with_a_short_unambiguous_code(
    client: TestClient, world: World
) -> None:
    calibration = create_session(client, login(client, world.facilitator))
    assert len(calibration.code) == 6 and set(calibration.code) <= set(CODE_ALPHABET)
    assert calibration.item_keys == [
        "questioning",
        "explaining_thinking",
        "sources_of_ideas",
        "responsibility_for_learning",
    ]
    page = client.get(f"/calibration/{calibration.id}").text
    assert calibration.code in page and "Nobody has joined yet." in page


@pytest.mark.parametrize("role", ["observer", "principal"])
def test_only_facilitators_and_admins_run_sessions(
    client: TestClient, world: World, role: str
) -> None:
    token = login(client, getattr(world, role))
    assert client.get("/calibration").status_code == 403
    assert client.post("/calibration", data={"csrf_token": token, "title": "x"}).status_code == 403


def test_another_facilitator_cannot_see_my_session_but_an_admin_can(
    client: TestClient, world: World, app: FastAPI, session: Session
) -> None:
    from app.accounts.models import Role

    calibration = create_session(client, login(client, world.facilitator))
    other_user = world.user(Role.facilitator, email="f2@example.org")
    session.commit()
    other = TestClient(app, follow_redirects=False)
    login(other, other_user)
    assert other.get(f"/calibration/{calibration.id}").status_code == 404
    admin = TestClient(app, follow_redirects=False)
    login(admin, world.admin)
    assert admin.get(f"/calibration/{calibration.id}").status_code == 200


def test_guests_rate_blind_and_only_their_own_session(
    client: TestClient, world: World, app: FastAPI, session: Session
) -> None:
    calibration = create_session(client, login(client, world.facilitator))
    sid = first_stimulus_id(app, calibration)
    ana, ana_token = join_as_guest(app, calibration.code, "Ana")
    ben, ben_token = join_as_guest(app, calibration.code, "Ben")
    rate_as(ana, ana_token, calibration.code, {"questioning": 2, "explaining_thinking": 1}, sid)
    rate_as(ana, ana_token, calibration.code, {"questioning": 3}, sid)  # changed: an upsert
    rate_as(ben, ben_token, calibration.code, {"questioning": 0}, sid)
    mine = ana.get(f"/api/calibration/{calibration.code}/ratings").json()["ratings"]
    assert sorted((r["item_key"], r["value"]) for r in mine) == [
        ("explaining_thinking", 1),
        ("questioning", 3),
    ]
    assert ana.get(f"/api/calibration/{calibration.code}/report").status_code == 403  # blind
    page = ana.get(f"/c/{calibration.code}").text
    assert "Ben" not in page
    assert session.exec(select(func.count()).select_from(Rating)).one() == 3
    # a guest is limited to the session whose code they used
    other = create_session(client, csrf_from(client, "/calibration"))
    assert ana.get(f"/api/calibration/{other.code}/ratings").status_code == 403
    assert ana.get(f"/c/{other.code}").headers["location"] == f"/join?code={other.code}"
    assert ana.get(f"/calibration/{calibration.id}").status_code == 303  # no facilitator pages


def test_bad_ratings_and_done_raters_are_refused(
    client: TestClient, world: World, app: FastAPI
) -> None:
    calibration = create_session(client, login(client, world.facilitator))
    sid = first_stimulus_id(app, calibration)
    ana, token = join_as_guest(app, calibration.code, "Ana")
    bad = ana.post(
        f"/api/calibration/{calibration.code}/ratings",
        json=[{"stimulus_id": sid, "item_key": "questioning", "value": 9}],
        headers={"X-CSRF-Token": token},
    )
    assert bad.status_code == 422 and "9 is not a level" in bad.json()["detail"]
    assert ana.post(f"/c/{calibration.code}/done", data={"csrf_token": token}).status_code == 303
    late = ana.post(
        f"/api/calibration/{calibration.code}/ratings",
        json=[{"stimulus_id": sid, "item_key": "questioning", "value": 1}],
        headers={"X-CSRF-Token": token},
    )
    assert late.status_code == 409


def test_wrong_codes_are_rate_limited(client: TestClient, world: World) -> None:
    token = csrf_from(client, "/join")
    statuses = [
        client.post("/join", data={"csrf_token": token, "code": "ZZZZZZ", "name": "x"}).status_code
        for _ in range(21)
    ]
    assert statuses[:20] == [404] * 20
    assert statuses[20] == 429


def test_board_reveal_and_the_report(client: TestClient, world: World, app: FastAPI) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    client.post(
        f"/calibration/{calibration.id}/master",
        data={
            "csrf_token": token,
            f"master-{sid}-questioning": "2",
            f"rationale-{sid}-questioning": "Teacher probes twice.",
        },
    )
    raters = []
    for name, value in (("Ana", 2), ("Ben", 2), ("Cy", 1)):
        guest, gtoken = join_as_guest(app, calibration.code, name)
        rate_as(
            guest,
            gtoken,
            calibration.code,
            {
                "questioning": value,
                "explaining_thinking": value,
                "sources_of_ideas": 1,
                "responsibility_for_learning": 1,
            },
            sid,
        )
        raters.append((guest, gtoken, name))
    raters[0][0].post(f"/c/{calibration.code}/done", data={"csrf_token": raters[0][1]})
    board = client.get(f"/calibration/{calibration.id}", headers={"HX-Request": "true"}).text
    assert "<html" not in board and "3 joined · 1 done" in board
    assert "4 / 4" in board
    client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reveal"}
    )
    report = raters[2][0].get(f"/api/calibration/{calibration.code}/report").json()
    assert report["latest"]["raters"] == [
        "Rater 1",
        "Rater 2",
        "Cy",
    ]  # others anonymised for guests
    assert report["master"] == [
        {
            "stimulus_id": sid,
            "item_key": "questioning",
            "value": 2,
            "rationale": "Teacher probes twice.",
        }
    ]
    assert report["latest"]["items"]["questioning"]["distribution"] == {
        0: 0,
        1: 1,
        2: 2,
        3: 0,
    } or report["latest"]["items"]["questioning"]["distribution"] == {
        "0": 0,
        "1": 1,
        "2": 2,
        "3": 0,
    }
    page = raters[2][0].get(f"/c/{calibration.code}").text
    assert "Teacher probes twice." in page and "<svg" in page
    full = client.get(f"/api/calibration/sessions/{calibration.id}/report").json()
    assert full["latest"]["raters"] == ["Ana", "Ben", "Cy"]
    vs = {v["rater"]: v for v in full["latest"]["session"]["vs_master"]}
    assert vs["Cy"]["exact_agreement"] == 0.0 and vs["Ana"]["exact_agreement"] == 1.0
    html = client.get(f"/calibration/{calibration.id}/report").text
    assert "Rater by rater" in html


def test_round_two_starts_blind_and_the_report_shows_the_change(
    client: TestClient, world: World, app: FastAPI
) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    guests = [join_as_guest(app, calibration.code, n) for n in ("Ana", "Ben")]
    for (g, t), v in zip(guests, (0, 3), strict=True):
        rate_as(g, t, calibration.code, {"questioning": v}, sid)
    client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "next_round"}
    )
    assert guests[0][0].get(f"/api/calibration/{calibration.code}/ratings").json() == {
        "round": 2,
        "ratings": [],
    }
    for g, t in guests:
        rate_as(g, t, calibration.code, {"questioning": 2}, sid)
    report = client.get(f"/api/calibration/sessions/{calibration.id}/report").json()
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert report["round_change"]["items"]["questioning"] == [0.0, 1.0]


def test_history_and_the_calibrated_badge(client: TestClient, world: World, app: FastAPI) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    client.post(
        f"/calibration/{calibration.id}/master",
        data={
            "csrf_token": token,
            f"master-{sid}-questioning": "2",
            f"master-{sid}-explaining_thinking": "1",
        },
    )
    coach = TestClient(app, follow_redirects=False)
    ctoken = login(coach, world.observer)
    coach.post("/join", data={"csrf_token": ctoken, "code": calibration.code})
    rate_as(coach, ctoken, calibration.code, {"questioning": 3, "explaining_thinking": 1}, sid)
    assert "No revealed sessions" in coach.get("/calibration-history").text
    client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reveal"}
    )
    page = coach.get("/calibration-history").text
    # 2 of 2 within one level, but 1 of 2 exact: below the default rule's 60% exact.
    assert "Not certified" in page and "data-not-calibrated" in page
    assert "latest session: 100% within one level, 50% exact" in page


def test_ratings_csv(client: TestClient, world: World, app: FastAPI) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    guest, gtoken = join_as_guest(app, calibration.code, "=Evil()")
    rate_as(guest, gtoken, calibration.code, {"questioning": 1}, sid)
    csv_text = client.get(f"/calibration/{calibration.id}/ratings.csv").text
    lines = csv_text.split("\r\n")
    assert lines[0].startswith("session_id,session_title,rubric_slug,rubric_version,round,rater")
    assert ",'=Evil(),guest," in lines[1]


def test_sixty_raters_rate_at_once_and_nothing_is_lost(
    client: TestClient, world: World, app: FastAPI, session: Session
) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    guests = [join_as_guest(app, calibration.code, f"Rater {i:02d}") for i in range(60)]
    barrier = threading.Barrier(len(guests))
    errors: list[BaseException] = []

    def rate(i: int) -> None:
        guest, gtoken = guests[i]
        barrier.wait()
        try:
            rate_as(
                guest,
                gtoken,
                calibration.code,
                {
                    "questioning": i % 4,
                    "explaining_thinking": (i // 2) % 4,
                    "sources_of_ideas": 1,
                    "responsibility_for_learning": 2,
                },
                sid,
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=rate, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    session.rollback()
    assert session.exec(select(func.count()).select_from(Rating)).one() == 240
    report = client.get(f"/api/calibration/sessions/{calibration.id}/report").json()
    latest = report["latest"]
    assert len(latest["raters"]) == 60
    assert latest["items"]["questioning"]["distribution"] in (
        {"0": 15, "1": 15, "2": 15, "3": 15},
        {0: 15, 1: 15, 2: 15, 3: 15},
    )
    assert latest["items"]["sources_of_ideas"]["exact_agreement"] == 1.0


def test_the_report_is_built_once_for_the_room_and_again_after_a_late_rating(
    client: TestClient, world: World, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.calibration import service

    builds: list[int] = []
    real_build = service._build_report

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        builds.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(service, "_build_report", counting)
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    guests = []
    for n, name in enumerate(("Ana", "Ben", "Cy", "Dee")):
        guest, gtoken = join_as_guest(app, calibration.code, name)
        if name != "Dee":
            rate_as(guest, gtoken, calibration.code, {"questioning": n % 3}, sid)
        guests.append((guest, gtoken))
    client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reveal"}
    )
    seen = [g.get(f"/api/calibration/{calibration.code}/report").json() for g, _ in guests]
    assert [r["latest"]["raters"] for r in seen[:3]] == [
        ["Ana", "Rater 2", "Rater 3"],
        ["Rater 1", "Ben", "Rater 3"],
        ["Rater 1", "Rater 2", "Cy"],
    ]  # one build, and each viewer still sees only their own name
    assert client.get(f"/calibration/{calibration.id}/report").status_code == 200
    full = client.get(f"/api/calibration/sessions/{calibration.id}/report").json()
    assert full["latest"]["raters"] == ["Ana", "Ben", "Cy"]
    assert len(builds) == 1
    assert guests[0][0].get(f"/c/{calibration.code}").status_code == 200
    assert len(builds) == 1

    # A late rating (the facilitator reopens for Dee) makes the next view build it again.
    client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reopen"}
    )
    rate_as(guests[3][0], guests[3][1], calibration.code, {"questioning": 2}, sid)
    client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reveal"}
    )
    late = guests[3][0].get(f"/api/calibration/{calibration.code}/report").json()
    assert late["latest"]["raters"] == ["Rater 1", "Rater 2", "Rater 3", "Dee"]
    assert len(builds) == 2
    # …and so does a changed master score.
    client.post(
        f"/calibration/{calibration.id}/master",
        data={"csrf_token": token, f"master-{sid}-questioning": "1"},
    )
    again = client.get(f"/api/calibration/sessions/{calibration.id}/report").json()
    assert again["master"][0]["value"] == 1
    assert len(builds) == 3


def test_a_rating_read_before_a_reveal_that_committed_first_is_refused(
    client: TestClient, world: World, app: FastAPI
) -> None:
    """The revealed report is cached on the session row alone, so no rating may land after a
    reveal: a rater's request that read the session while it was open, and reaches its
    write after the facilitator's reveal committed, is refused on the state it locks."""
    from app.calibration import service
    from app.calibration.models import Rater
    from app.errors import Conflict

    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    sid = first_stimulus_id(app, calibration)
    guest, gtoken = join_as_guest(app, calibration.code, "Ana")
    rate_as(guest, gtoken, calibration.code, {"questioning": 1}, sid)
    join_as_guest(app, calibration.code, "Ben")
    with Session(app.state.engine, expire_on_commit=False) as session:
        stale = service.by_code(session=session, code=calibration.code)
        assert stale is not None and stale.status.value == "open"
        ben = session.exec(select(Rater).where(Rater.display_name == "Ben")).one()
        session.commit()
        revealed = client.post(
            f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reveal"}
        )
        assert revealed.status_code in (200, 303), revealed.text
        with pytest.raises(Conflict, match="Rating is closed"):
            service.rate(
                session=session,
                calibration=stale,
                rater=ben,
                ratings=[(sid, "questioning", 2, None)],
            )
        session.rollback()
    assert guest.get(f"/api/calibration/{calibration.code}/report").json()["latest"]["raters"] == [
        "Ana"
    ]


def test_reveal_and_a_new_round_wait_for_the_first_rating(
    client: TestClient, world: World, app: FastAPI
) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    for action in ("reveal", "next_round"):
        refused = client.post(
            f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": action}
        )
        assert refused.status_code == 409, refused.text
        assert "Nobody has rated in round 1 yet" in refused.text
    part = client.get(
        f"/calibration/{calibration.id}",
        headers={"HX-Request": "true", "HX-Target": "status-actions"},
    )
    assert part.status_code == 200 and "<html" not in part.text
    assert "disabled data-reveal" in part.text and 'hx-trigger="every 3s"' in part.text
    guest, gtoken = join_as_guest(app, calibration.code, "Ana")
    rate_as(
        guest, gtoken, calibration.code, {"questioning": 2}, first_stimulus_id(app, calibration)
    )
    part = client.get(
        f"/calibration/{calibration.id}",
        headers={"HX-Request": "true", "HX-Target": "status-actions"},
    ).text
    assert 'data-confirm="reveal"' in part and "1 of 1</span> raters have rated" in part
    assert "every 3s" not in part  # it stops asking once reveal is possible
    revealed = client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reveal"}
    )
    assert revealed.status_code == 303


def test_a_rater_page_learns_when_the_room_moves_on(
    client: TestClient, world: World, app: FastAPI
) -> None:
    token = login(client, world.facilitator)
    calibration = create_session(client, token)
    guest, gtoken = join_as_guest(app, calibration.code, "Ana")
    state = f"/c/{calibration.code}/state"
    assert guest.get(state, params={"seen": "1:open"}).status_code == 204
    rate_as(
        guest, gtoken, calibration.code, {"questioning": 2}, first_stimulus_id(app, calibration)
    )
    client.post(
        f"/calibration/{calibration.id}/status", data={"csrf_token": token, "action": "reveal"}
    )
    moved = guest.get(state, params={"seen": "1:open"})
    assert moved.status_code == 200 and moved.headers["HX-Refresh"] == "true"
    assert guest.get(state, params={"seen": "1:revealed"}).status_code == 204
    page = guest.get(f"/c/{calibration.code}").text
    assert 'hx-get="/c/' + calibration.code + '/state?seen=1:revealed"' in page
    stranger = TestClient(app, follow_redirects=False)
    assert stranger.get(state, params={"seen": "1:open"}).status_code == 403
    assert guest.get(state, params={"seen": "x" * 100}).status_code == 422
