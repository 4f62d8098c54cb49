"""Calibration sessions: create and set up, join by code, rate blind, close, reveal, rounds,
the report, and each observer's calibration history."""

import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from app.accounts.models import Role, User
from app.calibration import agreement
from app.calibration.models import (
    CalibrationSession,
    MasterScore,
    Rater,
    Rating,
    SessionStatus,
    Stimulus,
)
from app.db import utcnow
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.rubrics.loader import RubricDefinition, ScaleItem
from app.rubrics.models import RubricStatus, RubricVersion

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B: codes are read aloud and typed on phones.
CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH = 6
FACILITATING_ROLES = {Role.facilitator, Role.admin}


def new_code() -> str:
    """A short join code from an unambiguous alphabet."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(raw: str) -> str:
    """What a person typed, as a code: upper case, no spaces or dashes."""
    return "".join(ch for ch in raw.upper() if ch.isalnum())[:12]


@dataclass
class Setup:
    """A session with what its pages need."""

    session: CalibrationSession
    rubric: RubricVersion
    definition: RubricDefinition
    items: list[ScaleItem]
    stimuli: list[Stimulus]


def scale_items(definition: RubricDefinition) -> list[ScaleItem]:
    """The items a calibration session can rate (scale items)."""
    return [item for _s, item in definition.items() if isinstance(item, ScaleItem)]


def create_session(
    *,
    session: Session,
    facilitator: User,
    title: str,
    rubric_version_id: int,
    item_keys: list[str],
    stimulus: dict[str, Any],
) -> CalibrationSession:
    """A new open session on a published rubric version, with its first stimulus."""
    if facilitator.role not in FACILITATING_ROLES:
        raise Forbidden("Only facilitators and admins run calibration sessions.")
    errors = []
    rubric = session.get(RubricVersion, rubric_version_id)
    if rubric is None or rubric.status != RubricStatus.published:
        errors.append(
            {"field": "rubric_version_id", "message": "Choose a published rubric version."}
        )
    if not title.strip():
        errors.append({"field": "title", "message": "Give the session a title."})
    if errors:
        raise Invalid("The session was not created.", details=errors)
    assert rubric is not None and facilitator.id is not None
    available = [i.key for i in scale_items(RubricDefinition.model_validate(rubric.content))]
    chosen = [k for k in available if k in item_keys] or available
    assert rubric.id is not None
    calibration = CalibrationSession(
        title=title.strip()[:200],
        code=new_code(),
        rubric_version_id=rubric.id,
        item_keys=chosen,
        facilitator_id=facilitator.id,
        status=SessionStatus.open,
    )
    while session.exec(
        select(CalibrationSession).where(CalibrationSession.code == calibration.code)
    ).first():
        calibration.code = new_code()
    session.add(calibration)
    session.flush()
    add_stimulus(session=session, calibration=calibration, **stimulus)
    return calibration


def add_stimulus(
    *,
    session: Session,
    calibration: CalibrationSession,
    title: str,
    kind: str,
    transcript: str = "",
    video_url: str = "",
    start_seconds: int | None = None,
    end_seconds: int | None = None,
) -> Stimulus:
    """Add a transcript excerpt or a video clip to rate."""
    errors = []
    if kind not in ("transcript", "video"):
        errors.append({"field": "kind", "message": "Choose transcript or video."})
    if kind == "transcript" and not transcript.strip():
        errors.append({"field": "transcript", "message": "Paste the transcript to rate."})
    if kind == "video":
        if not video_url.startswith(("https://", "http://")):
            errors.append({"field": "video_url", "message": "Give the video's web address."})
        if start_seconds is not None and end_seconds is not None and end_seconds <= start_seconds:
            errors.append({"field": "end_seconds", "message": "The end must come after the start."})
    if errors:
        raise Invalid("The stimulus was not added.", details=errors)
    assert calibration.id is not None
    count = len(stimuli_of(session=session, calibration=calibration))
    stimulus = Stimulus(
        session_id=calibration.id,
        position=count + 1,
        title=title.strip()[:200] or f"Excerpt {count + 1}",
        kind=kind,
        transcript=transcript.strip(),
        video_url=video_url.strip()[:500],
        start_seconds=start_seconds,
        end_seconds=end_seconds,
    )
    session.add(stimulus)
    session.flush()
    return stimulus


def stimuli_of(*, session: Session, calibration: CalibrationSession) -> list[Stimulus]:
    """The session's stimuli in order."""
    stmt = (
        select(Stimulus)
        .where(Stimulus.session_id == calibration.id)
        .order_by(col(Stimulus.position))
    )
    return list(session.exec(stmt))


