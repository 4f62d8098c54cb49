"""The dashboard on random data: scale counts equal the raw data by school and by month,
within role scope."""

import random
import re
from collections import Counter
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.accounts.models import Teacher
from tests.helpers import World, login, make_observation, walkthrough_rubric


def _seed(session: Session, world: World) -> list[tuple[str, str, object]]:
    """40 observations with random levels at two schools over two months; returns the raw data."""
    assert world.roosevelt.id is not None
    rt = Teacher(name="Rosa Park", school_id=world.roosevelt.id)
    session.add(rt)
    session.commit()
    rng = random.Random(7)
    raw = []
    for i in range(40):
        at_lincoln = i % 2 == 0
        user = world.observer if at_lincoln else world.other_principal
        teacher = world.teacher if at_lincoln else rt
        month = 10 if i < 16 else 11
        value = rng.choice([1, 2, 3, 4, 5, "na", None])
        entry = {"not_observed": True} if value == "na" else {"value": value}
        make_observation(
            session,
            user,
            teacher=teacher,
            values={"overall_discourse": entry},
            observed_at=datetime(2026, month, 1 + i % 20, 14, tzinfo=UTC),
            status="submitted" if i != 39 else "draft",
        )
        if i != 39:
            raw.append(
                (
                    "Lincoln Elementary" if at_lincoln else "Roosevelt Middle",
                    "Oct 2026" if month == 10 else "Nov 2026",
                    value,
                )
            )
    return raw


def _table(html: str, item: str) -> dict[str, dict[str, int]]:
    section = html.split(f'data-item="{item}"', 1)[1].split("</section>", 1)[0]
    rows = {}
    for group, cells in re.findall(r'<tr data-group="([^"]+)">(.*?)</tr>', section, re.S):
        rows[group] = {lv: int(n) for lv, n in re.findall(r'data-level="([^"]+)">(\d+)<', cells)}
    rows.pop("All", None)
    return rows


def _expected(raw, key_index: int) -> dict[str, dict[str, int]]:  # type: ignore[no-untyped-def]
    expected: dict[str, Counter[str]] = {}
    for row in raw:
        group, value = row[key_index], row[2]
        counter = expected.setdefault(group, Counter())
        if value is not None:
            counter[str(value)] += 1
    return {
        g: {**{str(v): c.get(str(v), 0) for v in range(1, 6)}, "na": c.get("na", 0)}
        for g, c in expected.items()
        if sum(c.values())
    }


def _version_id(session: Session) -> int:
    version_id = walkthrough_rubric(session).id
    assert version_id is not None
    return version_id


def test_dashboard_counts_equal_the_raw_data(
    client: TestClient, ready: World, session: Session
) -> None:
    raw = _seed(session, ready)
    login(client, ready.admin)
    vid = _version_id(session)
    by_school = client.get(f"/dashboard?rubric_version_id={vid}&by=school&from=2026-08-01")
    assert by_school.status_code == 200
    assert f'data-count="{len(raw)}"' in by_school.text
    assert _table(by_school.text, "overall_discourse") == _expected(raw, 0)
    assert "<svg" in by_school.text
    by_month = client.get(f"/dashboard?rubric_version_id={vid}&by=month&from=2026-08-01")
    assert _table(by_month.text, "overall_discourse") == _expected(raw, 1)
    october = client.get(
        f"/dashboard?rubric_version_id={vid}&by=school&from=2026-10-01&to=2026-10-31"
    )
    assert _table(october.text, "overall_discourse") == _expected(
        [r for r in raw if r[1] == "Oct 2026"], 0
    )


def test_dashboard_follows_role_scope(client: TestClient, ready: World, session: Session) -> None:
    raw = _seed(session, ready)
    login(client, ready.principal)
    page = client.get(
        f"/dashboard?rubric_version_id={_version_id(session)}&by=school&from=2026-08-01"
    ).text
    assert set(_table(page, "overall_discourse")) <= {"Lincoln Elementary"}
    lincoln = [r for r in raw if r[0] == "Lincoln Elementary"]
    assert f'data-count="{len(lincoln)}"' in page
    assert _table(page, "overall_discourse") == _expected(lincoln, 0)
