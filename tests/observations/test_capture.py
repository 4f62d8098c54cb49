"""Starting, capturing, validating, reviewing and submitting an observation through the pages."""

import re
import uuid

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.observations.models import Observation, ObservationRevision, ObservationStatus
from app.rubrics.models import RubricVersion
from tests.helpers import World, login


def _start(client: TestClient, token: str, **fields: str) -> uuid.UUID:
    page = client.get("/observations/new")
    obs_id = re.search(r'name="id" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    data = {
        "csrf_token": token,
        "id": obs_id,
        "teacher": "Ana García",
        "rubric": "discourse-walkthrough:1",
        "grade": "K",
        "subject": "Mathematics",
        "observed_at": "2026-11-22T09:30",
        "tz_offset": "360",
        **fields,
    }
    response = client.post("/observations", data=data)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/observations/{obs_id}/edit"
    return uuid.UUID(obs_id)


def test_start_pins_the_rubric_version_and_links_the_roster_teacher(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token)
    obs = session.get(Observation, obs_id)
    assert obs is not None
    rubric = session.get(RubricVersion, obs.rubric_version_id)
    assert (rubric.slug, rubric.version) == ("discourse-walkthrough", 1)  # type: ignore[union-attr]
    assert obs.teacher_id == world.teacher.id
    assert obs.school_id == world.lincoln.id
    assert obs.status == ObservationStatus.draft
    assert obs.revision == 1
    assert obs.observed_at.isoformat() == "2026-11-22T15:30:00+00:00"  # 09:30 at UTC-6


def test_start_with_a_teacher_not_on_the_roster(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token, teacher="Guest Teacher")
    obs = session.get(Observation, obs_id)
    assert obs is not None
    assert (obs.teacher_id, obs.teacher_name) == (None, "Guest Teacher")


def test_resubmitting_the_start_form_does_not_make_a_second_observation(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token)
    again = client.post(
        "/observations",
        data={
            "csrf_token": token,
            "id": str(obs_id),
            "teacher": "Ana García",
            "rubric": "discourse-walkthrough:1",
            "observed_at": "2026-11-22T09:30",
        },
    )
    assert again.headers["location"] == f"/observations/{obs_id}/edit"
    assert len(session.exec(select(Observation)).all()) == 1


def test_start_form_errors_keep_what_was_typed(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    response = client.post(
        "/observations",
        data={
            "csrf_token": token,
            "id": "not-a-uuid",
            "teacher": "",
            "rubric": "nope",
            "subject": "Algebra I",
            "observed_at": "yesterday",
        },
    )
    assert response.status_code == 422
    assert "Choose a teacher or type their name." in response.text
    assert "Enter the date and time of the visit." in response.text
    assert 'value="Algebra I"' in response.text


def test_unpublished_rubric_version_is_refused(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    response = client.post(
        "/observations",
        data={
            "csrf_token": token,
            "id": str(uuid.uuid4()),
            "teacher": "X",
            "rubric": "math-discourse-quality:7",
            "observed_at": "2026-11-22T09:30",
        },
    )
    assert response.status_code == 422
    assert "This rubric version is not published." in response.text


def test_capture_page_shows_every_item_with_the_right_control(
    client: TestClient, world: World
) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token)
    page = client.get(f"/observations/{obs_id}/edit").text
    assert page.count('name="item-overall_discourse"') == 7  # 5 levels, not observed, no rating
    assert 'name="item-students_explaining"' in page and 'data-step="1"' in page
    assert 'role="switch" name="item-task_visible"' in page
    assert '<textarea id="glow-text" name="item-glow"' in page
    assert "What the levels mean" in page


def _capture(client: TestClient, obs_id: uuid.UUID, token: str, **fields: object):  # type: ignore[no-untyped-def]
    return client.post(f"/observations/{obs_id}", data={"csrf_token": token, **fields})


def test_values_of_every_kind_are_saved(client: TestClient, world: World, session: Session) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token)
    response = _capture(
        client,
        obs_id,
        token,
        action="draft",
        **{
            "item-task_visible": "yes",
            "item-students_explaining": "4",
            "item-overall_discourse": "na",
            "item-glow": "Clear task launch",
            "evidence-students_explaining": "Maya: because 3/4 is bigger",
            "note_minute": ["2", "5"],
            "note_text": ["Launch", "Pairs talking"],
            "tags": "fractions, pairs, fractions",
            "overall_notes": "Good energy",
            "duration_minutes": "8",
        },
    )
    assert response.status_code == 303
    session.rollback()  # end the read snapshot: see what the app committed
    session.expire_all()
    obs = session.get(Observation, obs_id)
    assert obs is not None
    assert obs.values["task_visible"]["value"] is True
    assert obs.values["partner_talk"]["value"] is False
    assert obs.values["students_explaining"] == {
        "value": 4,
        "not_observed": False,
        "evidence": "Maya: because 3/4 is bigger",
    }
    assert obs.values["overall_discourse"]["not_observed"] is True
    assert obs.values["overall_discourse"]["value"] is None
    assert obs.values["glow"]["value"] == "Clear task launch"
    assert obs.notes == [{"minute": 2, "text": "Launch"}, {"minute": 5, "text": "Pairs talking"}]
    assert obs.tags == ["fractions", "pairs"]
    assert obs.duration_seconds == 480
    assert obs.revision == 2