def setup(*, session: Session, calibration: CalibrationSession) -> Setup:
    """The session with its rubric, rated items and stimuli."""
    rubric = session.get(RubricVersion, calibration.rubric_version_id)
    assert rubric is not None
    definition = RubricDefinition.model_validate(rubric.content)
    items = [i for i in scale_items(definition) if i.key in calibration.item_keys]
    return Setup(
        calibration, rubric, definition, items, stimuli_of(session=session, calibration=calibration)
    )


def for_facilitator(*, session: Session, user: User, session_id: int) -> CalibrationSession:
    """A session its facilitator (or an admin) may run; NotFound for anyone else."""
    calibration = session.get(CalibrationSession, session_id)
    if calibration is None or (user.role != Role.admin and calibration.facilitator_id != user.id):
        raise NotFound("There is no calibration session of yours at this address.")
    return calibration


def list_for(*, session: Session, user: User) -> list[CalibrationSession]:
    """Sessions this facilitator runs (all of them for an admin), newest first."""
    stmt = select(CalibrationSession).order_by(col(CalibrationSession.id).desc())
    if user.role != Role.admin:
        stmt = stmt.where(CalibrationSession.facilitator_id == user.id)
    return list(session.exec(stmt))


def by_code(*, session: Session, code: str) -> CalibrationSession | None:
    """The session with this join code."""
    return session.exec(
        select(CalibrationSession).where(CalibrationSession.code == normalise_code(code))
    ).first()


def set_master(
    *,
    session: Session,
    calibration: CalibrationSession,
    stimulus_id: int,
    item_key: str,
    value: int | None,
    rationale: str,
) -> None:
    """Set (or clear, with value None) the master score of a stimulus x item."""
    s = setup(session=session, calibration=calibration)
    item = next((i for i in s.items if i.key == item_key), None)
    if item is None or stimulus_id not in {st.id for st in s.stimuli}:
        raise NotFound("No such stimulus or item in this session.")
    existing = session.exec(
        select(MasterScore).where(
            MasterScore.stimulus_id == stimulus_id, MasterScore.item_key == item_key
        )
    ).first()
    if value is None:
        if existing:
            session.delete(existing)
        session.flush()
        return
    if value not in [lv.value for lv in item.levels]:
        raise Invalid(f"{value} is not a level of {item.title}.")
    assert calibration.id is not None
    master = existing or MasterScore(
        session_id=calibration.id, stimulus_id=stimulus_id, item_key=item_key, value=value
    )
    master.value, master.rationale = value, rationale.strip()[:4000]
    session.add(master)
    session.flush()


def masters(
    *, session: Session, calibration: CalibrationSession
) -> dict[tuple[int, str], MasterScore]:
    """Master scores by (stimulus id, item key)."""
    rows = session.exec(select(MasterScore).where(MasterScore.session_id == calibration.id))
    return {(m.stimulus_id, m.item_key): m for m in rows}


# --- raters ---------------------------------------------------------------------------------


def join(
    *, session: Session, calibration: CalibrationSession, user: User | None, guest_name: str
) -> Rater:
    """Join as the signed-in user (once per session) or as a guest with a display name."""
    assert calibration.id is not None
    if user is not None:
        existing = session.exec(
            select(Rater).where(Rater.session_id == calibration.id, Rater.user_id == user.id)
        ).first()
        if existing:
            return existing
        rater = Rater(session_id=calibration.id, user_id=user.id, display_name=user.name)
    else:
        name = " ".join(guest_name.split())[:100]
        if not name:
            raise Invalid(
                "Type the name the facilitator will see.",
                details=[{"field": "name", "message": "Type your name."}],
            )
        rater = Rater(session_id=calibration.id, display_name=name)
    session.add(rater)
    session.flush()
    return rater


