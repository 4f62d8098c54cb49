"""The analytics rows and their monthly sums stay true to the observations: through every
kind of write, and when a database that had observations is migrated."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command
from sqlalchemy import text
from sqlmodel import Session, select

from app.accounts.models import Teacher
from app.analytics import service as analytics
from app.analytics.models import ObservationItem
from app.db import UTCDateTime, alembic_config, make_engine
from app.observations import service
from app.observations.models import Observation, ObservationStatus
from app.rubrics.models import RubricVersion
from tests.helpers import World, make_observation, walkthrough_rubric


def _random_values(rng: random.Random) -> dict[str, service.ItemValue]:
    values: dict[str, dict[str, object]] = {
        "task_visible": {"value": rng.random() < 0.5},
        "students_explaining": {"value": rng.randrange(6)},
        "teacher_press": {"value": rng.randrange(3), "evidence": rng.choice(["", "asked why"])},
        "glow": {"value": rng.choice(["", "A clear launch."])},
    }
    level = rng.choice([1, 2, 3, 4, 5, "na", None])
    if level == "na":
        values["overall_discourse"] = {"not_observed": True}
    elif level is not None:
        values["overall_discourse"] = {"value": level}
    return {k: service.ItemValue.model_validate(v) for k, v in values.items()}


def _as_numbers(dashboard: analytics.Dashboard) -> dict[tuple[str, str], tuple[object, ...]]:
    out = {}
    for figures in dashboard.items:
        for key, cell in [*figures.cells.items(), ("all", figures.all)]:
            out[(figures.item.key, str(key))] = (
                cell.visits,
                dict(cell.levels),
                cell.not_observed,
                cell.seen,
                cell.total,
                cell.timed_total,
                cell.timed_seconds,
                cell.timed_visits,
                cell.filled,
                cell.evidence,
            )
    return out


def test_monthly_sums_equal_the_rows_through_creates_amends_deletes_and_restores(
    ready: World, session: Session
) -> None:
    rng = random.Random(11)
    assert ready.roosevelt.id
    rosa = Teacher(name="Rosa Park", school_id=ready.roosevelt.id)
    session.add(rosa)
    session.commit()
    made: list[uuid.UUID] = []
    for i in range(60):
        lincoln = i % 3 != 0
        author = ready.observer if lincoln else ready.other_principal
        made_now = make_observation(
            session,
            author,
            teacher=ready.teacher if lincoln else rosa,
            observed_at=datetime(2026, 9, 1, 15, tzinfo=UTC) + timedelta(days=rng.randrange(120)),
            duration_seconds=rng.choice([None, 0, 420, 600]),
            grade=rng.choice(["", "K", "3", "3", "7"]),
            status=rng.choice(["submitted"] * 3 + ["draft"]),
            values={k: v.model_dump() for k, v in _random_values(rng).items()},
        )
        made.append(made_now.id)
    session.commit()
    for obs_id in rng.sample(made, 25):  # amend (or submit) a few, some more than once
        obs = session.get(Observation, obs_id)
        assert obs is not None
        rubric = session.get(RubricVersion, obs.rubric_version_id)
        assert rubric is not None
        author = ready.observer if obs.observer_id == ready.observer.id else ready.other_principal
        payload = service.payload_of(obs, rubric).model_copy(
            update={
                "values": _random_values(rng),
                "observed_at": obs.observed_at + timedelta(days=rng.choice([0, 20, -20])),
                "status": rng.choice([ObservationStatus.submitted, obs.status]),
            }
        )
        assert service.amend(session=session, author=author, obs=obs, payload=payload).stored
        session.commit()
    for obs_id in rng.sample(made, 10):
        obs = session.get(Observation, obs_id)
        assert obs is not None
        service.set_deleted(session=session, admin=ready.admin, obs=obs, deleted=True)
        session.commit()
        if rng.random() < 0.5:
            service.set_deleted(session=session, admin=ready.admin, obs=obs, deleted=False)
            session.commit()
    rubric = walkthrough_rubric(session)
    assert rubric.id is not None
    d = datetime(2026, 1, 1).date()
    filter_sets = {
        "none": analytics.Filters(rubric.id),
        "months": analytics.Filters(
            rubric.id, date_from=d.replace(month=10), date_to=d.replace(month=11, day=30)
        ),
        "weeks": analytics.Filters(
            rubric.id, date_from=d.replace(month=10, day=5), date_to=d.replace(month=11, day=15)
        ),
        "school": analytics.Filters(rubric.id, school_id=ready.lincoln.id),
        "grade": analytics.Filters(rubric.id, grade="3"),
        "observer": analytics.Filters(rubric.id, observer_id=ready.observer.id),
        "odd days": analytics.Filters(rubric.id, date_from=d.replace(month=10, day=7)),
    }
    summed_views = set()
    for by in ("school", "month", "week", "grade", "observer"):
        for name, filters in filter_sets.items():
            kwargs = {
                "session": session,
                "user": ready.admin,
                "rubric": rubric,
                "filters": filters,
                "by": by,
            }
            if analytics._sums_plan(ready.admin, filters, by) is not None:
                summed_views.add((by, name))
            summed = analytics.figures(**kwargs)  # type: ignore[arg-type]
            rows = analytics.figures(**kwargs, sums=False)  # type: ignore[arg-type]
            assert summed.visits > 0, (by, name)
            assert _as_numbers(summed) == _as_numbers(rows), (by, name)
            assert [g.label for g in summed.groups] == [g.label for g in rows.groups], (by, name)
    assert {
        ("school", "none"),
        ("month", "months"),
        ("week", "weeks"),
        ("grade", "grade"),
        ("observer", "observer"),
        ("month", "school"),
        ("grade", "weeks"),
    } <= summed_views
    assert ("week", "odd days") not in summed_views and ("week", "school") not in summed_views
    # Every observation has exactly one row per item of its version.
    counts = session.exec(
        text(
            "SELECT count(*) FROM observation_item GROUP BY observation_id"  # type: ignore[call-overload]
        )
    ).all()
    assert {c[0] for c in counts} == {13} and len(counts) == 60


OCT_31_2330_CHICAGO = datetime(2026, 11, 1, 4, 30, tzinfo=UTC)  # October in the district
_PLAIN_COLUMNS = (
    "observer_id",
    "school_id",
    "teacher_id",
    "teacher_name",
    "grade",
    "subject",
    "rubric_version_id",
    "duration_seconds",
    "status",
    "notes",
    "tags",
    "overall_notes",
    "revision",
    "content_hash",
    "change_seq",
)


def test_the_migration_fills_the_tables_from_observations_already_there(db_url: str) -> None:
    """A database at the revision before the analytics tables, with two observations."""
    from app.rubrics.loader import sync_rubrics

    config = alembic_config(db_url)
    engine = make_engine(db_url)
    sync_rubrics(engine)  # with today's model, before the schema goes back to that revision
    engine.dispose()
    command.downgrade(config, "8d3e5f7a9b21")
    engine = make_engine(db_url)
    with engine.begin() as conn:  # today's Teacher model writes a column that came later
        conn.execute(text("ALTER TABLE teacher ADD COLUMN email VARCHAR(320)"))
    with Session(engine, expire_on_commit=False) as session:
        world = World(session)
        session.commit()
        session.execute(text("ALTER TABLE teacher DROP COLUMN email"))
        session.commit()
        rubric_id = session.execute(
            text(
                "SELECT id FROM rubric_version WHERE slug = 'discourse-walkthrough' AND version = 1"
            )
        ).scalar_one()
        for i, (values, status) in enumerate(
            (
                ({"task_visible": {"value": True}, "overall_discourse": {"value": 4}}, "submitted"),
                ({"overall_discourse": {"not_observed": True}, "glow": {"value": "Nice"}}, "draft"),
            )
        ):
            session.execute(
                # The table as that revision had it (the model may have moved on since).
                sa.table(
                    "observation",
                    *(sa.column(n) for n in _PLAIN_COLUMNS),
                    sa.column("id", sa.Uuid()),
                    sa.column("values", sa.JSON()),
                    sa.column("observed_at", UTCDateTime()),
                    sa.column("created_at", UTCDateTime()),
                    sa.column("updated_at", UTCDateTime()),
                ).insert(),
                {
                    "id": uuid.UUID(int=i + 1),
                    "observer_id": world.observer.id,
                    "school_id": world.lincoln.id,
                    "teacher_id": world.teacher.id,
                    "teacher_name": "Ana",
                    "grade": "1",
                    "subject": "Math",
                    "rubric_version_id": rubric_id,
                    "observed_at": OCT_31_2330_CHICAGO,
                    "duration_seconds": 600,
                    "status": status,
                    "values": values,
                    "notes": "[]",
                    "tags": "[]",
                    "overall_notes": "",
                    "revision": 1,
                    "content_hash": "x",
                    "created_at": OCT_31_2330_CHICAGO,
                    "updated_at": OCT_31_2330_CHICAGO,
                    "change_seq": 1,
                },
            )
        session.commit()
    engine.dispose()
    command.upgrade(config, "head")
    engine = make_engine(db_url)
    with Session(engine) as session:
        rows = session.exec(select(ObservationItem)).all()
        assert len(rows) == 26
        first = {r.item_key: r for r in rows if r.observation_id == uuid.UUID(int=1)}
        assert first["task_visible"].value == 1 and first["overall_discourse"].value == 4
        assert first["partner_talk"].value == 0 and first["students_explaining"].value == 0
        assert str(first["glow"].observed_month) == "2026-10-01"
        second = {r.item_key: r for r in rows if r.observation_id == uuid.UUID(int=2)}
        assert second["overall_discourse"].not_observed and second["glow"].filled
        sums = session.execute(
            text(
                "SELECT dim, item_key, bucket, level, visits FROM observation_item_sum "
                "WHERE item_key IN ('overall_discourse', 'task_visible') ORDER BY dim, item_key"
            )
        ).all()
        # The submitted visit only (the draft is not counted), once in each dim.
        assert [tuple(r) for r in sums] == [
            (dim, key, bucket, level, 1)
            for dim in ("district", "grade", "observer", "school")
            for key, bucket, level in (("overall_discourse", 0, 4), ("task_visible", 2, 0))
        ]
    engine.dispose()


def test_rebuilding_after_a_time_zone_change_moves_visits_to_the_new_calendar(
    db_url: str,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from fastapi.testclient import TestClient

    from app import cli
    from app.config import Settings, get_settings
    from app.main import create_app

    app = create_app(Settings(env="test", database_url=db_url, secret_key="k"))
    with TestClient(app), Session(app.state.engine) as session:
        world = World(session)
        obs_id = make_observation(
            session, world.observer, teacher=world.teacher, observed_at=OCT_31_2330_CHICAGO
        ).id
        session.commit()
    app.state.engine.dispose()
    monkeypatch.setenv("WALKTHROUGH_DATABASE_URL", db_url)
    monkeypatch.setenv("WALKTHROUGH_TIMEZONE", "Europe/London")
    get_settings.cache_clear()
    try:
        assert cli.main(["analytics", "rebuild"]) == 0
    finally:
        get_settings.cache_clear()
    assert "Analytics rebuilt from 1 observations (Europe/London)." in capsys.readouterr().out
    engine = make_engine(db_url)
    with Session(engine) as session:
        rows = session.exec(
            select(ObservationItem).where(ObservationItem.observation_id == obs_id)
        ).all()
        assert len(rows) == 13 and {str(r.observed_month) for r in rows} == {"2026-11-01"}
        months = (
            session.execute(
                text("SELECT DISTINCT month FROM observation_item_sum WHERE dim = 'district'")
            )
            .scalars()
            .all()
        )
        assert [str(m) for m in months] == ["2026-11-01"]
    engine.dispose()


def test_deleting_or_restoring_twice_counts_once(ready: World, session: Session) -> None:
    rubric = walkthrough_rubric(session)
    assert rubric.id is not None
    outcome = make_observation(
        session,
        ready.observer,
        teacher=ready.teacher,
        observed_at=datetime(2026, 10, 5, 15, tzinfo=UTC),
        values={k: v.model_dump() for k, v in _random_values(random.Random(3)).items()},
    )

    def visits() -> int:
        figures = analytics.figures(
            session=session,
            user=ready.admin,
            rubric=rubric,
            filters=analytics.Filters(rubric.id),
            by="school",
        )
        assert _as_numbers(figures) == _as_numbers(
            analytics.figures(
                session=session,
                user=ready.admin,
                rubric=rubric,
                filters=analytics.Filters(rubric.id),
                by="school",
                sums=False,
            )
        )
        return figures.visits

    for deleted, expected in ((False, 1), (True, 0), (True, 0), (False, 1), (False, 1)):
        analytics.mark_deleted(session, outcome.id, deleted)  # the tables' own guard
        obs = session.get(Observation, outcome.id)
        assert obs is not None
        service.set_deleted(session=session, admin=ready.admin, obs=obs, deleted=deleted)
        session.commit()
        assert visits() == expected
