"""Lists that scale: pages by keyset with a true total and a search, on every long list."""

import re
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.accounts.models import Role, Teacher, User
from app.observations.models import Observation
from tests.helpers import World, login, make_observation, password_hash

ROW_LINK = re.compile(r'<a href="/observations/([0-9a-f-]{36})">')


def _walk(client: TestClient, first: str) -> tuple[list[str], list[str]]:
    """Every page from `first` by Next: the observation ids in order, and the totals shown."""
    ids: list[str] = []
    totals: list[str] = []
    url: str | None = first
    while url:
        page = client.get(url).text
        assert len(ids) < 1000, "the pages never end"
        ids += ROW_LINK.findall(page)
        totals += re.findall(r'class="count" data-total="(\d+)"', page)
        found = re.search(r'href="([^"]+)" data-page-next', page)
        url = found.group(1).replace("&amp;", "&") if found else None
    return ids, totals


def test_the_observations_list_pages_through_every_row_once_with_the_true_total(
    client: TestClient, ready: World, session: Session
) -> None:
    start = datetime(2026, 9, 1, 15, tzinfo=UTC)
    for i in range(120):
        make_observation(
            session, ready.observer, teacher=ready.teacher, observed_at=start + timedelta(hours=i)
        )
    login(client, ready.admin)
    ids, totals = _walk(client, "/observations?status=submitted")
    assert len(ids) == 120 and len(set(ids)) == 120
    assert set(totals) == {"120"}
    first = client.get("/observations?status=submitted").text
    assert "120 observations; showing 50" in first and "data-page-previous" not in first
    # Newest first, and Previous comes back to the same page.
    second_url = re.search(r'href="([^"]+)" data-page-next', first).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    second = client.get(second_url).text
    back = re.search(r'href="([^"]+)" data-page-previous', second).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert ROW_LINK.findall(client.get(back).text) == ROW_LINK.findall(first)
    assert "status=submitted" in second_url  # the filters are kept


def test_the_observations_list_searches_teacher_names(
    client: TestClient, ready: World, session: Session
) -> None:
    assert ready.lincoln.id
    ben = Teacher(name="Benedict 100%_Sure", school_id=ready.lincoln.id)
    session.add(ben)
    session.commit()
    make_observation(session, ready.observer, teacher=ready.teacher)
    make_observation(session, ready.observer, teacher=ben)
    login(client, ready.admin)
    assert len(ROW_LINK.findall(client.get("/observations?q=bened").text)) == 1
    assert len(ROW_LINK.findall(client.get("/observations?q=100%25_").text)) == 1
    assert len(ROW_LINK.findall(client.get("/observations?q=0%25").text)) == 1
    assert len(ROW_LINK.findall(client.get("/observations?q=_x").text)) == 0  # _ is no wildcard


def test_a_teacher_page_pages_too(client: TestClient, ready: World, session: Session) -> None:
    for i in range(55):
        make_observation(
            session,
            ready.observer,
            teacher=ready.teacher,
            observed_at=datetime(2026, 9, 1, tzinfo=UTC) + timedelta(days=i),
        )
    login(client, ready.principal)
    ids, totals = _walk(client, f"/teachers/{ready.teacher.id}")
    assert len(set(ids)) == 55 and set(totals) == {"55"}


def test_a_cursor_that_is_not_ours_gives_the_first_page(
    client: TestClient, ready: World, session: Session
) -> None:
    make_observation(session, ready.observer, teacher=ready.teacher)
    login(client, ready.admin)
    for cursor in ("x", "WyJhZnRlciIsIFsxXV0", "W10", "eyJhIjoxfQ"):
        response = client.get(f"/observations?cursor={cursor}")
        assert response.status_code == 200 and len(ROW_LINK.findall(response.text)) == 1


def _many_teachers(session: Session, world: World, n: int) -> None:
    assert world.roosevelt.id and world.lincoln.id
    session.add_all(
        Teacher(
            name=f"Teacher {i:05d}",
            school_id=world.roosevelt.id if i % 2 else world.lincoln.id,
            district_id=f"D{i:05d}",
        )
        for i in range(n)
    )
    session.commit()