def raters_of(*, session: Session, calibration: CalibrationSession) -> list[Rater]:
    """Everyone who joined, in joining order."""
    return list(
        session.exec(
            select(Rater).where(Rater.session_id == calibration.id).order_by(col(Rater.id))
        )
    )


def rate(
    *,
    session: Session,
    calibration: CalibrationSession,
    rater: Rater,
    ratings: list[tuple[int, str, int]],
) -> int:
    """Store (or change) a rater's levels for this round; an upsert on the rating's key."""
    if calibration.status != SessionStatus.open:
        raise Conflict("Rating is closed for this session.")
    if rater.done_round >= calibration.current_round:
        raise Conflict("You marked yourself done for this round; your ratings are final.")
    s = setup(session=session, calibration=calibration)
    levels = {i.key: {lv.value for lv in i.levels} for i in s.items}
    stimulus_ids = {st.id for st in s.stimuli}
    rows: list[dict[str, Any]] = []
    for stimulus_id, item_key, value in ratings:
        if stimulus_id not in stimulus_ids or item_key not in levels:
            raise Invalid(f"Unknown stimulus {stimulus_id} or item '{item_key}' in this session.")
        if value not in levels[item_key]:
            raise Invalid(f"{value} is not a level of '{item_key}'.")
        rows.append(
            {
                "session_id": calibration.id,
                "round": calibration.current_round,
                "rater_id": rater.id,
                "stimulus_id": stimulus_id,
                "item_key": item_key,
                "value": value,
                "updated_at": utcnow(),
            }
        )
    if not rows:
        return 0
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(Rating).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["rater_id", "round", "stimulus_id", "item_key"],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )
    session.execute(stmt)
    return len(rows)


def own_ratings(
    *, session: Session, calibration: CalibrationSession, rater: Rater
) -> dict[tuple[int, str], int]:
    """A rater's own levels in the current round (all anyone sees before reveal)."""
    rows = session.exec(
        select(Rating).where(Rating.rater_id == rater.id, Rating.round == calibration.current_round)
    )
    return {(r.stimulus_id, r.item_key): r.value for r in rows}


def mark_done(*, session: Session, calibration: CalibrationSession, rater: Rater) -> None:
    """The rater is done with this round: their ratings are final."""
    rater.done_round = calibration.current_round
    session.add(rater)
    session.flush()


def progress(*, session: Session, calibration: CalibrationSession) -> list[dict[str, Any]]:
    """Who joined, how many ratings each has in, and who is done (for the live board)."""
    s = setup(session=session, calibration=calibration)
    expected = len(s.items) * len(s.stimuli)
    counts: dict[int, int] = {}
    for r in session.exec(
        select(Rating).where(
            Rating.session_id == calibration.id, Rating.round == calibration.current_round
        )
    ):
        counts[r.rater_id] = counts.get(r.rater_id, 0) + 1
    return [
        {
            "rater": r,
            "ratings": counts.get(r.id or 0, 0),
            "expected": expected,
            "done": r.done_round >= calibration.current_round,
        }
        for r in raters_of(session=session, calibration=calibration)
    ]


def set_status(*, session: Session, calibration: CalibrationSession, action: str) -> None:
    """close, reveal, reopen, or next_round (a fresh blind round after discussion). Reveal
    and a new round wait for the first rating of the current round."""
    if action in ("reveal", "next_round"):
        rated = session.exec(
            select(Rating.id).where(
                Rating.session_id == calibration.id, Rating.round == calibration.current_round
            )
        ).first()
        if rated is None:
            raise Conflict(
                f"Nobody has rated in round {calibration.current_round} yet: there is nothing "
                "to reveal or to compare a new round with."
            )
    if action == "close":
        calibration.status = SessionStatus.closed
    elif action == "reopen":
        calibration.status = SessionStatus.open
    elif action == "reveal":
        calibration.status = SessionStatus.revealed
    elif action == "next_round":
        calibration.current_round += 1
        calibration.status = SessionStatus.open
    else:
        raise Invalid(f"Unknown action '{action}'.")
    session.add(calibration)
    session.flush()


