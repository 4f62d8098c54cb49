"""Participation maps on the dashboard: by school and by month, hand-computed from four lessons
(the examples the capture page and the server's figures are checked against), the sums equal
to the rows after amending and deleting, the trend's headline, and the CSV of figures."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts.models import Teacher
from app.analytics import service as analytics
from app.observations import service
from app.observations.models import Observation
from app.rubrics.models import RubricVersion
from tests.helpers import World, login, make_observation

MAPS = {
    e["name"].split(":")[0]: e["map"]
    for e in json.loads(
        (
            Path(__file__).resolve().parents[1] / "fixtures" / "participation-examples.json"
        ).read_text()
    )["examples"]
}
UNEVEN = MAPS["counts 3,1,0,0"]  # 4 students, 4 contributions, 2 spoke, top 3: 100%, Gini .625
EVEN = MAPS["five students, two each"]  # 5 students, 10 contributions, all spoke, 60%, Gini 0
SILENT = MAPS["none at all"]  # 4 students, nobody spoke: no top share, no Gini


def _rubric(session: Session) -> RubricVersion:
    return session.exec(select(RubricVersion).where(RubricVersion.slug == "who-talks")).one()


def _lessons(session: Session, world: World) -> dict[str, Observation]:
    assert world.roosevelt.id
    rosa = Teacher(name="Rosa Park", school_id=world.roosevelt.id, grades="7")
    session.add(rosa)
    session.commit()

    def lesson(
        author: Any, teacher: Teacher, month: int, value: dict[str, Any] | None
    ) -> Observation:
        return make_observation(
            session,
            author,
            teacher=teacher,
            rubric=("who-talks", 1),
            observed_at=datetime(2026, month, 12, 15, tzinfo=UTC),
            duration_seconds=1200,
            values={"talk_map": {"value": value}} if value is not None else {},
        )

    return {
        "l_oct": lesson(world.observer, world.teacher, 10, UNEVEN),
        "l_nov": lesson(world.observer, world.teacher, 11, EVEN),
        "r_nov": lesson(world.other_principal, rosa, 11, SILENT),
        "r_nov_unmapped": lesson(world.other_principal, rosa, 11, None),
    }


def _table(html: str) -> dict[str, dict[str, str]]:
    section = html.split('data-item="talk_map"', 1)[1].split("</section>", 1)[0]
    return {
        group: dict(re.findall(r'data-measure="([^"]+)">([^<]*)<', cells))
        for group, cells in re.findall(r'<tr data-group="([^"]+)"[^>]*>(.*?)</tr>', section, re.S)
    }


def test_the_dashboard_rolls_maps_up_by_school_and_month(
    client: TestClient, world: World, session: Session
) -> None:
    _lessons(session, world)
    login(client, world.admin)
    vid = _rubric(session).id
    page = client.get(f"/dashboard?rubric_version_id={vid}&by=school&from=2026-08-01")
    assert page.status_code == 200
    by_school = _table(page.text)
    # Lincoln: 4 + 10 contributions in 2 lessons; 2 + 5 of 4 + 5 students spoke; top-3 shares
    # 100% and 60% (mean 80%); Gini .625 and 0 (mean .3125).
    assert by_school["Lincoln Elementary"] == {
        "visits": "2",
        "lessons_mapped": "2",
        "contributions_per_lesson": "7.0",
        "share_spoke": "78%",
        "mean_top3_share": "80%",
        "mean_gini": "0.31",
    }
    # Roosevelt: one silent lesson (mapped, nobody spoke) and one visit with no map.
    assert by_school["Roosevelt Middle"] == {
        "visits": "2",
        "lessons_mapped": "1",
        "contributions_per_lesson": "0.0",
        "share_spoke": "0%",
        "mean_top3_share": "—",
        "mean_gini": "—",
    }
    assert by_school["All"] == {
        "visits": "4",
        "lessons_mapped": "3",
        "contributions_per_lesson": "4.7",
        "share_spoke": "54%",  # 7 of 13
        "mean_top3_share": "80%",
        "mean_gini": "0.31",
    }
    by_month = _table(
        client.get(f"/dashboard?rubric_version_id={vid}&by=month&from=2026-08-01").text
    )
    assert by_month["Oct 2026"]["mean_gini"] == "0.62"  # .625, half to even
    assert by_month["Nov 2026"] == {
        "visits": "3",
        "lessons_mapped": "2",
        "contributions_per_lesson": "5.0",
        "share_spoke": "56%",  # 5 of 9
        "mean_top3_share": "60%",
        "mean_gini": "0.00",
    }
    trends = client.get(f"/dashboard/trends?rubric_version_id={vid}&from=2026-08-01")
    assert trends.status_code == 200
    assert "Students who spoke" in trends.text
    csv = client.get(f"/dashboard.csv?rubric_version_id={vid}&by=school&from=2026-08-01").text
    assert ",talk_map,Participation map,participation,mean_gini,0.3125" in csv
    assert ",talk_map,Participation map,participation,share_spoke,0.5385" in csv
    # Per 10 minutes of the lessons that were mapped: 14 contributions in 3 x 20 minutes (the
    # visit with no map does not lengthen the time).
    assert "All,4,false,talk_map,Participation map,participation,per_10_minutes,2.3333" in csv


def test_the_sums_equal_the_rows_after_amending_and_deleting(
    client: TestClient, world: World, session: Session
) -> None:
    made = _lessons(session, world)
    rubric = _rubric(session)
    obs = made["l_oct"]
    amended = service.payload_of(obs, rubric).model_copy(
        update={"values": {"talk_map": service.ItemValue.model_validate({"value": EVEN})}}
    )
    assert service.amend(session=session, author=world.observer, obs=obs, payload=amended).stored
    session.commit()
    service.set_deleted(session=session, admin=world.admin, obs=made["r_nov"], deleted=True)
    session.commit()
    assert rubric.id
    for by in ("school", "month", "grade"):
        kwargs: dict[str, Any] = {
            "session": session,
            "user": world.admin,
            "rubric": rubric,
            "filters": analytics.Filters(rubric.id),
            "by": by,
        }
        assert analytics._sums_plan(world.admin, kwargs["filters"], by) is not None
        summed = analytics.figures(**kwargs)
        rows = analytics.figures(**kwargs, sums=False)
        [s_item] = [i for i in summed.items if i.item.key == "talk_map"]
        [r_item] = [i for i in rows.items if i.item.key == "talk_map"]
        assert s_item.all == r_item.all, by
        assert s_item.cells == r_item.cells, by
    # Two even lessons at Lincoln now; the silent one is deleted.
    assert s_item.all.total == 20 and s_item.all.students == 10 and s_item.all.speakers == 10
    assert s_item.all.mean_gini == 0 and s_item.all.spoken == 2 and s_item.all.filled == 2