def test_admin_teachers_page_with_a_true_total_and_a_search(
    client: TestClient, ready: World, session: Session
) -> None:
    _many_teachers(session, ready, 130)
    login(client, ready.admin)
    page = client.get("/admin/teachers").text
    assert 'data-total="131"' in page and "131 teachers; showing 50" in page
    names: list[str] = []
    url: str | None = "/admin/teachers"
    while url:
        html = client.get(url).text
        names += re.findall(r'<a href="/admin/teachers/\d+">([^<]+)</a>', html)
        found = re.search(r'href="([^"]+)" data-page-next', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert len(names) == 131 and names == sorted(names)
    assert 'data-total="1"' in client.get("/admin/teachers?q=d00042").text
    lincoln = client.get(f"/admin/teachers?school_id={ready.lincoln.id}").text
    assert 'data-total="66"' in lincoln  # 65 even-numbered, and Ana


def test_admin_users_page_searches_and_pages(
    client: TestClient, ready: World, session: Session
) -> None:
    session.add_all(
        User(
            email=f"coach{i:03d}@example.org",
            name=f"Coach {i:03d}",
            role=Role.observer,
            school_id=ready.lincoln.id,
            password_hash=password_hash(),
        )
        for i in range(60)
    )
    session.commit()
    login(client, ready.admin)
    page = client.get("/admin/users").text
    assert 'data-total="65"' in page and "data-page-next" in page
    assert 'data-total="1"' in client.get("/admin/users?q=coach007@").text


def test_the_roster_is_searched_on_the_server_for_a_district(
    client: TestClient, ready: World, session: Session
) -> None:
    _many_teachers(session, ready, 300)
    login(client, ready.admin)
    found = client.get("/api/roster/search?q=Teacher 0012").json()
    assert found["total"] == 10 and len(found["teachers"]) == 10
    assert {t["school"] for t in found["teachers"]} == {"Lincoln Elementary", "Roosevelt Middle"}
    assert client.get("/api/roster/search?q=teacher").json()["total"] == 300
    assert len(client.get("/api/roster/search?q=teacher").json()["teachers"]) == 20
    # The start page does not carry the district's roster; a typed roster name still matches.
    start = client.get("/observations/new").text
    assert "Teacher 00123" not in start and "data-roster-search" in start


def test_a_school_observer_keeps_their_school_roster_and_searches_only_it(
    client: TestClient, ready: World, session: Session
) -> None:
    _many_teachers(session, ready, 40)
    login(client, ready.observer)
    found = client.get(f"/api/roster/search?q=teacher&school_id={ready.roosevelt.id}").json()
    assert found["total"] == 20 and {t["school"] for t in found["teachers"]} == {
        "Lincoln Elementary"
    }
    start = client.get("/observations/new").text
    assert "Teacher 00002" in start and "Teacher 00001" not in start
    assert "data-roster-search" not in start


def test_starting_with_a_district_roster_name_links_the_teacher(
    client: TestClient, ready: World, session: Session
) -> None:
    _many_teachers(session, ready, 30)
    token = login(client, ready.admin)
    response = client.post(
        "/observations",
        data={
            "csrf_token": token,
            "id": "",
            "teacher": "teacher 00007",
            "school_id": str(ready.lincoln.id),
            "rubric": "discourse-walkthrough:1",
            "grade": "",
            "subject": "Math",
            "observed_at": "2026-11-02T09:30",
            "tz_offset": "360",
        },
    )
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"]).text
    assert "Teacher 00007" in page


def test_accented_names_are_found_and_matched_in_any_case(
    client: TestClient, ready: World, session: Session
) -> None:
    assert ready.lincoln.id
    session.add(Teacher(name="Émile Özdemir", school_id=ready.lincoln.id))
    session.commit()
    token = login(client, ready.admin)
    found = client.get("/api/roster/search?q=émile özd").json()
    assert [t["name"] for t in found["teachers"]] == ["Émile Özdemir"]
    assert 'data-total="1"' in client.get("/admin/teachers?q=ÖZDEMIR").text
    response = client.post(
        "/observations",
        data={
            "csrf_token": token,
            "id": "",
            "teacher": "émile özdemir",
            "school_id": str(ready.lincoln.id),
            "rubric": "discourse-walkthrough:1",
            "grade": "",
            "subject": "Math",
            "observed_at": "2026-11-02T09:30",
            "tz_offset": "360",
        },
    )
    assert response.status_code == 303
    obs_id = response.headers["location"].split("/")[2]
    session.expire_all()
    obs = session.get(Observation, uuid.UUID(obs_id))
    assert obs is not None and obs.teacher_id is not None  # linked to the roster teacher
