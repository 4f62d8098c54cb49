"""Implementation data on a hand-computed data set: every item kind, groups, the district's
calendar, small groups, role scope, trends, coverage and the CSV of figures."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts.models import Teacher, User
from app.analytics.models import ObservationItem
from app.db import utcnow
from app.observations import service
from app.observations.models import Observation
from app.rubrics.models import RubricVersion
from tests.helpers import World, login, make_observation, walkthrough_rubric

CHICAGO_2330_OCT_31 = datetime(2026, 11, 1, 4, 30, tzinfo=UTC)  # 23:30 on Oct 31 in Chicago


def _visit(
    session: Session,
    user: User,
    teacher: Teacher,
    at: datetime,
    values: dict[str, Any],
    **kwargs: Any,
) -> uuid.UUID:
    return make_observation(
        session,
        user,
        teacher=teacher,
        observed_at=at,
        values=values,
        subject="Mathematics",
        **kwargs,
    ).id


def _district(session: Session, world: World) -> dict[str, Any]:
    """Three visits at Lincoln (one at 23:30 local on Oct 31), one at Roosevelt, one draft."""
    assert world.roosevelt.id and world.lincoln.id
    rosa = Teacher(name="Rosa Park", school_id=world.roosevelt.id, grades="7")
    ben = Teacher(name="Ben Never", school_id=world.lincoln.id, grades="2")
    gone = Teacher(name="Gone Teacher", school_id=world.lincoln.id, active=False)
    session.add_all([rosa, ben, gone])
    session.commit()
    ana = world.teacher
    ids = {
        "a1": _visit(
            session,
            world.observer,
            ana,
            datetime(2026, 10, 5, 15, tzinfo=UTC),
            {
                "task_visible": {"value": True},
                "partner_talk": {"value": False},
                "students_explaining": {"value": 4},
                "overall_discourse": {"value": 3, "evidence": "Pairs compared methods."},
                "glow": {"value": "Great launch"},
            },
            duration_seconds=600,
            grade="1",
        ),
        "a2": _visit(
            session,
            world.observer,
            ana,
            CHICAGO_2330_OCT_31,
            {
                "task_visible": {"value": True},
                "students_explaining": {"value": 1},
                "overall_discourse": {"not_observed": True},
                "glow": {"value": "   "},
            },
            duration_seconds=300,
            grade="1",
        ),
        "a3": _visit(
            session,
            world.principal,
            ana,
            datetime(2026, 11, 10, 16, tzinfo=UTC),
            {
                "task_visible": {"value": False},
                "students_explaining": {"value": 6},
                "overall_discourse": {"value": 5},
            },
            grade="K",
        ),
        "r1": _visit(
            session,
            world.other_principal,
            rosa,
            datetime(2026, 10, 20, 15, tzinfo=UTC),
            {
                "task_visible": {"value": True},
                "students_explaining": {"value": 3},
                "overall_discourse": {"value": 2},
            },
            duration_seconds=900,
            grade="7",
        ),
        "draft": _visit(
            session,
            world.other_principal,
            rosa,
            datetime(2026, 10, 21, 15, tzinfo=UTC),
            {
                "overall_discourse": {"value": 1},
            },
            status="draft",
        ),
    }
    return {"ids": ids, "rosa": rosa, "ben": ben}


def _version_id(session: Session) -> int:
    version_id = walkthrough_rubric(session).id
    assert version_id is not None
    return version_id


def _table(html: str, item: str) -> dict[str, dict[str, str]]:
    """The figures table of one item: group -> {measure or level: text}."""
    section = html.split(f'data-item="{item}"', 1)[1].split("</section>", 1)[0]
    rows = {}
    for group, cells in re.findall(r'<tr data-group="([^"]+)"[^>]*>(.*?)</tr>', section, re.S):
        found = re.findall(r'data-(?:level|measure)="([^"]+)">([^<]*)<', cells)
        rows[group] = dict(found)
    return rows


def _dashboard(client: TestClient, session: Session, query: str) -> str:
    page = client.get(
        f"/dashboard?rubric_version_id={_version_id(session)}&from=2026-08-01&{query}"
    )
    assert page.status_code == 200, page.text
    return page.text


def test_every_item_kind_by_school_equals_the_hand_count(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    login(client, ready.admin)
    page = _dashboard(client, session, "by=school")
    assert 'data-count="4"' in page  # the draft is not counted
    overall = _table(page, "overall_discourse")
    assert overall["Lincoln Elementary"] == {
        "visits": "3",
        "1": "0",
        "2": "0",
        "3": "1",
        "4": "0",
        "5": "1",
        "na": "1",
        "unanswered": "0",
        "mean_level": "4.00",
    }
    assert overall["Roosevelt Middle"]["2"] == "1" and overall["All"]["mean_level"] == "3.33"
    assert _table(page, "task_visible")["Lincoln Elementary"] == {
        "visits": "3",
        "seen": "2",
        "share_seen": "67%",
    }
    assert _table(page, "partner_talk")["All"] == {"visits": "4", "seen": "0", "share_seen": "0%"}
    # Tallies: 4 + 1 + 6 = 11 in 3 visits; per 10 minutes over the two timed visits only:
    # (4 + 1) tallies in (600 + 300) s = 3.33.
    assert _table(page, "students_explaining")["Lincoln Elementary"] == {
        "visits": "3",
        "total": "11",
        "per_visit": "3.67",
        "per_10_minutes": "3.33",
    }
    assert _table(page, "students_explaining")["Roosevelt Middle"]["per_10_minutes"] == "2.00"
    # Text: written in one of Lincoln's three visits (blank space is not writing).
    assert _table(page, "glow")["Lincoln Elementary"] == {
        "visits": "3",
        "filled": "1",
        "share_filled": "33%",
    }
    assert page.count("<svg") >= 13


def test_months_follow_the_district_calendar_not_utc(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    login(client, ready.admin)
    by_month = _table(_dashboard(client, session, "by=month"), "task_visible")
    # 23:30 on Oct 31 in Chicago is November in UTC; the district counts it in October.
    assert by_month["Oct 2026"]["visits"] == "3" and by_month["Nov 2026"]["visits"] == "1"
    october = _table(_dashboard(client, session, "by=school&to=2026-10-31"), "task_visible")
    assert october["All"]["visits"] == "3"
    november = _table(_dashboard(client, session, "by=school&from=2026-11-01"), "task_visible")
    assert november["All"]["visits"] == "1"
    row = session.exec(
        select(ObservationItem).where(
            ObservationItem.item_key == "task_visible",
            ObservationItem.observed_at == CHICAGO_2330_OCT_31,
        )
    ).one()
    assert (str(row.observed_on), str(row.observed_week), str(row.observed_month)) == (
        "2026-10-31",
        "2026-10-26",
        "2026-10-01",
    )


def test_small_groups_are_flagged_not_hidden(
    client: TestClient, ready: World, session: Session, app: FastAPI
) -> None:
    _district(session, ready)
    app.state.settings.small_group_visits = 2
    login(client, ready.admin)
    page = _dashboard(client, session, "by=school")
    section = page.split('data-item="task_visible"', 1)[1].split("</section>", 1)[0]
    assert re.search(r'<tr data-group="Roosevelt Middle" class="small-group" data-small>', section)
    assert re.search(r'<tr data-group="Lincoln Elementary">', section)
    assert "Roosevelt Middle (small)" in page.split('data-item="overall_discourse"', 1)[1]


def test_grade_teacher_observer_and_week_groups(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    login(client, ready.admin)
    by_grade = _table(_dashboard(client, session, "by=grade"), "task_visible")
    assert [(g, r["visits"]) for g, r in by_grade.items()] == [
        ("K", "1"),
        ("1", "2"),
        ("7", "1"),
        ("All", "4"),
    ]
    by_observer = _table(_dashboard(client, session, "by=observer"), "task_visible")
    assert by_observer["Observer Person"]["visits"] == "2"
    by_week = _table(_dashboard(client, session, "by=week"), "task_visible")
    assert by_week["Week of 2026-10-26"]["visits"] == "1"
    # Teachers are grouped within one school: without one the page says so.
    page = _dashboard(client, session, "by=teacher")
    assert 'data-note="by"' in page and "Choose a school" in page
    lincoln = _dashboard(client, session, f"by=teacher&school_id={ready.lincoln.id}")
    assert _table(lincoln, "task_visible")["Ana García"]["visits"] == "3"


def test_a_principal_sees_their_school_by_teacher(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    login(client, ready.principal)
    page = _dashboard(client, session, f"school_id={ready.roosevelt.id}")  # ignored: own school
    table = _table(page, "task_visible")
    assert list(table) == ["Ana García", "All"] and table["All"]["visits"] == "3"


def test_an_observer_sees_only_their_own_visits(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    login(client, ready.observer)
    page = _dashboard(client, session, "")
    assert '<option value="month" selected>' in page  # their own visits, over time
    assert _table(page, "task_visible")["All"]["visits"] == "2"


def test_amending_deleting_and_restoring_move_the_figures(
    client: TestClient, ready: World, session: Session
) -> None:
    made = _district(session, ready)
    obs = session.get(Observation, made["ids"]["r1"])
    assert obs is not None
    rubric = session.get(RubricVersion, obs.rubric_version_id)
    assert rubric is not None
    payload = service.payload_of(obs, rubric)
    payload = payload.model_copy(
        update={"values": {**payload.values, "overall_discourse": service.ItemValue(value=4)}}
    )
    assert (
        service.amend(
            session=session, author=ready.other_principal, obs=obs, payload=payload
        ).status
        == "updated"
    )
    session.commit()
    token = login(client, ready.admin)
    assert (
        _table(_dashboard(client, session, "by=school"), "overall_discourse")["Roosevelt Middle"][
            "4"
        ]
        == "1"
    )
    assert (
        client.post(f"/observations/{obs.id}/delete", data={"csrf_token": token}).status_code == 303
    )
    assert "Roosevelt Middle" not in _table(
        _dashboard(client, session, "by=school"), "overall_discourse"
    )
    assert (
        client.post(f"/observations/{obs.id}/restore", data={"csrf_token": token}).status_code
        == 303
    )
    assert "Roosevelt Middle" in _table(
        _dashboard(client, session, "by=school"), "overall_discourse"
    )
    rows = session.exec(
        select(ObservationItem).where(ObservationItem.observation_id == obs.id)
    ).all()
    assert len(rows) == 13  # one per item of the version, replaced on amend, never doubled


def test_trends_by_month_with_the_change(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    login(client, ready.admin)
    page = client.get(
        f"/dashboard/trends?rubric_version_id={_version_id(session)}&from=2026-10-01&to=2026-11-30"
    ).text
    section = page.split('data-trend="overall_discourse"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(
        r'data-period="([^"]+)".*?data-measure="visits">(\d+)<.*?data-measure="value">([^<]+)<'
        r'.*?data-measure="change">([^<]+)<',
        section,
        re.S,
    )
    # October: levels 3 and 2 (the visit marked not observed is no score) -> 2.50; November 5.
    assert rows == [("2026-10-01", "3", "2.50", "—"), ("2026-11-01", "1", "5.00", "+2.50")]
    looks = page.split('data-trend="task_visible"', 1)[1].split("</section>", 1)[0]
    assert ">100%<" in looks and "-100 pts" in looks


def test_coverage_counts_teachers_never_visited(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    login(client, ready.admin)
    page = client.get("/dashboard/coverage?since=2026-10-15").text
    lincoln = re.search(r'data-school="Lincoln Elementary".*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
    # Ana (visited) and Ben (never); the inactive teacher is not counted.
    assert 'data-measure="teachers">2<' in lincoln and 'data-measure="visited">1<' in lincoln
    assert 'data-measure="share">50%<' in lincoln
    later = client.get("/dashboard/coverage?since=2026-11-05").text
    unvisited = later.split("data-unvisited", 1)[1].split("</section>", 1)[0]
    assert re.findall(r'data-teacher="([^"]+)"', unvisited) == ["Ben Never", "Rosa Park"]
    assert later.count('data-unvisited data-total="2"') == 1
    lincoln_only = client.get(f"/dashboard/coverage?since=2026-11-05&school_id={ready.lincoln.id}")
    assert 'data-unvisited data-total="1"' in lincoln_only.text
    assert 'data-last="2026-10-20"' in unvisited and ">Never<" in unvisited
    spread = later.split("data-spread", 1)[1]
    assert 'data-observer="Principal Person"' in spread  # the Nov 10 visit


def test_a_principal_sees_their_own_coverage_only(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    login(client, ready.principal)
    page = client.get(f"/dashboard/coverage?since=2026-10-15&school_id={ready.roosevelt.id}").text
    assert "Lincoln Elementary" in page and "Rosa Park" not in page and "Roosevelt" not in page
    client.cookies.clear()
    login(client, ready.observer)
    assert client.get("/dashboard/coverage").status_code == 403


def test_the_figures_csv_has_what_the_page_shows(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    login(client, ready.admin)
    response = client.get(
        f"/dashboard.csv?rubric_version_id={_version_id(session)}&from=2026-08-01&by=school"
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    text = response.text
    assert text.startswith(
        "rubric_slug,rubric_version,group_by,group,group_visits,small_group,item_key,item_title,"
        "item_kind,measure,value\r\n"
    )
    assert (
        "discourse-walkthrough,1,school,Lincoln Elementary,3,true,students_explaining,"
        '"A student explains why, not only what",count,per_10_minutes,3.3333\r\n'
    ) in text
    assert "discourse-walkthrough,1,school,All,4,false,overall_discourse," in text
    assert ",overall_discourse,Overall discourse during the visit,scale,not_observed,1\r\n" in text


@pytest.mark.parametrize(
    "query", ["by=nonsense", "from=yesterday", "grade=13", "rubric_version_id=99999999999"]
)
def test_bad_filters_are_named_not_a_server_error(
    client: TestClient, ready: World, session: Session, query: str
) -> None:
    login(client, ready.admin)
    assert client.get(f"/dashboard?{query}").status_code == 200
    assert client.get(f"/dashboard.csv?{query}").status_code == 200
    assert client.get(f"/dashboard/trends?{query}").status_code == 200


def test_a_principals_home_shows_their_coverage_at_a_glance(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    _visit(session, ready.observer, ready.teacher, utcnow() - timedelta(days=2), {})
    login(client, ready.principal)
    tile = client.get("/").text.split("data-home-coverage", 1)[1].split("</section>", 1)[0]
    # Ana visited two days ago; Ben never; the inactive teacher is not on the roster's count.
    assert re.search(r"data-visited>1</strong> of <strong data-teachers>2<", tile)
    assert "1 not visited since" in tile
    client.cookies.clear()
    login(client, ready.admin)
    assert "data-home-coverage" not in client.get("/").text


@pytest.mark.parametrize("role", ["observer", "principal", "facilitator", "admin"])
def test_each_role_reaches_the_implementation_pages_it_may(
    client: TestClient, ready: World, role: str
) -> None:
    for path in ("/dashboard", "/dashboard/trends", "/dashboard/coverage", "/dashboard.csv"):
        signed_out = client.get(path)
        assert signed_out.status_code == 303, path
    login(client, getattr(ready, role))
    for path in ("/dashboard", "/dashboard/trends", "/dashboard.csv"):
        assert client.get(path).status_code == 200, path
    coverage = client.get("/dashboard/coverage")
    assert coverage.status_code == (403 if role == "observer" else 200)


def test_a_month_without_visits_is_a_gap_in_the_trend_not_a_skipped_step(
    client: TestClient, ready: World, session: Session
) -> None:
    _district(session, ready)
    _visit(
        session,
        ready.observer,
        ready.teacher,
        datetime(2027, 1, 12, 15, tzinfo=UTC),
        {"overall_discourse": {"value": 4}},
    )
    login(client, ready.admin)
    page = client.get(
        f"/dashboard/trends?rubric_version_id={_version_id(session)}&from=2026-10-01"
    ).text
    section = page.split('data-trend="overall_discourse"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(
        r'data-period="([^"]+)".*?data-measure="visits">(\d+)<.*?data-measure="value">([^<]+)<'
        r".*?data-measure=\"change\">([^<]+)<",
        section,
        re.S,
    )
    assert rows == [
        ("2026-10-01", "3", "2.50", "—"),
        ("2026-11-01", "1", "5.00", "+2.50"),
        ("2026-12-01", "0", "—", "—"),  # no visits: no value, and no change either side
        ("2027-01-01", "1", "4.00", "—"),
    ]
