"""Migrations build every database from empty, and agree with the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app.db import alembic_config, make_engine, migrate


def test_migrations_reach_head_and_create_every_table(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    assert current == head
    assert set(SQLModel.metadata.tables) <= tables


def test_models_and_migrations_agree(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert diff == [], f"autogenerate would change: {diff}"


def _schema(db_url: str) -> tuple[str | None, dict[str, list[str]]]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        inspector = inspect(conn)
        columns = {
            t: sorted(c["name"] for c in inspector.get_columns(t))
            for t in inspector.get_table_names()
        }
        rows = conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar_one()
    engine.dispose()
    assert rows == 1
    return revision, columns


def test_migrating_again_is_a_no_op(db_url: str) -> None:
    before = _schema(db_url)
    migrate(db_url)
    migrate(db_url)
    assert _schema(db_url) == before
    assert before[0] == ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()


def test_migration_files_have_dated_names() -> None:
    import re

    from app.db import MIGRATIONS_DIR

    names = [p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py")]
    assert names
    for name in names:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-\d{4}_[a-z0-9_]+\.py", name), name


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()
