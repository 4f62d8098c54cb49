"""Walkthrough benchmarks. Each prints its figures and the comparison it is judged against.

export 100,000 and 1,000,000 item rows of the long CSV from SQLite and PostgreSQL: rows per
       second, the server's peak memory, and the sqlite3 command line on the same rows.
agreement  60 raters x 200 units, 5 ordinal levels, 10% missing: alpha next to the
       krippendorff package, and the full report with a 1,000-resample interval; then a
       calibration room at reveal: 60 guests x 6 items x 3 excerpts on a uvicorn, all 60
       opening their report page at once (p50/p95, errors), right after reveal and again.
load   100 clients for 30 s against a uvicorn on 127.0.0.1, each loading the capture page or
       pushing one observation in turn, with /api/ping sampled beside them: p50/p95/p99 per
       kind of request and the errors, on SQLite and PostgreSQL.
import a 10,000-row roster import: how long it takes, and /healthz latency meanwhile.
dashboard  50,000 walk-throughs of a school year seeded through the write path (300 observers,
       200 schools, 20,000 teachers), then each dashboard view, coverage, the lists and a
       teacher page as an admin and as a principal (median/p95), /healthz meanwhile.
participation  the participation map in Debian's Chromium at tablet size: the time from a tap
       on a talk type to the marker's count updating (and to the next frame), over 60
       contributions, through real input events and in-page; and the capture page's first
       load with the map (HTML, CSS, scripts) compressed as the server sends it.
sync   10,000 observations x 12 item values pushed over HTTP to a uvicorn on 127.0.0.1 in
       batches of 100, on SQLite and PostgreSQL, next to raw executemany inserts of the same
       rows into the same database in the same run.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.db import make_engine, migrate  # noqa: E402
from app.demo import DEMO_PASSWORD, load_demo_data  # noqa: E402
from app.rubrics.loader import sync_rubrics  # noqa: E402

PG_ADMIN = os.environ.get(
    "WALKTHROUGH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh, migrated database with rubrics and demo data."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            _prepare(url)
            yield url
        return
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"wt_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(PG_ADMIN).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    try:
        _prepare(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _prepare(url: str) -> None:
    from sqlmodel import Session

    migrate(url)
    engine = make_engine(url)
    sync_rubrics(engine)
    with Session(engine) as session:
        load_demo_data(session=session)
        session.commit()
    engine.dispose()


@contextmanager
def server(url: str) -> Iterator[str]:
    """uvicorn serving the app on 127.0.0.1 against url."""
    port = _free_port()
    env = {
        **os.environ,
        "WALKTHROUGH_ENV": "test",
        "WALKTHROUGH_DATABASE_URL": url,
        "WALKTHROUGH_SECRET_KEY": "bench-secret",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _sign_in(client: httpx.Client, email: str) -> str:
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = client.post("/login", data={"email": email, "password": DEMO_PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.text
    return str(client.get("/api/session").json()["csrf_token"])


def _payloads(n: int, teacher_id: int) -> list[dict[str, Any]]:
    """n walk-throughs with 12 item values each (5 look-fors, 5 tallies, 1 rating, 1 note)."""
    start = datetime(2026, 9, 1, 14, tzinfo=UTC)
    out = []
    for i in range(n):
        values: dict[str, Any] = {
            k: {"value": (i + j) % 2 == 0}
            for j, k in enumerate(
                [
                    "task_visible",
                    "partner_talk",
                    "multiple_strategies",
                    "talk_norms_visible",
                    "student_at_board",
                ]
            )
        }
        values.update(
            {
                k: {"value": (i * 7 + j) % 15}
                for j, k in enumerate(
                    [
                        "students_explaining",
                        "building_on_peer",
                        "teacher_press",
                        "revoicing",
                        "student_question",
                    ]
                )
            }
        )
        values["overall_discourse"] = {"value": 1 + i % 5, "evidence": f"Evidence note {i}"}
        values["glow"] = {"value": f"Strength noted in visit {i}"}
        out.append(
            {
                "rubric_slug": "discourse-walkthrough",
                "rubric_version": 1,
                "teacher_id": teacher_id,
                "observed_at": (start + timedelta(minutes=i)).isoformat(),
                "duration_seconds": 600,
                "status": "submitted",
                "values": values,
                "notes": [{"minute": 3, "text": "Launch"}],
                "tags": ["bench"],
                "overall_notes": "",
            }
        )
    return out


def _raw_insert_rate(url: str, payloads: list[dict[str, Any]], batch: int) -> float:
    """Insert the same observation and revision rows with executemany, a transaction a batch."""
    from sqlalchemy import text

    engine = make_engine(url)
    with engine.connect() as conn:
        ids = conn.execute(
            text(
                'SELECT u.id, t.id, t.school_id, r.id FROM "user" u, teacher t, rubric_version r '
                "WHERE u.email = 'coach@demo.walkthrough.test' AND t.name = 'Ana García' "
                "AND r.slug = 'discourse-walkthrough'"
            )
        ).one()
    engine.dispose()
    user_id, teacher_id, school_id, rubric_id = ids
    obs_sql = (
        "INSERT INTO observation (id, observer_id, school_id, teacher_id, teacher_name, grade, "
        'subject, rubric_version_id, observed_at, duration_seconds, status, "values", notes, tags, '
        "overall_notes, revision, content_hash, created_at, updated_at, submitted_at, change_seq) "
        "VALUES (%s)"
    )
    cols = 21
    rev_sql = (
        "INSERT INTO observation_revision (observation_id, revision, author_id, status, snapshot, "
        "content_hash, device_id, created_at) VALUES (%s)"
    )
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1])
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        ph = "?"

        def uid(u: uuid.UUID) -> Any:
            return u.hex
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        conn = psycopg.connect(
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        ph = "%s"

        def uid(u: uuid.UUID) -> Any:
            return u

    obs_stmt = obs_sql % ", ".join([ph] * cols)
    rev_stmt = rev_sql % ", ".join([ph] * 8)
    started = time.perf_counter()
    for b in range(0, len(payloads), batch):
        now = datetime.now(UTC).replace(tzinfo=None) if ph == "?" else datetime.now(UTC)
        obs_rows, rev_rows = [], []
        for p in payloads[b : b + batch]:
            oid = uuid.uuid4()
            observed = datetime.fromisoformat(p["observed_at"])
            observed = observed.replace(tzinfo=None) if ph == "?" else observed
            obs_rows.append(
                (
                    uid(oid),
                    user_id,
                    school_id,
                    teacher_id,
                    "Ana García",
                    "",
                    "",
                    rubric_id,
                    observed,
                    600,
                    "submitted",
                    json.dumps(p["values"]),
                    json.dumps(p["notes"]),
                    json.dumps(p["tags"]),
                    "",
                    1,
                    "0" * 64,
                    now,
                    now,
                    now,
                    0,
                )
            )
            rev_rows.append(
                (uid(oid), 1, user_id, "submitted", json.dumps(p), "0" * 64, "raw", now)
            )
        cur = conn.cursor()
        cur.executemany(obs_stmt, obs_rows)
        cur.executemany(rev_stmt, rev_rows)
        conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return len(payloads) / elapsed


def bench_sync(args: argparse.Namespace) -> None:
    kinds = ["sqlite"] + ([] if args.sqlite_only else ["postgres"])
    print(f"sync: {args.n} observations x 12 item values, batches of {args.batch}, over HTTP")
    print(f"{'database':<10} {'API obs/s':>10} {'raw obs/s':>10} {'ratio':>7}")
    for kind in kinds:
        with database(kind) as url, server(url) as base:
            with httpx.Client(base_url=base, timeout=60) as client:
                token = _sign_in(client, "coach@demo.walkthrough.test")
                teacher = next(
                    t
                    for t in client.get("/api/sync/pull?since=0").json()["roster"]
                    if t["name"] == "Ana García"
                )
                payloads = _payloads(args.n, teacher["id"])
                client.post(
                    "/api/sync/push",
                    headers={"X-CSRF-Token": token},
                    json={"device_id": "warm", "items": []},
                )
                started = time.perf_counter()
                created = 0
                for b in range(0, len(payloads), args.batch):
                    items = [
                        {"id": str(uuid.uuid4()), "base_revision": 0, "payload": p}
                        for p in payloads[b : b + args.batch]
                    ]
                    r = client.post(
                        "/api/sync/push",
                        headers={"X-CSRF-Token": token},
                        json={"device_id": "bench", "items": items},
                    )
                    r.raise_for_status()
                    created += sum(1 for x in r.json()["results"] if x["status"] == "created")
                api_rate = args.n / (time.perf_counter() - started)
                assert created == args.n, f"only {created} of {args.n} created"
            raw_rate = _raw_insert_rate(url, payloads, args.batch)
            print(f"{kind:<10} {api_rate:>10,.0f} {raw_rate:>10,.0f} {api_rate / raw_rate:>7.1%}")


def bench_agreement(args: argparse.Namespace) -> None:
    import random
    import timeit

    import krippendorff
    import numpy as np

    from app.calibration import agreement

    rng = random.Random(42)
    truth = [rng.randint(1, 5) for _ in range(args.units)]
    ratings = [
        [
            None if rng.random() < 0.10 else min(5, max(1, t + rng.choice([-1, 0, 0, 1])))
            for t in truth
        ]
        for _ in range(args.raters)
    ]
    matrix = np.array([[np.nan if v is None else v for v in row] for row in ratings], dtype=float)
    categories = [1, 2, 3, 4, 5]

    def ours() -> float | None:
        data = agreement.Ratings(ratings, categories)  # validates and codes the lists
        return agreement.krippendorff_alpha(data, "ordinal", resamples=0)[0].value

    def theirs() -> float:
        table = np.array(
            [[np.nan if v is None else v for v in row] for row in ratings], dtype=float
        )
        return float(
            krippendorff.alpha(
                reliability_data=table, level_of_measurement="ordinal", value_domain=categories
            )
        )

    coded = agreement.Ratings(ratings, categories)

    def ours_coded() -> float | None:
        return agreement.krippendorff_alpha(coded, "ordinal", resamples=0)[0].value

    def theirs_array() -> float:
        return float(
            krippendorff.alpha(
                reliability_data=matrix, level_of_measurement="ordinal", value_domain=categories
            )
        )

    assert abs((ours() or 0) - theirs()) < 1e-9

    def best(fn: Any, number: int) -> float:
        return min(timeit.repeat(fn, number=number, repeat=5)) / number

    t_ours, t_theirs = best(ours, 20), best(theirs, 20)
    t_ours_c, t_theirs_a = best(ours_coded, 50), best(theirs_array, 50)
    t_report = best(lambda: agreement.report(ratings, categories, "ordinal", resamples=1000), 3)
    print(
        f"agreement: {args.raters} raters x {args.units} units, 5 ordinal levels, 10% missing "
        "(best of 5 runs)"
    )
    print("  alpha, from the same Python lists (null = missing):")
    print(f"    ours                 {t_ours * 1000:8.2f} ms")
    print(
        f"    krippendorff package {t_theirs * 1000:8.2f} ms   ours/theirs {t_ours / t_theirs:.2f}x"
    )
    print("  alpha, from data already in each one's table form:")
    print(f"    ours                 {t_ours_c * 1000:8.2f} ms")
    ratio = t_ours_c / t_theirs_a
    print(f"    krippendorff package {t_theirs_a * 1000:8.2f} ms   ours/theirs {ratio:.2f}x")
    print(f"  full report with a 1,000-resample interval: {t_report * 1000:.1f} ms")
    if not args.no_room:
        for kind in ("sqlite",) if args.sqlite_only else ("sqlite", "postgresql"):
            with database(kind) as url, server(url) as base:
                _bench_room(base, args.room, kind)


def _bench_room(base: str, raters: int, kind: str) -> None:
    """A calibration room at reveal: `raters` guests rate 6 items on 3 excerpts, the
    facilitator reveals, and every rater opens their report page at the same moment."""
    import threading

    items = 6
    facilitator = httpx.Client(base_url=base, timeout=120)
    csrf = _sign_in(facilitator, "facilitator@demo.walkthrough.test")
    page = facilitator.get("/calibration").text
    rubric = re.search(r'<option value="(\d+)"[^>]*>Mathematical Discourse Quality[^<]*v2', page)
    assert rubric, "the shipped math-discourse-quality v2 rubric"
    created = facilitator.post(
        "/calibration",
        data={
            "csrf_token": csrf,
            "title": "Bench room",
            "rubric_version_id": rubric.group(1),
            "stimulus_title": "Excerpt 1",
            "kind": "transcript",
            "transcript": "T: Why?\nS: Because.",
        },
        follow_redirects=False,
    )
    session_id = int(created.headers["location"].rsplit("/", 1)[1])
    for n in (2, 3):
        facilitator.post(
            f"/calibration/{session_id}/stimuli",
            data={
                "csrf_token": csrf,
                "title": f"Excerpt {n}",
                "kind": "transcript",
                "transcript": "T: And then?\nS: We compared.",
            },
            follow_redirects=False,
        )
    setup_page = facilitator.get(f"/calibration/{session_id}").text
    code = re.search(r"data-code>(\w+)<", setup_page).group(1)  # type: ignore[union-attr]
    units = sorted(set(re.findall(r'name="master-(\d+)-([a-z_]+)"', setup_page)))
    assert len(units) == 3 * items, units
    facilitator.post(
        f"/calibration/{session_id}/master",
        data={"csrf_token": csrf, **{f"master-{st}-{key}": "3" for st, key in units}},
        follow_redirects=False,
    )
    clients = []
    tokens = []
    for i in range(raters):
        client = httpx.Client(base_url=base, timeout=120)
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/join").text).group(1)  # type: ignore[union-attr]
        client.post("/join", data={"csrf_token": token, "code": code, "name": f"Rater {i:02d}"})
        clients.append(client)
        tokens.append(token)

    # Every rater saves all their ratings at the same moment; nothing may be lost.
    barrier = threading.Barrier(raters)
    save_times: list[float] = []
    failures: list[str] = []

    def save(i: int) -> None:
        body = [
            {"stimulus_id": int(st), "item_key": key, "value": 1 + (i + k) % 4}
            for k, (st, key) in enumerate(units)
        ]
        barrier.wait()
        t0 = time.perf_counter()
        r = clients[i].post(
            f"/api/calibration/{code}/ratings", json=body, headers={"X-CSRF-Token": tokens[i]}
        )
        save_times.append(time.perf_counter() - t0)
        if r.status_code != 200 or r.json() != {"saved": len(units)}:
            failures.append(f"{i}: {r.status_code} {r.text[:200]}")

    savers = [threading.Thread(target=save, args=(i,)) for i in range(raters)]
    for t in savers:
        t.start()
    for t in savers:
        t.join()
    assert failures == [], failures
    report = facilitator.get(f"/api/calibration/sessions/{session_id}/report").json()["latest"]
    stored = sum(sum(item["distribution"].values()) for item in report["items"].values())
    assert len(report["raters"]) == raters and stored == raters * len(units), (
        f"{stored} of {raters * len(units)} ratings stored"
    )
    facilitator.post(
        f"/calibration/{session_id}/status",
        data={"csrf_token": csrf, "action": "reveal"},
        follow_redirects=False,
    )

    def wave(path: str = f"/c/{code}", status: int = 200) -> tuple[list[float], list[str]]:
        barrier = threading.Barrier(len(clients))
        times: list[float] = []
        errors: list[str] = []

        def open_report(client: httpx.Client) -> None:
            barrier.wait()
            t0 = time.perf_counter()
            try:
                r = client.get(path)
                if r.status_code != status or (status == 200 and "<svg" not in r.text):
                    errors.append(str(r.status_code))
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            times.append(time.perf_counter() - t0)

        threads = [threading.Thread(target=open_report, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return times, errors

    print(
        f"calibration room at reveal: {raters} guest raters x {items} items x 3 excerpts, "
        f"{'SQLite' if kind == 'sqlite' else 'PostgreSQL'}, one uvicorn worker on 127.0.0.1"
    )
    print(
        f"  {raters} raters saving {len(units)} ratings each at once:  {_percentiles(save_times)}"
        f"  all {raters * len(units)} stored"
    )
    first, errors = wave()  # the report is built by the first request, the rest wait for it
    print(f"  {raters} report pages at once, right after reveal: {_percentiles(first)}", end="")
    print(f"  errors {len(errors)}")
    for n in range(1, 6):  # this machine is noisy: five more waves, each reported
        again, errors = wave()
        print(
            f"  {raters} report pages at once, again ({n}/5):        {_percentiles(again)}", end=""
        )
        print(f"  errors {len(errors)}")
    # The floor: the same clients at once on the lightest request of the page (its poll,
    # answered 204 from one indexed query), i.e. what the server and client cost alone.
    floor, errors = wave(f"/c/{code}/state?seen=1:revealed", 204)
    print(f"  {raters} polls at once (the floor, no report):    {_percentiles(floor)}", end="")
    print(f"  errors {len(errors)}")
    # What one request costs the server when nothing else runs: the same pages one at a time.
    for label, path, status in (
        ("report page", f"/c/{code}", 200),
        ("poll", f"/c/{code}/state?seen=1:revealed", 204),
    ):
        alone = []
        for client in clients:
            t0 = time.perf_counter()
            assert client.get(path).status_code == status
            alone.append(time.perf_counter() - t0)
        print(f"  {raters} {label}s one at a time:{' ' * (23 - len(label))}{_percentiles(alone)}")
    for client in clients:
        client.close()
    facilitator.close()


def _seed_observations(url: str, n_obs: int) -> None:
    """n_obs submitted walk-throughs with all 13 items answered, inserted directly."""
    payloads = _payloads(n_obs, 1)
    from sqlalchemy import text

    engine = make_engine(url)
    with engine.begin() as conn:
        user_id, teacher_id, school_id, rubric_id = conn.execute(
            text(
                'SELECT u.id, t.id, t.school_id, r.id FROM "user" u, teacher t, rubric_version r '
                "WHERE u.email = 'coach@demo.walkthrough.test' AND t.name = 'Ana García' "
                "AND r.slug = 'discourse-walkthrough'"
            )
        ).one()
    engine.dispose()
    from app.observations.models import Observation

    table = Observation.__table__  # type: ignore[attr-defined]
    engine = make_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for b in range(0, n_obs, 2000):
            rows = []
            for p in payloads[b : b + 2000]:
                values = dict(p["values"])
                values["grow"] = {"value": "Next step: press for reasoning"}
                rows.append(
                    {
                        "id": uuid.uuid4(),
                        "observer_id": user_id,
                        "school_id": school_id,
                        "teacher_id": teacher_id,
                        "teacher_name": "Ana García",
                        "grade": "4",
                        "subject": "Mathematics",
                        "rubric_version_id": rubric_id,
                        "observed_at": datetime.fromisoformat(p["observed_at"]),
                        "duration_seconds": 600,
                        "status": "submitted",
                        "values": values,
                        "notes": [],
                        "tags": ["bench"],
                        "overall_notes": "",
                        "revision": 1,
                        "content_hash": "0" * 64,
                        "created_at": now,
                        "updated_at": now,
                        "submitted_at": now,
                        "change_seq": 1,
                    }
                )
            conn.execute(table.insert(), rows)
    engine.dispose()


def _seed_district(
    url: str, n_obs: int, *, schools: int = 200, per_school: int = 100
) -> dict[str, Any]:
    """A year of a district through the write path's batched form: a roster of
    schools x per_school teachers (20,000), 300 observers, and n_obs submitted Discourse
    Walk-Throughs over 36 school weeks, each observer's visits pushed in batches of 200."""
    import random

    from sqlmodel import Session, select

    from app.accounts import service as accounts
    from app.accounts.models import Role, School, Teacher, User
    from app.observations import service as observations
    from app.security import hash_password

    rng = random.Random(2026)
    lines = ["school,school_code,teacher,district_id,grades"]
    names = ["Lincoln Elementary"] + [f"School {i:03d}" for i in range(1, schools)]
    grade_sets = ["K;1", "2;3", "4;5", "6", "7", "8"]
    for s, school in enumerate(names):
        for t in range(per_school):
            grades = grade_sets[(s + t) % len(grade_sets)]
            lines.append(f"{school},S{s:03d},Teacher {s:03d}-{t:03d},D{s:03d}{t:03d},{grades}")
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        report = accounts.import_roster(session=session, data="\n".join(lines).encode())
        assert report.ok, report.errors[:3]
        session.commit()
        school_ids = {s.name: s.id for s in session.exec(select(School))}
        teachers: dict[int, list[Teacher]] = {}
        for teacher in session.exec(select(Teacher).order_by(Teacher.name)):
            teachers.setdefault(teacher.school_id, []).append(teacher)
        password = hash_password(DEMO_PASSWORD)
        observers: list[User] = []
        for i in range(300):
            school = names[i % schools]
            observers.append(
                User(
                    email=f"observer{i:03d}@bench.walkthrough.test",
                    name=f"Observer {i:03d}",
                    role=Role.principal if i < 100 and i % schools != 0 else Role.observer,
                    school_id=school_ids[school],
                    password_hash=password,
                )
            )
        session.add_all(observers)
        session.commit()
    start = datetime(2026, 8, 17, 8, tzinfo=UTC) + timedelta(hours=5)  # 8:00 in Chicago
    per_observer = [n_obs // 300 + (1 if i < n_obs % 300 else 0) for i in range(300)]
    for i, observer in enumerate(observers):
        pool = teachers[observer.school_id or 0][: per_school * 3 // 5]  # some never visited
        changes = []
        for _v in range(per_observer[i]):
            day = rng.randrange(36 * 5)
            at = start + timedelta(days=day // 5 * 7 + day % 5, minutes=rng.randrange(7 * 60))
            teacher = rng.choice(pool)
            grade = teacher.grades.split(",")[0] if teacher.grades else ""
            values: dict[str, Any] = {
                key: {"value": rng.random() < p}
                for key, p in (
                    ("task_visible", 0.7),
                    ("partner_talk", 0.55),
                    ("multiple_strategies", 0.4),
                    ("talk_norms_visible", 0.5),
                    ("student_at_board", 0.3),
                )
            }
            for key in (
                "students_explaining",
                "building_on_peer",
                "teacher_press",
                "revoicing",
                "student_question",
            ):
                values[key] = {"value": rng.randrange(8)}
            if rng.random() < 0.1:
                values["overall_discourse"] = {"not_observed": True}
            else:
                values["overall_discourse"] = {
                    "value": rng.choice([1, 2, 2, 3, 3, 3, 4, 4, 5]),
                    "evidence": "Students explained to a partner.",
                }
            if rng.random() < 0.6:
                values["glow"] = {"value": "Clear launch of the task."}
            payload = observations.ObservationPayload.model_validate(
                {
                    "rubric_slug": "discourse-walkthrough",
                    "rubric_version": 1,
                    "teacher_id": teacher.id,
                    "observed_at": at,
                    "duration_seconds": rng.choice([None, 300, 600, 600, 900]),
                    "grade": grade,
                    "subject": rng.choice(["Mathematics", "Mathematics", "Algebra"]),
                    "status": "submitted",
                    "values": values,
                    "notes": [{"minute": 2, "text": "Launch"}],
                }
            )
            changes.append(observations.Change(uuid.uuid4(), 0, payload))
        for b in range(0, len(changes), 200):
            with Session(engine, expire_on_commit=False) as session:
                author = session.get(User, observer.id)
                assert author is not None
                outcomes = observations.write(
                    session=session, author=author, device="bench", changes=changes[b : b + 200]
                )
                assert all(o.status == "created" for o in outcomes), outcomes[:1]
                session.commit()
    engine.dispose()
    return {"observers": len(observers), "teachers": schools * per_school}


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_export(args: argparse.Namespace) -> None:
    import shutil

    sizes = [100_000, 1_000_000] if not args.quick else [13_000, 130_000]
    kinds = ["sqlite"] + ([] if args.sqlite_only else ["postgres"])
    print("export: long CSV over HTTP (streamed), rows per second and the server's peak memory")
    for kind in kinds:
        print(f"[{kind}]")
        peaks = []
        for size in sizes:
            with database(kind) as url:
                _seed_observations(url, size // 13)
                with server(url) as base, httpx.Client(base_url=base, timeout=600) as client:
                    _sign_in(client, "admin@demo.walkthrough.test")
                    pid = _server_pid(base)
                    started = time.perf_counter()
                    rows = 0
                    with client.stream(
                        "GET", "/exports/download?dataset=observations_long&format=csv"
                    ) as r:
                        r.raise_for_status()
                        for chunk in r.iter_bytes():
                            rows += chunk.count(b"\r\n")
                    elapsed = time.perf_counter() - started
                    rows -= 1  # header
                    peak = _peak_rss_mb(pid)
                    peaks.append(peak)
                    rate = rows / elapsed
                    line = f"  {rows:>9,} item rows  {rate:>9,.0f} rows/s  peak RSS {peak:6.1f} MB"
                    if kind == "sqlite" and shutil.which("sqlite3"):
                        cli = _sqlite3_cli_rate(url, rows)
                        line += (
                            f"   sqlite3 -csv {cli:>9,.0f} rows/s   ours/sqlite3 {rate / cli:.0%}"
                        )
                    print(line)
        growth = peaks[-1] - peaks[0]
        print(f"  peak memory growth from the small to the large export: {growth:+.1f} MB")


def _server_pid(base: str) -> int:
    port = base.rsplit(":", 1)[1]
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if f"--port {port}" in line and "uvicorn" in line:
            return int(line.split()[0])
    raise RuntimeError("server process not found")


def _sqlite3_cli_rate(url: str, expected_rows: int) -> float:
    """The sqlite3 command line exporting the same item rows (json_each over the values)."""
    path = url.split("///", 1)[1]
    query = (
        "SELECT o.id, o.revision, o.status, o.observed_at, o.submitted_at, s.name, "
        "o.teacher_name, t.district_id, u.name, o.grade, o.subject, r.slug, r.version, j.key, "
        "j.value ->> '$.value', j.value ->> '$.evidence', o.tags, o.overall_notes "
        "FROM observation o JOIN school s ON s.id = o.school_id "
        "JOIN user u ON u.id = o.observer_id JOIN rubric_version r ON r.id = o.rubric_version_id "
        "LEFT JOIN teacher t ON t.id = o.teacher_id, "
        'json_each(o."values") j ORDER BY o.observed_at, o.id;'
    )
    started = time.perf_counter()
    result = subprocess.run(
        ["sqlite3", "-csv", "-header", path, query], capture_output=True, check=True
    )
    elapsed = time.perf_counter() - started
    rows = result.stdout.count(b"\n") - 1
    assert abs(rows - expected_rows) <= expected_rows * 0.01, (rows, expected_rows)
    return rows / elapsed


def _percentiles(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {at(0.50):7.1f} ms  p95 {at(0.95):7.1f} ms  p99 {at(0.99):7.1f} ms"


async def _load_run(base: str, clients: int, seconds: float, think: float) -> dict[str, Any]:
    import asyncio
    import random

    sessions = []
    for _ in range(5):  # five signed-in tablets' cookies, shared by the simulated clients
        with httpx.Client(base_url=base, timeout=60) as c:
            csrf = _sign_in(c, "coach@demo.walkthrough.test")
            sessions.append((dict(c.cookies), csrf))
    timings: dict[str, list[float]] = {"page": [], "push": [], "ping": []}
    errors: dict[str, int] = {"page": 0, "push": 0, "ping": 0}
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)

    # Every client is built before the clock starts: making 100 httpx clients takes the
    # load generator's loop a second or two, which would otherwise be counted as latency.
    made = [
        httpx.AsyncClient(
            base_url=base, cookies=sessions[k % len(sessions)][0], timeout=60, limits=limits
        )
        for k in range(clients)
    ]
    deadline = time.perf_counter() + seconds

    async def client_loop(k: int) -> None:
        csrf = sessions[k % len(sessions)][1]
        async with made[k] as c:
            n = 0
            if think:  # tablets do not start in lockstep: spread the first requests out
                await asyncio.sleep(random.uniform(0, think))
            while time.perf_counter() < deadline:
                n += 1
                kind = "page" if (k + n) % 2 else "push"
                started = time.perf_counter()
                try:
                    if kind == "page":
                        r = await c.get("/capture/discourse-walkthrough/1")
                        ok = r.status_code == 200
                    else:
                        item = {
                            "id": str(uuid.uuid4()),
                            "base_revision": 0,
                            "payload": {
                                "rubric_slug": "discourse-walkthrough",
                                "rubric_version": 1,
                                "teacher_name": "Load Teacher",
                                "observed_at": "2026-11-20T09:15:00-06:00",
                                "status": "submitted",
                                "values": {"students_explaining": {"value": n % 10}},
                            },
                        }
                        r = await c.post(
                            "/api/sync/push",
                            json={"device_id": f"tablet-{k}", "items": [item]},
                            headers={"X-CSRF-Token": csrf},
                        )
                        ok = r.status_code == 200 and r.json()["results"][0]["status"] == "created"
                except httpx.HTTPError:
                    ok = False
                timings[kind].append(time.perf_counter() - started)
                if not ok:
                    errors[kind] += 1
                if think:
                    await asyncio.sleep(random.uniform(0.5 * think, 1.5 * think))

    async def pinger() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    ok = (await c.get("/api/ping")).status_code == 200
                except httpx.HTTPError:
                    ok = False
                timings["ping"].append(time.perf_counter() - started)
                if not ok:
                    errors["ping"] += 1
                await asyncio.sleep(0.1)

    await asyncio.gather(pinger(), *(client_loop(k) for k in range(clients)))
    return {"timings": timings, "errors": errors}


def bench_load(args: argparse.Namespace) -> None:
    import asyncio

    kinds = ["sqlite"] + ([] if args.sqlite_only else ["postgres"])
    pause = f"{args.think:g} s (0.5-1.5x) between requests" if args.think else "no pause"
    print(
        f"load: {args.clients} clients for {args.seconds:.0f} s, each alternating the capture "
        f"page and a one-item push, {pause}; /api/ping every 100 ms beside them"
    )
    for kind in kinds:
        with database(kind) as url, server(url) as base:
            result = asyncio.run(_load_run(base, args.clients, args.seconds, args.think))
        print(f"{kind}:")
        for name in ("push", "page", "ping"):
            samples = result["timings"][name]
            rate = len(samples) / args.seconds
            print(
                f"  {name:<5} {len(samples):>6} requests ({rate:6.1f}/s)  "
                f"{_percentiles(samples)}  errors {result['errors'][name]}"
            )


def bench_import(args: argparse.Namespace) -> None:
    import threading

    kinds = ["sqlite"] + ([] if args.sqlite_only else ["postgres"])
    rows = ["school,school_code,teacher,district_id,grades"]
    rows += [
        f"Bench School {i % 40},BS{i % 40},Teacher {i:05d},B{i:05d},{i % 12 + 1}"
        for i in range(args.rows)
    ]
    body = ("\r\n".join(rows) + "\r\n").encode()
    print(f"import: a {args.rows:,}-row roster CSV ({len(body) / 1024:.0f} KB), /healthz meanwhile")
    for kind in kinds:
        with database(kind) as url, server(url) as base:
            with httpx.Client(base_url=base, timeout=600) as admin:
                csrf = _sign_in(admin, "admin@demo.walkthrough.test")
                done = threading.Event()
                health: list[float] = []
                failures = [0]

                def probe(
                    done: threading.Event = done,
                    health: list[float] = health,
                    failures: list[int] = failures,
                ) -> None:
                    with httpx.Client(base_url=base, timeout=60) as c:
                        while not done.is_set():
                            started = time.perf_counter()
                            if c.get("/healthz").status_code != 200:
                                failures[0] += 1
                            health.append(time.perf_counter() - started)
                            time.sleep(0.05)

                def upload(admin: httpx.Client = admin, csrf: str = csrf) -> float:
                    started = time.perf_counter()
                    r = admin.post(
                        "/admin/roster",
                        data={"csrf_token": csrf},
                        files={"file": ("roster.csv", body, "text/csv")},
                    )
                    assert r.status_code == 200, r.text[:500]
                    return time.perf_counter() - started

                prober = threading.Thread(target=probe)
                prober.start()
                try:
                    elapsed = upload()
                finally:
                    done.set()
                    prober.join()
                unchanged = upload()
            print(
                f"{kind}: import {elapsed:.2f} s (re-import, nothing changes: {unchanged:.2f} s); "
                f"/healthz during it: {len(health)} probes, {_percentiles(health)}, "
                f"max {max(health) * 1000:.1f} ms, errors {failures[0]}"
            )


def _analyze(url: str) -> None:
    """Planner statistics, as a database that has run a while has them (autovacuum's ANALYZE;
    right after a bulk load PostgreSQL would otherwise plan for empty tables)."""
    from sqlalchemy import text

    engine = make_engine(url)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()


def bench_dashboard(args: argparse.Namespace) -> None:
    import statistics
    import threading

    kinds = ["sqlite"] + ([] if args.sqlite_only else ["postgres"])
    print(
        f"dashboard: {args.n:,} Discourse Walk-Throughs over 36 school weeks by 300 observers at "
        "200 schools (20,000 teachers), seeded through the write path; each page requested "
        f"{args.repeat} times in turn (median / p95 ms), /healthz sampled meanwhile"
    )
    for kind in kinds:
        with database(kind) as url:
            started = time.perf_counter()
            _seed_district(url, args.n)
            print(f"[{kind}] seeded in {time.perf_counter() - started:.0f} s")
            _analyze(url)
            from sqlalchemy import text

            engine = make_engine(url)
            with engine.connect() as conn:
                lincoln = conn.execute(
                    text("SELECT id FROM school WHERE name = 'Lincoln Elementary'")
                ).scalar()
                other = conn.execute(
                    text("SELECT id FROM school WHERE name = 'School 007'")
                ).scalar()
                teacher = conn.execute(
                    text("SELECT teacher_id FROM observation WHERE school_id = :s LIMIT 1"),
                    {"s": lincoln},
                ).scalar()
            engine.dispose()
            pages = {
                "admin": [
                    ("figures by school (default)", "/dashboard"),
                    ("figures by month", "/dashboard?by=month"),
                    ("trends, district", "/dashboard/trends"),
                    ("figures by grade", "/dashboard?by=grade"),
                    ("figures by observer", "/dashboard?by=observer"),
                    ("figures by week", "/dashboard?by=week"),
                    ("figures, one school by teacher", f"/dashboard?school_id={other}&by=teacher"),
                    ("figures, Sep 15 - Oct 14", "/dashboard?from=2026-09-15&to=2026-10-14"),
                    ("figures CSV by school", "/dashboard.csv"),
                    # The seeded year runs to late April 2027: coverage looks back six weeks
                    # from its end, as a lead would in May (no visit lies in the future).
                    ("coverage", "/dashboard/coverage?since=2027-03-15"),
                    (
                        "coverage, one school",
                        f"/dashboard/coverage?since=2027-03-15&school_id={other}",
                    ),
                    ("observations list", "/observations"),
                    ("teacher page", f"/teachers/{teacher}"),
                    ("teachers (admin)", "/admin/teachers"),
                ],
                "principal": [
                    ("home (coverage at a glance)", "/"),
                    ("figures by teacher (default)", "/dashboard"),
                    ("figures by grade", "/dashboard?by=grade"),
                    ("trends", "/dashboard/trends"),
                    ("coverage", "/dashboard/coverage?since=2027-03-15"),
                    ("observations list", "/observations"),
                    ("teacher page", f"/teachers/{teacher}"),
                ],
            }
            emails = {
                "admin": "admin@demo.walkthrough.test",
                "principal": "principal@demo.walkthrough.test",
            }
            with server(url) as base:
                health: list[float] = []
                stop = threading.Event()

                def probe(stop: threading.Event = stop, health: list[float] = health) -> None:
                    with httpx.Client(base_url=base, timeout=30) as c:
                        while not stop.is_set():
                            t0 = time.perf_counter()
                            c.get("/healthz").raise_for_status()
                            health.append(time.perf_counter() - t0)
                            stop.wait(0.25)

                prober = threading.Thread(target=probe)
                prober.start()
                try:
                    for role, views in pages.items():
                        with httpx.Client(base_url=base, timeout=120) as client:
                            _sign_in(client, emails[role])
                            for name, path in views:
                                samples = []
                                for _ in range(args.repeat):
                                    t0 = time.perf_counter()
                                    r = client.get(path)
                                    samples.append(time.perf_counter() - t0)
                                    assert r.status_code == 200, (path, r.status_code)
                                samples.sort()
                                median = statistics.median(samples) * 1000
                                p95 = (
                                    samples[min(len(samples) - 1, int(len(samples) * 0.95))] * 1000
                                )
                                print(f"  {role:<9} {name:<34} {median:>7.0f} {p95:>7.0f}")
                finally:
                    stop.set()
                    prober.join()
                print(f"  /healthz meanwhile: {len(health)} probes, {_percentiles(health)}")


def bench_participation(args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    from app.demo import DEMO_PASSWORD
    from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS, TABLET

    print(
        f"participation: {args.taps} contributions on a 24-marker map in Chromium at "
        f"{TABLET['width']}x{TABLET['height']}, on SQLite"
    )
    with database("sqlite") as url, server(url) as base:
        # First load of the capture page with the map: every file it loads, gzipped as sent.
        with httpx.Client(base_url=base, headers={"Accept-Encoding": "gzip"}) as web:
            token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text)
            assert token
            web.post(
                "/login",
                data={
                    "email": "coach@demo.walkthrough.test",
                    "password": DEMO_PASSWORD,
                    "csrf_token": token.group(1),
                },
            )
            sizes: dict[str, tuple[int, int]] = {}
            page = web.get("/capture/who-talks/1")
            assert page.status_code == 200, page.status_code
            html = page.text
            sizes["/capture/who-talks/1"] = (len(page.content), _wire_size(page))
            static = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
            todo = list(dict.fromkeys(static))
            while todo:  # modules import others: follow them
                path = todo.pop(0)
                if path in sizes:
                    continue
                got = web.get(path)
                sizes[path] = (len(got.content), _wire_size(got))
                if path.endswith(".js"):
                    for name in re.findall(r'import \w+ from "\./([^"]+)"', got.text):
                        todo.append("/static/" + name)
        raw = sum(r for r, _w in sizes.values())
        wire = sum(w for _r, w in sizes.values())
        print(
            f"  first load: {len(sizes)} files, {raw / 1024:.1f} KB, "
            f"{wire / 1024:.1f} KB compressed"
        )
        for path, (r, w) in sorted(sizes.items(), key=lambda kv: -kv[1][1]):
            print(f"    {path:<40} {r / 1024:7.1f} KB  {w / 1024:6.1f} KB gzip")

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport=TABLET, has_touch=True)
            tab = context.new_page()
            tab.goto(base + "/login")
            tab.fill("#email", "coach@demo.walkthrough.test")
            tab.fill("#password", DEMO_PASSWORD)
            tab.click("button[type=submit]")
            tab.wait_for_url(lambda u: "/login" not in u)
            tab.goto(base + "/observations/new")
            tab.get_by_label("Teacher").fill("Bench Teacher")
            tab.get_by_text("Who Talks").click()
            tab.get_by_role("button", name="Start observing").click()
            tab.wait_for_url("**/capture/who-talks/1#*")
            tab.get_by_role("button", name="Lay out the map").click()
            tab.locator(".p-marker[data-marker='24']").wait_for()
            # Real taps (touch events through the DevTools protocol): from the talk-type tap
            # until the marker shows its new count, timed in the page.
            tapped: list[float] = []
            for i in range(args.taps):
                marker = 1 + (i * 7) % 24
                tab.locator(f".p-marker[data-marker='{marker}']").tap()
                tab.evaluate(
                    """m => { const b = document.querySelector(`[data-talk='short']`);
                      const count = document.querySelector(
                        `.p-marker[data-marker='${m}'] [data-p-count]`);
                      const before = count.textContent;
                      window.__t = null;
                      b.addEventListener('touchstart', () => {
                        const t0 = performance.now();
                        const seen = () => count.textContent !== before
                          ? (window.__t = performance.now() - t0) : requestAnimationFrame(seen);
                        requestAnimationFrame(seen);
                      }, { once: true }); }""",
                    marker,
                )
                tab.locator("[data-talk='short']").tap()
                tapped.append(
                    float(
                        tab.evaluate(
                            """() => new Promise(r => { const poll = () => window.__t !== null
                              ? r(window.__t) : requestAnimationFrame(poll); poll(); })"""
                        )
                    )
                )
            # In the page alone: the click handler, the DOM update and the next frame.
            inpage = tab.evaluate(
                """async (n) => {
                  const out = [];
                  for (let i = 0; i < n; i++) {
                    const m = 1 + (i * 5) % 24;
                    const marker = document.querySelector(`.p-marker[data-marker='${m}']`);
                    const count = marker.querySelector('[data-p-count]');
                    const before = count.textContent;
                    const t0 = performance.now();
                    marker.click();
                    document.querySelector("[data-talk='explains']").click();
                    const updated = count.textContent !== before ? performance.now() - t0 : NaN;
                    await new Promise(r => requestAnimationFrame(() => r()));
                    out.push([updated, performance.now() - t0]);
                  }
                  return out;
                }""",
                args.taps,
            )
            events = tab.evaluate(
                "JSON.parse(document.querySelector('[data-participation]').value).events.length"
            )
            browser.close()
    assert events == 2 * args.taps, events
    figures = {
        "real tap on a talk type -> its count on screen": [t / 1000 for t in tapped],
        "click -> count updated in the DOM (in-page)": [u / 1000 for u, _f in inpage],
        "click -> the next frame (in-page)": [f / 1000 for _u, f in inpage],
    }
    for name, samples in figures.items():
        print(f"  {name:<48} {_percentiles(samples)}")


def _wire_size(response: httpx.Response) -> int:
    """The bytes on the wire: the body as sent (gzipped when the server compressed it)."""
    length = response.headers.get("content-length")
    if response.headers.get("content-encoding") == "gzip" and length:
        return int(length)
    return len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="bench", required=True)
    sync = sub.add_parser("sync", help="push throughput against raw inserts")
    sync.add_argument("--n", type=int, default=10_000)
    sync.add_argument("--batch", type=int, default=100)
    sync.add_argument("--sqlite-only", action="store_true")
    agree = sub.add_parser("agreement", help="alpha and the full agreement report")
    agree.add_argument("--raters", type=int, default=60)
    agree.add_argument("--units", type=int, default=200)
    agree.add_argument("--room", type=int, default=60, help="raters in the reveal-room part")
    agree.add_argument("--no-room", action="store_true", help="skip the reveal-room part")
    agree.add_argument("--sqlite-only", action="store_true", help="the room on SQLite only")
    export = sub.add_parser("export", help="streamed long CSV against the sqlite3 command line")
    export.add_argument("--sqlite-only", action="store_true")
    export.add_argument("--quick", action="store_true", help="13k and 130k rows instead")
    load = sub.add_parser("load", help="capture pages and one-item pushes from 100 clients")
    load.add_argument("--clients", type=int, default=100)
    load.add_argument("--seconds", type=float, default=30)
    load.add_argument(
        "--think", type=float, default=0, help="mean pause of each client between requests (s)"
    )
    load.add_argument("--sqlite-only", action="store_true")
    roster = sub.add_parser("import", help="a 10,000-row roster import and /healthz meanwhile")
    roster.add_argument("--rows", type=int, default=10_000)
    roster.add_argument("--sqlite-only", action="store_true")
    talk = sub.add_parser("participation", help="tap latency and page weight of the map")
    talk.add_argument("--taps", type=int, default=60)
    dash = sub.add_parser("dashboard", help="dashboards, coverage and lists at 50,000 visits")
    dash.add_argument("--n", type=int, default=50_000)
    dash.add_argument("--repeat", type=int, default=9)
    dash.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    benches = {
        "dashboard": bench_dashboard,
        "sync": bench_sync,
        "agreement": bench_agreement,
        "export": bench_export,
        "load": bench_load,
        "import": bench_import,
        "participation": bench_participation,
    }
    benches[args.bench](args)


if __name__ == "__main__":
    main()
