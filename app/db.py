"""Database engine, the per-request session, UTC timestamps and migrations."""

import asyncio
import base64
import json
import logging
import queue
import re
import secrets
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar
from zoneinfo import ZoneInfo

import anyio
import anyio.to_thread
import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from annotated_types import Ge, Le
from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

from app.config import get_settings
from app.errors import ServiceUnavailable

T = TypeVar("T")
log = logging.getLogger("walkthrough")
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


def parse_day(raw: object) -> date | None:
    """A calendar date (YYYY-MM-DD) from request text, within years a school calendar uses
    (1900-2199: a day after 9999-12-31 cannot be computed, so such input is refused, not a
    server error), or None."""
    if not isinstance(raw, str):
        return None
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        return None
    return day if 1900 <= day.year <= 2199 else None


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


# --- the district's time zone ------------------------------------------------------------------
# What "November" and "this week" mean is the district's calendar, not UTC's: rows that group by
# day, week or month are written with dates in the district's time zone. It belongs to the
# database the app serves (create_app sets it for its engine); other callers get the setting.
_timezones: "weakref.WeakKeyDictionary[Engine, ZoneInfo]" = weakref.WeakKeyDictionary()


def set_district_timezone(engine: Engine, name: str) -> None:
    """Record the district's time zone for the sessions of this engine."""
    _timezones[engine] = ZoneInfo(name)


def district_timezone(session: Session) -> ZoneInfo:
    """The district's time zone for this session's database."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    found = _timezones.get(engine)
    if found is None:
        found = _timezones[engine] = ZoneInfo(get_settings().timezone)
    return found


# 40 connections: as many as the request thread pool has threads.
POOL_SIZE, POOL_OVERFLOW = 10, 30


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
            # while every connection waits for a thread would stall the server. All of them
            # stay open: a connection to a local file costs a file handle, while opening one
            # anew for each request of a burst (60 raters opening the report at reveal) cost
            # each request its connect and pragmas.
            pool_size=POOL_SIZE + POOL_OVERFLOW,
            max_overflow=0,
            json_serializer=_compact_json,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # As many connections as request threads (40), as for SQLite above.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        json_serializer=_compact_json,
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
    # SQLite's own lower() folds only ASCII: 'Émile' would never match 'émile'. Python's does
    # every script, as PostgreSQL's does under a UTF-8 locale.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


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


def migrate(url: str) -> tuple[str | None, str | None]:
    """Bring the database at url to the newest migration (alembic upgrade head); returns
    its revision before and after (None: an empty database)."""

    def revision() -> str | None:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        finally:
            engine.dispose()

    before = revision()
    command.upgrade(alembic_config(url), "head")
    return before, revision()


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
    export's audit row). On SQLite it waits for its turn in this process's write queue and
    takes the write lock up front, so it never fails with "database is locked" while devices
    push. Not for requests that hold their turn already (POST and the like): their session
    writes directly."""
    with _turn(engine, timeout=60) as session:
        if session is None:
            raise ServiceUnavailable("The server is busy saving other work; please try again.")
        yield session


@contextmanager
def write_turn_if_free(engine: Engine) -> Iterator[Session | None]:
    """write_turn for what may be skipped (a token's last-used time): None, at once, when
    another write holds the turn."""
    with _turn(engine, timeout=0) as session:
        yield session


