"""Database engine, the per-request session, UTC timestamps and migrations."""

import json
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from alembic import command
from alembic.config import Config
from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

from app.errors import ServiceUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

# Explicit names for every constraint and index so migrations are reproducible on
# SQLite (batch mode recreates tables by name) and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops offsets)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def make_engine(url: str) -> Engine:
    """An engine for the URL; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=_compact_json,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_serializer=_compact_json
    )


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # We emit BEGIN ourselves (below), so writes can take the write lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # A transaction that reads and then writes must hold SQLite's write lock from its
    # first statement: a deferred one can fail with SQLITE_BUSY on its first write when
    # another writer committed in between, which busy_timeout cannot wait out.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def next_seq(session: Session) -> int:
    """This transaction's position in the change sequence (one value per transaction).

    The counter row stays locked until commit, so transactions commit in counter order and
    the committed value is a pull cursor that no later commit can slip in under.
    """
    transaction = session.get_transaction()
    cached = session.info.get("change_seq")
    if cached is not None and cached[0] is transaction:
        return int(cached[1])
    value = session.execute(
        text("UPDATE change_counter SET value = value + 1 WHERE id = 1 RETURNING value")
    ).scalar_one()
    session.info["change_seq"] = (transaction, value)
    return int(value)


def current_seq(session: Session) -> int:
    """The committed change counter: everything at or below it is visible to this reader."""
    return int(session.execute(text("SELECT value FROM change_counter WHERE id = 1")).scalar_one())


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at migrations/ for the given database URL."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the database at url to the newest migration (alembic upgrade head)."""
    command.upgrade(alembic_config(url), "head")


# SQLite has one writer at a time. Requests that write queue here, waiting in threads of
# their own, instead of waiting for the lock inside the request thread pool: 40 requests
# blocked on SQLite's lock would leave no thread for the one holding it to finish.
_sqlite_writer = threading.Lock()
_writer_waits = anyio.CapacityLimiter(1000)


async def sqlite_write_gate(request: Request) -> AsyncIterator[None]:
    """For writing requests on SQLite: one at a time in this process."""
    engine: Engine = request.app.state.engine
    if request.method not in WRITE_METHODS or engine.dialect.name != "sqlite":
        yield
        return
    acquired = await anyio.to_thread.run_sync(
        lambda: _sqlite_writer.acquire(timeout=60), limiter=_writer_waits
    )
    if not acquired:
        raise ServiceUnavailable("The server is busy saving other work; please try again.")
    try:
        yield
    finally:
        _sqlite_writer.release()


def get_session(
    request: Request, _turn: Annotated[None, Depends(sqlite_write_gate, scope="function")]
) -> Iterator[Session]:
    """One session per request: commit on success, roll back on error."""
    engine: Engine = request.app.state.engine
    with Session(engine, expire_on_commit=False) as session:
        if request.method in WRITE_METHODS and engine.dialect.name == "sqlite":
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise


# scope="function": commit before the response is sent, so a client never sees a
# success for data that then failed to commit.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