def test_invalid_values_are_shown_beside_each_item_and_nothing_typed_is_lost(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token)
    response = _capture(
        client,
        obs_id,
        token,
        action="review",
        **{
            "item-overall_discourse": "9",
            "item-students_explaining": "-2",
            "item-teacher_press": "lots",
            "item-revoicing": "201",
            "evidence-overall_discourse": "Evidence I typed",
            "overall_notes": "Notes I typed",
        },
    )
    assert response.status_code == 422
    text = response.text
    assert "Enter a whole number." in text  # teacher_press
    assert "Nothing was lost" in text
    assert "Evidence I typed" in text and "Notes I typed" in text
    response = _capture(
        client,
        obs_id,
        token,
        action="review",
        **{
            "item-overall_discourse": "9",
            "item-students_explaining": "-2",
            "item-revoicing": "201",
        },
    )
    assert response.status_code == 422
    assert "Choose one of the levels 1, 2, 3, 4, 5." in response.text
    assert "A tally cannot be negative." in response.text
    assert "A tally can be at most 200." in response.text
    session.rollback()  # end the read snapshot: see what the app committed
    session.expire_all()
    assert session.get(Observation, obs_id).revision == 1  # type: ignore[union-attr]


def test_not_observed_only_where_the_rubric_allows_it(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token, rubric="math-talk-community:1")
    response = _capture(client, obs_id, token, action="draft", **{"item-questioning": "na"})
    assert response.status_code == 422
    assert "cannot be marked &#39;not observed&#39;" in response.text


def test_review_lists_unanswered_items_then_submit(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token, rubric="math-talk-community:1")
    _capture(client, obs_id, token, action="review", **{"item-questioning": "2"})
    review = client.get(f"/observations/{obs_id}/review")
    assert review.status_code == 200
    assert "4 items without a rating" in review.text
    for title in (
        "Explaining mathematical thinking",
        "Source of mathematical ideas",
        "Responsibility for learning",
        "Evidence and notes",
    ):
        assert title in review.text
    revision = re.search(r'name="revision" value="(\d+)"', review.text).group(1)  # type: ignore[union-attr]
    done = client.post(
        f"/observations/{obs_id}/submit", data={"csrf_token": token, "revision": revision}
    )
    assert done.headers["location"] == f"/observations/{obs_id}?submitted=1"
    session.rollback()  # end the read snapshot: see what the app committed
    session.expire_all()
    obs = session.get(Observation, obs_id)
    assert obs is not None
    assert obs.status == ObservationStatus.submitted
    assert obs.submitted_at is not None


def test_submitting_a_stale_review_goes_back_to_review(client: TestClient, world: World) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token)
    response = client.post(
        f"/observations/{obs_id}/submit", data={"csrf_token": token, "revision": "99"}
    )
    assert response.headers["location"] == f"/observations/{obs_id}/review?stale=1"


def test_amending_after_submit_adds_revisions_and_history_shows_the_diff(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token)
    _capture(client, obs_id, token, action="submit", **{"item-overall_discourse": "3"})
    _capture(
        client,
        obs_id,
        token,
        action="draft",
        **{"item-overall_discourse": "4", "evidence-overall_discourse": "Students debated"},
    )
    session.rollback()  # end the read snapshot: see what the app committed
    session.expire_all()
    obs = session.get(Observation, obs_id)
    assert obs is not None
    assert obs.status == ObservationStatus.submitted  # amending never un-submits
    revisions = session.exec(
        select(ObservationRevision).where(ObservationRevision.observation_id == obs_id)
    ).all()
    assert [r.revision for r in sorted(revisions, key=lambda r: r.revision)] == [1, 2, 3]
    history = client.get(f"/observations/{obs_id}/history").text
    assert "3 – Explaining" in history and "4 – Reasoning" in history
    assert "Students debated" in history
    assert "Observer Person" in history


def test_saving_unchanged_content_makes_no_new_revision(
    client: TestClient, world: World, session: Session
) -> None:
    token = login(client, world.observer)
    obs_id = _start(client, token)
    _capture(client, obs_id, token, action="draft", **{"item-overall_discourse": "3"})
    _capture(client, obs_id, token, action="draft", **{"item-overall_discourse": "3"})
    session.rollback()  # end the read snapshot: see what the app committed
    session.expire_all()
    assert session.get(Observation, obs_id).revision == 2  # type: ignore[union-attr]