# --- the report, computed once per state of the session -----------------------------------
# At reveal a whole room opens the report at once. Its statistics (bootstrap intervals,
# every pair of raters) take a second or more, so they are computed once for each state of
# the session's data (a fingerprint of its ratings, raters, stimuli and master scores) with
# everyone anonymised, kept in this process, and relabelled per viewer. One request builds
# it while the others for the same session wait for it; a late rating or a new master score
# changes the fingerprint, and the next view builds it again. Each app server keeps its own.
_REPORT_CACHE_SIZE = 32
_Cached = tuple[str, dict[str, Any], dict[str, list[tuple[str | int, ...]]]]
_reports: OrderedDict[tuple[int, int], _Cached] = OrderedDict()
_reports_guard = threading.Lock()
_build_locks: dict[tuple[int, int], threading.Lock] = {}


def _build_lock(key: tuple[int, int]) -> threading.Lock:
    with _reports_guard:
        return _build_locks.setdefault(key, threading.Lock())


def _fingerprint(
    session: Session,
    calibration: CalibrationSession,
    s: Setup,
    raters: list[Rater],
    master: dict[tuple[int, str], MasterScore],
) -> str:
    """What the report is computed from, as a hash (well under a millisecond to compute)."""
    # The ratings as aggregates (one row however large the room): a new or changed rating
    # moves the count, the sums or the latest update time.
    ratings = session.execute(
        sa_select(
            func.count(),
            func.coalesce(func.sum(col(Rating.value)), 0),
            func.coalesce(func.sum(col(Rating.value) * col(Rating.id)), 0),
            func.coalesce(func.sum(col(Rating.round) * col(Rating.id)), 0),
            func.max(col(Rating.id)),
            func.max(col(Rating.updated_at)),
        ).where(col(Rating.session_id) == calibration.id)
    ).one()
    state = (
        calibration.current_round,
        calibration.rubric_version_id,
        list(calibration.item_keys),
        calibration.title,
        calibration.code,
        [(r.id, r.display_name) for r in raters],
        [(st.id, st.position, st.title) for st in s.stimuli],
        sorted((k[0], k[1], m.value, m.rationale) for k, m in master.items()),
        tuple(ratings),
    )
    return hashlib.sha256(repr(state).encode()).hexdigest()


Path = tuple[str | int, ...]


def _label_paths(data: Any, labels: set[str]) -> dict[str, list[Path]]:
    """Where each anonymous label sits in the report (computed once per report)."""
    found: dict[str, list[Path]] = {}

    def walk(node: Any, path: Path) -> None:
        if isinstance(node, str):
            if node in labels:
                found.setdefault(node, []).append(path)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(data, ())
    return found


def _relabel(data: dict[str, Any], paths: dict[str, list[Path]], names: dict[str, str]) -> Any:
    """The report with the anonymous labels in `names` replaced: only the containers on the
    way to a replaced label are copied; the rest is shared with the cached report, which
    nobody changes."""
    root: dict[str, Any] = dict(data)
    copies: dict[Path, Any] = {(): root}
    for label, name in names.items():
        for path in paths.get(label, []):
            node: Any = root
            for depth in range(1, len(path)):
                prefix = path[:depth]
                child = copies.get(prefix)
                if child is None:
                    original = node[path[depth - 1]]
                    child = dict(original) if isinstance(original, dict) else list(original)
                    node[path[depth - 1]] = child
                    copies[prefix] = child
                node = child
            node[path[-1]] = name
    return root


