"""Database engine, the per-request session, UTC timestamps and migrations."""

import asyncio
import json
import re
import secrets
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from alembic import command
from alembic.config import Config
from annotated_types import Ge, Le
from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

from app.errors import ServiceUnavailable

T = TypeVar("T")
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


# --- numbers from the outside world ----------------------------------------------------------
# Every id, revision and counter column is a 32-bit integer in PostgreSQL; a number from a
# request is read by one rule: ASCII digits only (str.isdigit() also accepts '²' and '٣',
# which int() refuses), within the column's range. Anything else is a 4xx, never a 500.

MAX_ID = 2**31 - 1
Id = Annotated[int, Ge(1), Le(MAX_ID)]
Count = Annotated[int, Ge(0), Le(MAX_ID)]
_ASCII_INT = re.compile(r"-?[0-9]{1,10}")


def parse_int(raw: object, *, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """An integer from request text by the one rule above, or None when it is not one."""
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not _ASCII_INT.fullmatch(text):
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def parse_id(raw: object) -> int | None:
    """A row id (1 … 2³¹−1) from request text, or None."""
    return parse_int(raw, minimum=1)


def no_nul(value: str) -> str:
    """Text fields never hold NUL characters (PostgreSQL cannot store them)."""
    if "\x00" in value:
        raise ValueError("text may not contain NUL (\\0) characters")
    return value


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
            # As many connections as request threads (40): a page waiting for a connection
            # while every connection waits for a thread would stall the server.
            pool_size=10,
            max_overflow=30,
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
    """This transaction's position in the change sequence, for rows it writes.

    The value handed out is a placeholder unique to the transaction (negative, so no pull
    cursor ever matches it); just before commit it is swapped for the real counter value
    (_assign_change_seq). The counter row is therefore locked only for the moment of commit,
    not for the whole transaction: a long roster import does not hold up every push, and
    transactions still commit in counter order, so the committed value is a pull cursor that
    no later commit can slip in under.
    """
    session.connection()  # the transaction the placeholder belongs to has begun
    transaction = session.get_transaction()
    cached = session.info.get("change_seq")
    if cached is not None and cached[0] is transaction:
        return int(cached[1])
    placeholder = -1 - secrets.randbelow(MAX_ID - 1)
    session.info["change_seq"] = (transaction, placeholder)
    return placeholder


@event.listens_for(Session, "before_commit")
def _assign_change_seq(session: Session) -> None:
    pending = session.info.pop("change_seq", None)
    if pending is None or pending[0] is not session.get_transaction():
        return
    session.flush()
    value = session.execute(
        text("UPDATE change_counter SET value = value + 1 WHERE id = 1 RETURNING value")
    ).scalar_one()
    for table in SQLModel.metadata.sorted_tables:
        if "change_seq" in table.c:
            session.execute(
                table.update().where(table.c.change_seq == pending[1]).values(change_seq=value)
            )
    for obj in list(session.identity_map.values()):
        if getattr(obj, "change_seq", None) == pending[1]:
            set_committed_value(obj, "change_seq", value)


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


@contextmanager
def write_turn(engine: Engine) -> Iterator[Session]:
    """A short writing transaction of its own, for what a reading request must record (an
    export's audit row, a token's last use). On SQLite it waits for its turn in this
    process's write queue and takes the write lock up front, so it never fails with
    "database is locked" while devices push. Not for requests that hold their turn already
    (POST and the like): their session writes directly."""
    sqlite = engine.dialect.name == "sqlite"
    if sqlite and not _sqlite_writer.acquire(timeout=60):
        raise ServiceUnavailable("The server is busy saving other work; please try again.")
    try:
        with Session(engine, expire_on_commit=False) as session:
            if sqlite:
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            yield session
            session.commit()
    finally:
        if sqlite:
            _sqlite_writer.release()


def get_read_session(request: Request) -> Iterator[Session]:
    """A session that only reads and never waits for the write turn (the push API reads who
    is asking, then queues its write with run_write)."""
    engine: Engine = request.app.state.engine
    with Session(engine, expire_on_commit=False) as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]

# Pushes on SQLite write one at a time through this lane: the waiting happens here, in the
# event loop, and the thread that holds the write lock runs start to finish without waiting
# for the event loop or a thread in between, so the lock is held only for the write itself.
_sqlite_write_lanes: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _write_lane() -> anyio.CapacityLimiter:
    # One lane per event loop (a server has one; tests run several): across loops the
    # process-wide lock still keeps writes one at a time.
    loop = asyncio.get_running_loop()
    lane = _sqlite_write_lanes.get(loop)
    if lane is None:
        lane = _sqlite_write_lanes[loop] = anyio.CapacityLimiter(1)
    return lane


def _transact(engine: Engine, work: Callable[[Session], T], immediate: bool) -> T:
    with Session(engine, expire_on_commit=False) as session:
        if immediate:
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
        try:
            result = work(session)
            session.commit()
        except Exception:
            session.rollback()
            raise
        return result


async def run_write(engine: Engine, work: Callable[[Session], T]) -> T:
    """Run work(session) in a writing transaction of its own, committed before it returns.

    On SQLite the write lock is taken in the lane's thread and held only while work runs and
    commits; on PostgreSQL row locks and compare-and-set updates need no queue."""
    if engine.dialect.name != "sqlite":
        return await anyio.to_thread.run_sync(_transact, engine, work, False)

    def locked() -> T:
        if not _sqlite_writer.acquire(timeout=60):
            raise ServiceUnavailable("The server is busy saving other work; please try again.")
        try:
            return _transact(engine, work, True)
        finally:
            _sqlite_writer.release()

    return await anyio.to_thread.run_sync(locked, limiter=_write_lane())


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
