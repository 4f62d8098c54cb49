"""Loading rubric versions: idempotent, safe for servers starting together, immutable."""

import shutil
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.config import Settings
from app.db import make_engine
from app.main import create_app
from app.rubrics.loader import RUBRICS_DIR, RubricProblems, sync_rubrics
from app.rubrics.models import RubricStatus, RubricVersion
from tests.rubrics.test_loader import VALID, write


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    e = make_engine(db_url)
    yield e
    e.dispose()


def rows(engine) -> list[RubricVersion]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return list(
            s.exec(select(RubricVersion).order_by(RubricVersion.slug, RubricVersion.version))
        )


def test_loading_twice_is_idempotent(engine) -> None:  # type: ignore[no-untyped-def]
    first = sync_rubrics(engine, RUBRICS_DIR)
    assert len(first.inserted) == 5
    before = [(r.id, r.content_hash, r.published_at) for r in rows(engine)]
    second = sync_rubrics(engine, RUBRICS_DIR)
    assert (second.inserted, second.updated, len(second.verified)) == ([], [], 5)
    assert [(r.id, r.content_hash, r.published_at) for r in rows(engine)] == before


def test_changed_published_file_is_refused_naming_the_file(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, VALID)
    sync_rubrics(engine, tmp_path)
    path.write_text(VALID.replace("Low level.", "A reworded low level."))
    with pytest.raises(RubricProblems) as caught:
        sync_rubrics(engine, tmp_path)
    message = str(caught.value)
    assert str(path) in message or "demo/v1.yaml" in message
    assert "Published versions are immutable" in message
    assert "walkthrough rubrics new-version demo" in message
    [row] = rows(engine)
    assert "A reworded" not in str(row.content)


def test_app_refuses_to_start_when_a_published_version_changed(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    settings = Settings(env="test", database_url=db_url, secret_key="k" * 32, rubrics_dir=tmp_path)
    app = create_app(settings)
    with TestClient(app):
        pass
    path.write_text(VALID.replace("title: A tally", "title: A renamed tally"))
    app = create_app(settings)
    with pytest.raises(RubricProblems, match="Published versions are immutable"), TestClient(app):
        pass
    app.state.engine.dispose()


def test_drafts_may_change_then_publish_then_retire(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, VALID.replace("status: published", "status: draft"))
    sync_rubrics(engine, tmp_path)
    path.write_text(
        VALID.replace("status: published", "status: draft").replace("Low level.", "Lower.")
    )
    assert sync_rubrics(engine, tmp_path).updated == ["demo v1"]
    [row] = rows(engine)
    assert row.status is RubricStatus.draft and row.published_at is None
    path.write_text(VALID.replace("Low level.", "Lower."))
    sync_rubrics(engine, tmp_path)
    [row] = rows(engine)
    assert row.status is RubricStatus.published and row.published_at is not None
    path.write_text(
        VALID.replace("Low level.", "Lower.").replace("status: published", "status: retired")
    )
    sync_rubrics(engine, tmp_path)
    [row] = rows(engine)
    assert row.status is RubricStatus.retired
    path.write_text(
        VALID.replace("Low level.", "Lower.").replace("status: published", "status: draft")
    )
    with pytest.raises(RubricProblems, match="cannot go back to draft"):
        sync_rubrics(engine, tmp_path)


def test_an_invalid_file_stops_loading_and_changes_nothing(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(RUBRICS_DIR / "math-talk-community", tmp_path / "math-talk-community")
    write(tmp_path, VALID.replace("value: 2", "value: 1"))
    with pytest.raises(RubricProblems, match="level value 1 appears twice"):
        sync_rubrics(engine, tmp_path)
    assert rows(engine) == []


def test_concurrent_loading_creates_each_version_once(db_url: str) -> None:
    """Eight app servers starting at once (separate engines, threads) load one set of rows."""
    engines = [make_engine(db_url) for _ in range(8)]
    barrier = threading.Barrier(len(engines))
    failures: list[BaseException] = []

    def start(e) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            sync_rubrics(e, RUBRICS_DIR)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    loaded = rows(engines[0])
    assert sorted((r.slug, r.version) for r in loaded) == [
        ("discourse-walkthrough", 1),
        ("math-discourse-quality", 1),
        ("math-discourse-quality", 2),
        ("math-talk-community", 1),
        ("who-talks", 1),
    ]
    for e in engines:
        e.dispose()