def report(
    *,
    session: Session,
    calibration: CalibrationSession,
    viewer_rater_id: int | None,
    names_visible: bool,
    resamples: int = 1000,
    bar: tuple[float, float] = (agreement.RELIABLE_MINIMUM, agreement.TENTATIVE_MINIMUM),
) -> dict[str, Any]:
    """The agreement report of every round (the latest in full), as JSON-ready data: every
    rater by name for the facilitator (`names_visible`), otherwise "Rater n" but for the
    viewer. Computed once per state of the session (see above)."""
    s = setup(session=session, calibration=calibration)
    raters = raters_of(session=session, calibration=calibration)
    master = masters(session=session, calibration=calibration)
    anonymous = {r.id: f"Rater {n}" for n, r in enumerate(raters, start=1)}
    key = (calibration.id or 0, resamples)
    fingerprint = _fingerprint(session, calibration, s, raters, master) + f"|{bar}"
    with _build_lock(key):
        with _reports_guard:
            hit = _reports.get(key)
        if hit is not None and hit[0] == fingerprint:
            data, paths = hit[1], hit[2]
        else:
            data = _build_report(session, calibration, s, raters, master, anonymous, resamples, bar)
            paths = _label_paths(data, set(anonymous.values()))
            with _reports_guard:
                _reports[key] = (fingerprint, data, paths)
                _reports.move_to_end(key)
                while len(_reports) > _REPORT_CACHE_SIZE:
                    _reports.popitem(last=False)
    shown = {
        anonymous[r.id]: r.display_name for r in raters if names_visible or r.id == viewer_rater_id
    }
    result: dict[str, Any] = _relabel(data, paths, shown)
    result["version"] = fingerprint[:16]  # changes whenever the report would
    if viewer_rater_id is not None and viewer_rater_id in anonymous and not names_visible:
        viewer = next(r for r in raters if r.id == viewer_rater_id)
        result["you"] = {"label": anonymous[viewer_rater_id], "name": viewer.display_name}
    return result


def _build_report(
    session: Session,
    calibration: CalibrationSession,
    s: Setup,
    raters: list[Rater],
    master: dict[tuple[int, str], MasterScore],
    names: dict[int | None, str],
    resamples: int,
    bar: tuple[float, float],
) -> dict[str, Any]:
    rounds = []
    for rnd in range(1, calibration.current_round + 1):
        rounds.append(
            _round_report(
                session,
                s,
                calibration,
                raters,
                names,
                master,
                rnd,
                resamples if rnd == calibration.current_round else 0,
                bar,
            )
        )
    latest = rounds[-1]
    change = None
    if len(rounds) > 1:
        before = rounds[-2]
        change = {
            "alpha": [
                before["session"]["krippendorff_alpha"]["value"],
                latest["session"]["krippendorff_alpha"]["value"],
            ],
            "exact_agreement": [
                before["session"]["exact_agreement"],
                latest["session"]["exact_agreement"],
            ],
            "items": {
                key: [
                    before["items"][key]["exact_agreement"],
                    latest["items"][key]["exact_agreement"],
                ]
                for key in latest["items"]
            },
        }
    return {
        "session": {
            "id": calibration.id,
            "title": calibration.title,
            "code": calibration.code,
            "rubric": f"{s.rubric.slug} v{s.rubric.version}",
            "round": calibration.current_round,
        },
        "rounds": rounds,
        "latest": latest,
        "round_change": change,
        "master": [
            {
                "stimulus_id": m.stimulus_id,
                "item_key": m.item_key,
                "value": m.value,
                "rationale": m.rationale,
            }
            for m in master.values()
        ],
    }


