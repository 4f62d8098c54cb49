"""`walkthrough rubrics check` lists every problem and exits non-zero; sync and new-version."""

import shutil
from pathlib import Path

import pytest

from app import cli
from app.config import get_settings
from app.rubrics.loader import RUBRICS_DIR
from tests.rubrics.test_loader import VALID, write


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WALKTHROUGH_DATABASE_URL", db_url)
    monkeypatch.setenv("WALKTHROUGH_SECRET_KEY", "cli-test-secret")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_check_passes_on_the_shipped_rubrics(env, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["rubrics", "check"]) == 0
    assert "OK: 5 rubric version file(s)" in capsys.readouterr().out


def test_check_prints_every_error_and_fails(env, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, VALID.replace("value: 2", "value: 1"))
    write(tmp_path, VALID.replace("kind: check", "kind: checkbox"), name="v2.yaml")
    assert cli.main(["rubrics", "check", "--path", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "demo/v1.yaml:20:" in err and "level value 1 appears twice" in err
    assert "demo/v2.yaml:27:" in err and "sections[0].items[2]" in err
    assert "problem(s)" in err


def test_check_finds_an_edited_published_version(env, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, VALID)
    assert cli.main(["rubrics", "sync", "--path", str(tmp_path)]) == 0
    path.write_text(VALID.replace("High level.", "Higher."))
    assert cli.main(["rubrics", "check", "--path", str(tmp_path)]) == 1
    assert "Published versions are immutable" in capsys.readouterr().err


def test_new_version_command(env, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(RUBRICS_DIR / "math-talk-community", tmp_path / "math-talk-community")
    assert cli.main(["rubrics", "new-version", "math-talk-community", "--path", str(tmp_path)]) == 0
    assert (tmp_path / "math-talk-community" / "v2.yaml").exists()
    assert "as a draft" in capsys.readouterr().out
    assert cli.main(["rubrics", "new-version", "missing", "--path", str(tmp_path)]) == 1