@contextmanager
def _turn(engine: Engine, timeout: float) -> Iterator[Session | None]:
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        if timeout > 0:
            acquired = _sqlite_writer.acquire(timeout=timeout)
        else:
            acquired = _sqlite_writer.acquire(blocking=False)
        if not acquired:
            yield None
            return
    try:
        with Session(engine, expire_on_commit=False) as session:
            if sqlite:
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            yield session
            session.commit()
    finally:
        if sqlite:
            _sqlite_writer.release()


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A session that only reads and never waits for the write turn (the push API reads who
    is asking, then queues its write with run_write)."""
    session = Session(request.app.state.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        await _finish(session, session.close)


ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


def _transact(engine: Engine, work: Callable[[Session], T]) -> T:
    with Session(engine, expire_on_commit=False) as session:
        try:
            result = work(session)
            session.commit()
        except Exception:
            session.rollback()
            raise
        return result


class _SqliteWriter:
    """One thread per SQLite database that runs queued writes back to back.

    Writers that wait their turn wait in this queue, not in the event loop, so the write
    lock is never idle while work is queued; and the writes waiting at one moment are
    committed together (group commit), each inside a savepoint of its own, so one failing
    write never undoes another. The thread ends after a few idle seconds.
    """

    MAX_GROUP = 50
    IDLE_SECONDS = 5.0

    def __init__(self, engine: Engine) -> None:
        self.engine = weakref.ref(engine)  # the registry below is keyed by the engine
        self.jobs: queue.SimpleQueue[tuple[Callable[[Session], Any], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, work: Callable[[Session], T]) -> Future[T]:
        """Queue work(session); the future holds its result once the group commits."""
        future: Future[T] = Future()
        self.jobs.put((work, future))
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True, name="sqlite-writer")
                self.thread.start()
        return future

    def _run(self) -> None:
        while True:
            try:
                first = self.jobs.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self.lock:
                    if self.jobs.empty():
                        self.thread = None
                        return
                continue
            group = [first]
            while len(group) < self.MAX_GROUP:
                try:
                    group.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(group)
            except BaseException as exc:  # never leave a waiting request without an answer
                log.exception("sqlite writer failed")
                for _work, future in group:
                    _settle(future, error=exc)

    def _write(self, group: list[tuple[Callable[[Session], Any], Future[Any]]]) -> None:
        engine = self.engine()
        busy = ServiceUnavailable("The server is busy saving other work; please try again.")
        if engine is None or not _sqlite_writer.acquire(timeout=60):
            for _work, future in group:
                _settle(future, error=busy)
            return
        done: list[tuple[Future[Any], Any]] = []
        try:
            with Session(engine, expire_on_commit=False) as session:
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
                for work, future in group:
                    if future.cancelled():  # the request is gone: write nothing for it
                        continue
                    try:
                        with session.begin_nested():
                            done.append((future, work(session)))
                    except Exception as exc:
                        _settle(future, error=exc)
                session.commit()
        except Exception as exc:
            # Nothing of this group was committed: every request still waiting hears why.
            for _work, future in group:
                _settle(future, error=exc)
            return
        finally:
            _sqlite_writer.release()
        for future, result in done:
            _settle(future, result=result)


def _settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Answer a waiting request once; a request that already gave up is skipped."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:  # cancelled in between
        pass


_sqlite_writers: weakref.WeakKeyDictionary[Engine, _SqliteWriter] = weakref.WeakKeyDictionary()
_sqlite_writers_lock = threading.Lock()


async def run_write(engine: Engine, work: Callable[[Session], T]) -> T:
    """Run work(session) in a writing transaction, committed before it returns.

    On SQLite the work is queued for the database's writer thread, which holds the write
    lock only while queued work runs; on PostgreSQL row locks and compare-and-set updates
    need no queue, and the work runs in a transaction of its own."""
    if engine.dialect.name != "sqlite":
        return await anyio.to_thread.run_sync(_transact, engine, work)
    with _sqlite_writers_lock:
        writer = _sqlite_writers.get(engine)
        if writer is None:
            writer = _sqlite_writers[engine] = _SqliteWriter(engine)
    return await asyncio.wrap_future(writer.submit(work))


def _loop_limiter(kind: str, capacity: int) -> anyio.CapacityLimiter:
    # anyio limiters belong to one event loop (a server has one; tests run several).
    loop = asyncio.get_running_loop()
    limiters = _loop_limiters.setdefault(loop, {})
    if kind not in limiters:
        limiters[kind] = anyio.CapacityLimiter(capacity)
    return limiters[kind]


_loop_limiters: weakref.WeakKeyDictionary[Any, dict[str, anyio.CapacityLimiter]] = (
    weakref.WeakKeyDictionary()
)


SESSION_SLOTS = 30
_session_semaphores: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _session_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _session_semaphores.get(loop)
    if slots is None:
        slots = _session_semaphores[loop] = asyncio.Semaphore(SESSION_SLOTS)
    return slots


async def _finish(session: Session, step: Callable[[], None]) -> None:
    # Ending a session (commit, rollback, close) runs in threads of its own, never in the
    # request thread pool: a request that holds a connection must always be able to give
    # it back, even while every request thread waits for a connection.
    await anyio.to_thread.run_sync(step, limiter=_loop_limiter("finish", 20))


async def get_session(
    request: Request, _turn: Annotated[None, Depends(sqlite_write_gate, scope="function")]
) -> AsyncIterator[Session]:
    """One session per request: commit on success, roll back on error."""
    engine: Engine = request.app.state.engine
    bind = engine
    if request.method in WRITE_METHODS and engine.dialect.name == "sqlite":
        bind = engine.execution_options(sqlite_begin="IMMEDIATE")
    # A request keeps its connection from its first query to its end, across several trips
    # through the thread pool. Admitting at most SESSION_SLOTS such requests at once leaves
    # connections for work that holds one only within a single thread (a push's write, an
    # export's audit row), so no request thread ever waits for a connection that only a
    # request waiting for a thread could give back. The others wait here, in the event loop.
    slots = _session_slots()
    await slots.acquire()
    session = Session(bind, expire_on_commit=False)
    try:
        yield session
        await _finish(session, session.commit)
    except BaseException:
        await _finish(session, session.rollback)
        raise
    finally:
        await _finish(session, session.close)
        slots.release()


# scope="function": commit before the response is sent, so a client never sees a
# success for data that then failed to commit.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# --- keyset pagination -------------------------------------------------------------------------
# Lists page by the last row shown (keyset), not by OFFSET: page 400 of 50,000 observations costs
# what page 1 does, and a row added meanwhile does not shift the next page. The total is true.

PAGE_SIZE = 50


def contains(column: Any, text_: str) -> Any:
    """Case-insensitive "contains text_" for a search box; %, _ and \\ match themselves."""
    escaped = text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = sqlalchemy.func.lower(sqlalchemy.literal(f"%{escaped}%"))
    return sqlalchemy.func.lower(column).like(pattern, escape="\\")


@dataclass
class Page(Generic[T]):
    """One page of a list, its true total, and cursors to the pages either side."""

    items: list[T]
    total: int
    next_cursor: str | None
    previous_cursor: str | None


def _encode_cursor(direction: str, values: Sequence[Any]) -> str:
    raw = json.dumps(
        [direction, [v.isoformat() if isinstance(v, datetime) else str(v) for v in values]]
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(
    cursor: str | None, parsers: Sequence[Callable[[str], Any]]
) -> tuple[str, list[Any]] | None:
    """A cursor from a query string, or None when absent or not one of ours (first page)."""
    if not cursor or len(cursor) > 1000:
        return None
    try:
        direction, raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if direction not in ("after", "before") or len(raw) != len(parsers):
            return None
        return direction, [parse(str(v)) for parse, v in zip(parsers, raw, strict=True)]
    except (ValueError, TypeError, UnicodeDecodeError):
        return None


def cursor_time(raw: str) -> datetime:
    """A timestamp in a cursor: with its offset, or not one of ours (ValueError)."""
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        raise ValueError("a cursor's time carries its offset")
    return value


def cursor_id(raw: str) -> int:
    """A row id in a cursor, by the one rule for ids (ValueError otherwise)."""
    value = parse_id(raw)
    if value is None:
        raise ValueError("not a row id")
    return value


def paginate(
    session: Session,
    stmt: Any,
    *,
    order: Sequence[Any],
    descending: bool,
    key: Callable[[Any], Sequence[Any]],
    parsers: Sequence[Callable[[str], Any]],
    cursor: str | None,
    size: int = PAGE_SIZE,
) -> Page[Any]:
    """A page of `stmt` (a select of one model) ordered by the columns `order` (unique
    together), after or before the row a cursor names; `key` reads those columns' values from
    a row, `parsers` read them back from a cursor."""
    total = session.execute(
        sqlalchemy.select(sqlalchemy.func.count()).select_from(stmt.order_by(None).subquery())
    ).scalar_one()
    decoded = _decode_cursor(cursor, parsers)
    direction = decoded[0] if decoded else "after"
    backwards = direction == "before"
    if decoded is not None:
        here = sqlalchemy.tuple_(*order)
        there = sqlalchemy.tuple_(
            *(sqlalchemy.literal(v, type_=c.type) for c, v in zip(order, decoded[1], strict=True))
        )
        stmt = stmt.where(here > there if descending == backwards else here < there)
    down = descending != backwards
    stmt = stmt.order_by(*(c.desc() if down else c.asc() for c in order)).limit(size + 1)
    rows = list(session.execute(stmt).scalars())
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    next_cursor = previous_cursor = None
    if rows:
        # Going forward, there is more after when a row beyond the page came back, and a page
        # before whenever a cursor brought us here; going back, the other way round.
        if (more and not backwards) or backwards:
            next_cursor = _encode_cursor("after", key(rows[-1]))
        if (more and backwards) or (decoded is not None and not backwards):
            previous_cursor = _encode_cursor("before", key(rows[0]))
    return Page(rows, int(total), next_cursor, previous_cursor)