def _round_report(
    session: Session,
    s: Setup,
    calibration: CalibrationSession,
    raters: list[Rater],
    names: dict[int | None, str],
    master: dict[tuple[int, str], MasterScore],
    rnd: int,
    resamples: int,
    bar: tuple[float, float],
) -> dict[str, Any]:
    ratings: dict[tuple[Any, Any, str], int] = {
        (r.rater_id, r.stimulus_id, r.item_key): r.value
        for r in session.exec(
            select(Rating).where(Rating.session_id == calibration.id, Rating.round == rnd)
        )
    }
    active = [r for r in raters if any(k[0] == r.id for k in ratings)]
    units = [(st, item) for item in s.items for st in s.stimuli]
    unit_names = [f"{st.title} · {item.title}" for st, item in units]
    result: dict[str, Any] = {
        "round": rnd,
        "raters": [names[r.id] for r in active],
        "items": {},
        "session": None,
    }
    scales = {tuple(lv.value for lv in item.levels) for item in s.items}
    if len(active) < 2:
        result["note"] = "Agreement needs ratings from at least two raters."
        result["session"] = {"krippendorff_alpha": {"value": None}, "exact_agreement": None}
        for item in s.items:
            result["items"][item.key] = {
                "title": item.title,
                "exact_agreement": None,
                "within_one_agreement": None,
                "distribution": {},
                "levels": [(lv.value, lv.label) for lv in item.levels],
            }
        return result
    matrix = [[ratings.get((r.id, st.id, item.key)) for st, item in units] for r in active]
    by_unit: dict[tuple[Any, str], MasterScore] = dict(master)
    master_row = [
        by_unit[(st.id, item.key)].value if (st.id, item.key) in by_unit else None
        for st, item in units
    ]
    has_master = any(v is not None for v in master_row)
    if len(scales) == 1:
        categories = list(next(iter(scales)))
        full = agreement.report(
            matrix,
            categories,
            "ordinal",
            raters=[names[r.id] for r in active],
            units=unit_names,
            master=master_row if has_master else None,
            resamples=resamples,
            minimum=bar[0],
            tentative=bar[1],
        )
        result["session"] = full
    else:
        result["session"] = {
            "krippendorff_alpha": {"value": None},
            "exact_agreement": None,
            "notes": [
                {
                    "code": "mixed_scales",
                    "message": "The rated items use different scales: see each item.",
                }
            ],
        }
    for item in s.items:
        cols = [i for i, (_st, it) in enumerate(units) if it.key == item.key]
        sub = [[row[i] for i in cols] for row in matrix]
        categories = [lv.value for lv in item.levels]
        item_report = agreement.report(sub, categories, "ordinal", resamples=0)
        distribution = {lv.value: 0 for lv in item.levels}
        for row in sub:
            for v in row:
                if v is not None:
                    distribution[v] += 1
        result["items"][item.key] = {
            "title": item.title,
            "exact_agreement": item_report["exact_agreement"],
            "within_one_agreement": item_report["within_one_agreement"],
            "distribution": distribution,
            "levels": [(lv.value, lv.label) for lv in item.levels],
        }
    result["ranked"] = sorted(
        result["items"],
        key=lambda k: (
            result["items"][k]["exact_agreement"] is None,
            result["items"][k]["exact_agreement"] or 0,
        ),
    )
    return result


# --- history --------------------------------------------------------------------------------


def history(*, session: Session, user: User, bar: float) -> dict[str, Any]:
    """A signed-in observer's agreement with master scores, session by session."""
    rows: list[dict[str, Any]] = []
    for rater in session.exec(
        select(Rater).where(Rater.user_id == user.id).order_by(col(Rater.id))
    ):
        calibration = session.get(CalibrationSession, rater.session_id)
        assert calibration is not None
        master = masters(session=session, calibration=calibration)
        if not master or calibration.status != SessionStatus.revealed:
            continue
        s = setup(session=session, calibration=calibration)
        theirs = {
            (r.stimulus_id, r.item_key): r.value
            for r in session.exec(
                select(Rating).where(
                    Rating.rater_id == rater.id, Rating.round == calibration.current_round
                )
            )
        }
        keys = [k for k in master if k in theirs]
        if not keys:
            continue
        positions = {i.key: {lv.value: n for n, lv in enumerate(i.levels)} for i in s.items}
        diffs = [abs(positions[k[1]][theirs[k]] - positions[k[1]][master[k].value]) for k in keys]
        categories = (
            [lv.value for lv in s.items[0].levels]
            if len({tuple(lv.value for lv in i.levels) for i in s.items}) == 1
            else None
        )
        kappa = None
        if categories:
            kappa = agreement.cohen_kappa(
                [theirs[k] for k in keys], [master[k].value for k in keys], categories, "quadratic"
            ).value
        rows.append(
            {
                "session": calibration,
                "n": len(keys),
                "exact": sum(d == 0 for d in diffs) / len(keys),
                "within_one": sum(d <= 1 for d in diffs) / len(keys),
                "kappa": kappa,
            }
        )
    calibrated = bool(rows) and rows[-1]["within_one"] >= bar
    return {"rows": rows, "calibrated": calibrated, "bar": bar}
