"""Calibration sessions: create and set up, join by code, rate blind, close, reveal, rounds,
the report, and each observer's calibration history."""

import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, cast, func, update
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


def _stimulus_errors(
    kind: str, transcript: str, video_url: str, start: int | None, end: int | None
) -> list[dict[str, str]]:
    errors = []
    if kind not in ("transcript", "video"):
        errors.append({"field": "kind", "message": "Choose transcript or video."})
    if kind == "transcript" and not transcript.strip():
        errors.append({"field": "transcript", "message": "Paste the transcript to rate."})
    if kind == "video":
        if not video_url.startswith(("https://", "http://")):
            errors.append({"field": "video_url", "message": "Give the video's web address."})
        if start is not None and end is not None and end <= start:
            errors.append({"field": "end_seconds", "message": "The end must come after the start."})
    return errors


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
    """Add a transcript excerpt or a video clip to rate (until the first rating)."""
    errors = _stimulus_errors(kind, transcript, video_url, start_seconds, end_seconds)
    if errors:
        raise Invalid("The stimulus was not added.", details=errors)
    assert calibration.id is not None
    _refuse_after_first_rating(session, calibration, "added")
    count = len(stimuli_of(session=session, calibration=calibration))
    stimulus = Stimulus(
        session_id=calibration.id,
        position=count + 1,
        title=title.strip()[:200] or f"Excerpt {count + 1}",
        kind=kind,
        transcript=transcript.strip() if kind == "transcript" else "",
        video_url=video_url.strip()[:500] if kind == "video" else "",
        start_seconds=start_seconds,
        end_seconds=end_seconds,
    )
    session.add(stimulus)
    session.flush()
    _touch(session, calibration)
    return stimulus


def set_items(*, session: Session, calibration: CalibrationSession, keys: list[str]) -> None:
    """Choose which scale items raters rate, in the rubric's order (before anyone rated)."""
    available = [
        i.key for i in scale_items(setup(session=session, calibration=calibration).definition)
    ]
    chosen = [k for k in available if k in keys]
    if not chosen:
        raise Invalid("Choose at least one item to rate.")
    if has_ratings(session=session, calibration=calibration):
        raise Conflict("Raters have started: the items can no longer change.")
    calibration.item_keys = chosen
    session.add(calibration)
    _touch(session, calibration)


def has_ratings(*, session: Session, calibration: CalibrationSession) -> bool:
    """Whether anyone has rated in this session (in any round)."""
    first = session.execute(
        sa_select(col(Rating.id)).where(col(Rating.session_id) == calibration.id).limit(1)
    ).first()
    return first is not None


def _lock(session: Session, calibration: CalibrationSession, *, exclusive: bool) -> None:
    """Read the session row afresh, and on PostgreSQL lock it: shared while rating (raters
    never wait for one another), exclusive while changing the excerpts, so an excerpt is not
    edited or removed between a rater's check and their insert, and no rating slips in after
    a reveal that committed while the request was on its way (the status checked is the one
    locked, not the one read before). SQLite already has one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.refresh(calibration, with_for_update={"read": not exclusive})
    else:
        session.refresh(calibration)


def _refuse_after_first_rating(
    session: Session, calibration: CalibrationSession, what: str
) -> None:
    _lock(session, calibration, exclusive=True)
    if has_ratings(session=session, calibration=calibration):
        raise Conflict(
            f"Excerpts cannot be {what} once someone has rated: everyone must rate the same "
            "text. Start a new session for a different excerpt."
        )


def _stimulus(session: Session, calibration: CalibrationSession, stimulus_id: int) -> Stimulus:
    stimulus = session.get(Stimulus, stimulus_id)
    if stimulus is None or stimulus.session_id != calibration.id:
        raise NotFound("No such excerpt in this session.")
    return stimulus


def update_stimulus(
    *,
    session: Session,
    calibration: CalibrationSession,
    stimulus_id: int,
    title: str,
    kind: str,
    transcript: str = "",
    video_url: str = "",
    start_seconds: int | None = None,
    end_seconds: int | None = None,
) -> Stimulus:
    """Correct an excerpt: allowed until the first rating of the session."""
    stimulus = _stimulus(session, calibration, stimulus_id)
    errors = _stimulus_errors(kind, transcript, video_url, start_seconds, end_seconds)
    if errors:
        raise Invalid("The excerpt was not changed.", details=errors)
    _refuse_after_first_rating(session, calibration, "changed")
    stimulus.title = title.strip()[:200] or stimulus.title
    stimulus.kind = kind
    stimulus.transcript = transcript.strip() if kind == "transcript" else ""
    stimulus.video_url = video_url.strip()[:500] if kind == "video" else ""
    stimulus.start_seconds, stimulus.end_seconds = start_seconds, end_seconds
    session.add(stimulus)
    _touch(session, calibration)
    return stimulus


def remove_stimulus(*, session: Session, calibration: CalibrationSession, stimulus_id: int) -> None:
    """Remove an excerpt (and its master scores) until the first rating; a session keeps at
    least one excerpt."""
    stimulus = _stimulus(session, calibration, stimulus_id)
    _refuse_after_first_rating(session, calibration, "removed")
    remaining = [st for st in stimuli_of(session=session, calibration=calibration)]
    if len(remaining) <= 1:
        raise Conflict("A session needs at least one excerpt: add another before removing this.")
    for m in session.exec(select(MasterScore).where(MasterScore.stimulus_id == stimulus.id)):
        session.delete(m)
    session.delete(stimulus)
    session.flush()
    for position, st in enumerate((x for x in remaining if x.id != stimulus.id), start=1):
        if st.position != position:
            st.position = position
            session.add(st)
    _touch(session, calibration)


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


def _touch(session: Session, calibration: CalibrationSession) -> None:
    """Record that something the report shows changed (atomically: concurrent joins each
    count), so every app server's cached report is rebuilt on its next view."""
    session.flush()
    session.execute(
        update(CalibrationSession)
        .where(col(CalibrationSession.id) == calibration.id)
        .values(revision=col(CalibrationSession.revision) + 1)
        .execution_options(synchronize_session=False)
    )
    session.expire(calibration, ["revision"])


def set_masters(
    *,
    session: Session,
    calibration: CalibrationSession,
    entries: dict[tuple[int, str], tuple[int | None, str]],
) -> None:
    """Set (or clear, with value None) master scores: (stimulus id, item key) -> (level,
    rationale). Unknown excerpts or items are refused, and nothing is saved then."""
    s = setup(session=session, calibration=calibration)
    items = {i.key: i for i in s.items}
    stimulus_ids = {st.id for st in s.stimuli}
    for (stimulus_id, item_key), (value, _rationale) in entries.items():
        item = items.get(item_key)
        if item is None or stimulus_id not in stimulus_ids:
            raise NotFound("No such stimulus or item in this session.")
        if value is not None and value not in [lv.value for lv in item.levels]:
            raise Invalid(f"{value} is not a level of {item.title}.")
    existing = masters(session=session, calibration=calibration)
    assert calibration.id is not None
    changed = False
    for key, (value, rationale) in entries.items():
        found = existing.get(key)
        text = rationale.strip()[:4000]
        if value is None:
            if found is not None:
                session.delete(found)
                changed = True
            continue
        if found is not None and (found.value, found.rationale) == (value, text):
            continue
        master = found or MasterScore(
            session_id=calibration.id, stimulus_id=key[0], item_key=key[1], value=value
        )
        master.value, master.rationale = value, text
        session.add(master)
        changed = True
    if changed:
        _touch(session, calibration)


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
    _touch(session, calibration)
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
    ratings: list[tuple[int, str, int, str | None]],
) -> int:
    """Store (or change) a rater's levels for this round, each with an optional one-line
    "why" (None leaves the one stored alone); an upsert on the rating's key."""
    _lock(session, calibration, exclusive=False)
    if calibration.status != SessionStatus.open:
        raise Conflict("Rating is closed for this session.")
    if rater.done_round >= calibration.current_round:
        raise Conflict("You marked yourself done for this round; your ratings are final.")
    s = setup(session=session, calibration=calibration)
    levels = {i.key: {lv.value for lv in i.levels} for i in s.items}
    stimulus_ids = {st.id for st in s.stimuli}
    with_reason: list[dict[str, Any]] = []
    without: list[dict[str, Any]] = []
    now = utcnow()
    # One row per key (the last one sent wins): an upsert may not touch a row twice.
    latest = {(st, key): (st, key, v, why) for st, key, v, why in ratings}
    for stimulus_id, item_key, value, reason in latest.values():
        if stimulus_id not in stimulus_ids or item_key not in levels:
            raise Invalid(f"Unknown stimulus {stimulus_id} or item '{item_key}' in this session.")
        if value not in levels[item_key]:
            raise Invalid(f"{value} is not a level of '{item_key}'.")
        row = {
            "session_id": calibration.id,
            "round": calibration.current_round,
            "rater_id": rater.id,
            "stimulus_id": stimulus_id,
            "item_key": item_key,
            "value": value,
            "updated_at": now,
        }
        if reason is None:
            without.append(row)
        else:
            with_reason.append({**row, "reason": " ".join(reason.split())[:200]})
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for rows in (with_reason, without):
        if not rows:
            continue
        stmt = insert(Rating).values(rows)
        changes = {"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}
        if rows is with_reason:
            changes["reason"] = stmt.excluded.reason
        stmt = stmt.on_conflict_do_update(
            index_elements=["rater_id", "round", "stimulus_id", "item_key"], set_=changes
        )
        session.execute(stmt)
    return len(with_reason) + len(without)


def own_ratings(
    *, session: Session, calibration: CalibrationSession, rater: Rater
) -> dict[tuple[int, str], tuple[int, str]]:
    """A rater's own levels and reasons in the current round (all anyone sees before reveal)."""
    rows = session.exec(
        select(Rating).where(Rating.rater_id == rater.id, Rating.round == calibration.current_round)
    )
    return {(r.stimulus_id, r.item_key): (r.value, r.reason) for r in rows}


def mark_done(*, session: Session, calibration: CalibrationSession, rater: Rater) -> None:
    """The rater is done with this round: their ratings are final."""
    rater.done_round = calibration.current_round
    session.add(rater)
    session.flush()


def progress(*, session: Session, calibration: CalibrationSession) -> list[dict[str, Any]]:
    """For the live board: who joined, their ratings in per excerpt, the excerpt they rated
    last (where they are), and who is done. One aggregate query however large the room."""
    s = setup(session=session, calibration=calibration)
    rows = session.execute(
        sa_select(
            col(Rating.rater_id),
            col(Rating.stimulus_id),
            func.count(),
            func.max(col(Rating.updated_at)),
        )
        .where(
            col(Rating.session_id) == calibration.id,
            col(Rating.round) == calibration.current_round,
        )
        .group_by(col(Rating.rater_id), col(Rating.stimulus_id))
    ).all()
    per: dict[int, dict[int, int]] = {}
    latest: dict[int, tuple[Any, int]] = {}
    for rater_id, stimulus_id, count, at in rows:
        per.setdefault(rater_id, {})[stimulus_id] = count
        if rater_id not in latest or at > latest[rater_id][0]:
            latest[rater_id] = (at, stimulus_id)
    titles = {st.id: st.title for st in s.stimuli}
    per_excerpt = len(s.items)
    board = []
    for r in raters_of(session=session, calibration=calibration):
        counts = per.get(r.id or 0, {})
        board.append(
            {
                "rater": r,
                "ratings": sum(counts.values()),
                "expected": per_excerpt * len(s.stimuli),
                "excerpts": [
                    (st.title, counts.get(st.id or 0, 0), per_excerpt) for st in s.stimuli
                ],
                "on": titles.get(latest[r.id][1]) if r.id in latest else None,
                "done": r.done_round >= calibration.current_round,
            }
        )
    return board


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
        if calibration.revealed_round == calibration.current_round:
            # Everyone has seen the master scores: those who rated keep their ratings as they
            # were (they are what certification counts); only someone new may still rate.
            session.execute(
                update(Rater)
                .where(
                    col(Rater.session_id) == calibration.id,
                    col(Rater.id).in_(
                        sa_select(col(Rating.rater_id)).where(
                            col(Rating.session_id) == calibration.id,
                            col(Rating.round) == calibration.current_round,
                        )
                    ),
                )
                .values(done_round=calibration.current_round)
                .execution_options(synchronize_session="fetch")
            )
        calibration.status = SessionStatus.open
    elif action == "reveal":
        calibration.status = SessionStatus.revealed
        if calibration.revealed_round != calibration.current_round:
            calibration.revealed_round = calibration.current_round
            calibration.revealed_at = utcnow()
    elif action == "next_round":
        calibration.current_round += 1
        calibration.status = SessionStatus.open
    else:
        raise Invalid(f"Unknown action '{action}'.")
    session.add(calibration)
    _touch(session, calibration)


# --- the report, computed once per state of the session -----------------------------------
# At reveal a whole room opens the report at once. Its statistics (bootstrap intervals,
# every pair of raters) take a second or more, so they are computed once for each state of
# the session's data (a fingerprint of its ratings, raters, stimuli and master scores) with
# everyone anonymised, kept in this process, and relabelled per viewer. One request builds
# it while the others for the same session wait for it; a late rating or a new master score
# changes the fingerprint, and the next view builds it again. Each app server keeps its own.
_REPORT_CACHE_SIZE = 32
_Cached = tuple[str, dict[str, Any], dict[str, list[tuple[str | int, ...]]], dict[int, str]]
_reports: OrderedDict[tuple[int, int], _Cached] = OrderedDict()
_reports_guard = threading.Lock()
_build_locks: dict[tuple[int, int], threading.Lock] = {}


def _build_lock(key: tuple[int, int]) -> threading.Lock:
    with _reports_guard:
        return _build_locks.setdefault(key, threading.Lock())


def _fingerprint(session: Session, calibration: CalibrationSession) -> str:
    """What the report is computed from, as a hash: the session row (its `revision` counts
    every change to stimuli, master scores, items, raters and status) and the ratings as
    aggregates, one row however large the room: a new or changed rating (level or reason)
    moves the count, the sums or the latest update time. One query, none once revealed:
    ratings cannot change while the report is revealed (rate() refuses under the row's
    lock), so the session row alone says whether the report is the one cached — and the
    room of raters opening it at reveal costs no scan of its ratings."""
    if calibration.status == SessionStatus.revealed:
        return _fingerprint_of(calibration, ("revealed",))
    rid = cast(col(Rating.id), BigInteger)  # products of ids outgrow PostgreSQL's integer
    value = cast(col(Rating.value), BigInteger)
    length = cast(func.length(col(Rating.reason)), BigInteger)
    ratings = session.execute(
        sa_select(
            func.count(),
            func.coalesce(func.sum(value), 0),
            func.coalesce(func.sum(value * rid), 0),
            func.coalesce(func.sum(value * value * rid), 0),
            func.coalesce(func.sum(value * rid * rid), 0),
            func.coalesce(func.sum(cast(col(Rating.round), BigInteger) * rid), 0),
            func.coalesce(func.sum(length * rid), 0),
            func.coalesce(func.sum(length * value * rid), 0),
            func.max(col(Rating.id)),
            func.max(col(Rating.updated_at)),
        ).where(col(Rating.session_id) == calibration.id)
    ).one()
    return _fingerprint_of(calibration, tuple(ratings))


def _fingerprint_of(calibration: CalibrationSession, ratings: tuple[Any, ...]) -> str:
    state = (
        calibration.id,
        calibration.revision,  # every status change counts too: a second reveal differs
        calibration.current_round,
        calibration.status.value,
        calibration.rubric_version_id,
        list(calibration.item_keys),
        calibration.title,
        calibration.code,
        ratings,
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
    anonymous_only: bool = False,
) -> dict[str, Any]:
    """The agreement report of every round (the latest in full), as JSON-ready data: every
    rater by name for the facilitator (`names_visible`), otherwise "Rater n" but for the
    viewer. Computed once per state of the session (see above). `version` changes whenever
    the report would; `you` is the viewer's anonymous label and name. `anonymous_only`:
    everyone as "Rater n", the viewer too (the cached report itself, not to be changed), for
    a page that renders it once and points out the viewer's label itself."""
    fingerprint = _fingerprint(session, calibration) + f"|{resamples}|{bar}"
    key = (calibration.id or 0, resamples)
    with _build_lock(key):
        with _reports_guard:
            hit = _reports.get(key)
        if hit is not None and hit[0] == fingerprint:
            data, paths, anonymous = hit[1], hit[2], hit[3]
        else:
            s = setup(session=session, calibration=calibration)
            raters = raters_of(session=session, calibration=calibration)
            master = masters(session=session, calibration=calibration)
            anonymous = {r.id or 0: f"Rater {n}" for n, r in enumerate(raters, start=1)}
            names: dict[int | None, str] = dict(anonymous)  # type: ignore[arg-type]
            data = _build_report(session, calibration, s, raters, master, names, resamples, bar)
            paths = _label_paths(data, set(anonymous.values()))
            with _reports_guard:
                _reports[key] = (fingerprint, data, paths, anonymous)
                _reports.move_to_end(key)
                while len(_reports) > _REPORT_CACHE_SIZE:
                    gone, _entry = _reports.popitem(last=False)
                    _build_locks.pop(gone, None)
    shown: dict[str, str] = {}
    if names_visible and not anonymous_only:
        shown = {
            anonymous[r.id or 0]: r.display_name
            for r in raters_of(session=session, calibration=calibration)
            if r.id in anonymous
        }
    viewer = session.get(Rater, viewer_rater_id) if viewer_rater_id in anonymous else None
    if viewer is not None and not anonymous_only:
        shown[anonymous[viewer.id or 0]] = viewer.display_name
    result: dict[str, Any] = _relabel(data, paths, shown) if shown else dict(data)
    result["version"] = fingerprint[:16]
    if names_visible and not anonymous_only:
        # Names may repeat (two guests called Maria); the labels never do.
        result["labels"] = [anonymous[rid] for rid in sorted(anonymous)]
        result["label_names"] = shown
    if viewer is not None and not names_visible:
        result["you"] = {"label": anonymous[viewer.id or 0], "name": viewer.display_name}
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
    ratings: dict[tuple[Any, Any, str], int] = {}
    reasons: dict[tuple[Any, Any, str], str] = {}
    for rt in session.exec(
        select(Rating).where(Rating.session_id == calibration.id, Rating.round == rnd)
    ):
        ratings[(rt.rater_id, rt.stimulus_id, rt.item_key)] = rt.value
        if rt.reason:
            reasons[(rt.rater_id, rt.stimulus_id, rt.item_key)] = rt.reason
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
                "by_stimulus": {},
                "reasons": [],
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
        # Each excerpt's levels apart, with its master level: what the room discusses.
        by_stimulus = {}
        for st in s.stimuli:
            counts = {lv.value: 0 for lv in item.levels}
            for r in active:
                v = ratings.get((r.id, st.id, item.key))
                if v is not None:
                    counts[v] += 1
            m = by_unit.get((st.id, item.key))
            by_stimulus[st.id] = {"counts": counts, "master": m.value if m else None}
        result["items"][item.key] = {
            "title": item.title,
            "exact_agreement": item_report["exact_agreement"],
            "within_one_agreement": item_report["within_one_agreement"],
            "distribution": distribution,
            "by_stimulus": by_stimulus,
            "reasons": [
                {
                    "rater": names[r.id],
                    "stimulus_id": st.id,
                    "value": ratings[(r.id, st.id, item.key)],
                    "reason": reasons[(r.id, st.id, item.key)],
                }
                for st in s.stimuli
                for r in active
                if (r.id, st.id, item.key) in reasons
            ],
            "levels": [(lv.value, lv.label) for lv in item.levels],
        }
    # The rater x item grid: every rater's level on every excerpt x item, master on top.
    result["units"] = [
        {"stimulus_id": st.id, "item_key": item.key, "master": mv}
        for (st, item), mv in zip(units, master_row, strict=True)
    ]
    result["grid"] = [
        {"rater": names[r.id], "values": row} for r, row in zip(active, matrix, strict=True)
    ]
    result["ranked"] = sorted(
        result["items"],
        key=lambda k: (
            result["items"][k]["exact_agreement"] is None,
            result["items"][k]["exact_agreement"] or 0,
        ),
    )
    return result


# --- certification: each observer's agreement with master, session by session ------------


@dataclass(frozen=True)
class CertificationRule:
    """The district's rule (settings): an observer is certified on a rubric when, in each of
    their latest `in_a_row` revealed sessions on it, their ratings agreed with the master
    scores at least `within_one` within one level and `exact` exactly; it lasts `valid_days`
    from the last of those sessions. A later session below the bar ends it."""

    exact: float = 0.6
    within_one: float = 0.8
    in_a_row: int = 1
    valid_days: int = 365

    @classmethod
    def from_settings(cls, settings: Any) -> "CertificationRule":
        """The rule set by the district (WALKTHROUGH_CALIBRATED_WITHIN_ONE and
        WALKTHROUGH_CERTIFICATION_*)."""
        return cls(
            exact=settings.certification_exact,
            within_one=settings.calibrated_within_one,
            in_a_row=settings.certification_sessions_in_a_row,
            valid_days=settings.certification_valid_days,
        )

    def describe(self) -> str:
        sessions = (
            "the latest session"
            if self.in_a_row == 1
            else f"each of the latest {self.in_a_row} sessions in a row"
        )
        return (
            f"at least {self.within_one:.0%} of ratings within one level of master and "
            f"{self.exact:.0%} exactly on it, in {sessions} on the rubric; valid "
            f"{self.valid_days} days from that session"
        )


def rubric_choices(*, session: Session) -> list[tuple[str, str]]:
    """Every rubric (slug, title of its latest version), by title: what certification is
    filtered by."""
    latest: dict[str, tuple[int, str]] = {}
    for slug, version, title in session.execute(
        sa_select(col(RubricVersion.slug), col(RubricVersion.version), col(RubricVersion.title))
    ):
        if slug not in latest or version > latest[slug][0]:
            latest[slug] = (version, title)
    return sorted(((slug, t) for slug, (_v, t) in latest.items()), key=lambda x: x[1].lower())


def session_results(
    *, session: Session, user_id: int | None = None, rubric_slug: str | None = None
) -> list[dict[str, Any]]:
    """Each signed-in rater's agreement with master in each revealed session (its latest
    revealed round, even while a later round is being rated), oldest first. Aggregated in
    SQL: one row per session x rater x item x (level, master level) with its count, however
    many ratings."""
    stmt = (
        sa_select(
            col(Rating.session_id),
            col(Rater.user_id),
            col(Rating.item_key),
            col(Rating.value),
            col(MasterScore.value),
            func.count(),
        )
        .select_from(Rating)
        .join(Rater, col(Rater.id) == col(Rating.rater_id))
        .join(CalibrationSession, col(CalibrationSession.id) == col(Rating.session_id))
        .join(
            MasterScore,
            (col(MasterScore.stimulus_id) == col(Rating.stimulus_id))
            & (col(MasterScore.item_key) == col(Rating.item_key)),
        )
        .where(
            col(Rater.user_id).is_not(None),
            col(CalibrationSession.revealed_round).is_not(None),
            col(Rating.round) == col(CalibrationSession.revealed_round),
        )
        .group_by(
            col(Rating.session_id),
            col(Rater.user_id),
            col(Rating.item_key),
            col(Rating.value),
            col(MasterScore.value),
        )
    )
    if user_id is not None:
        stmt = stmt.where(col(Rater.user_id) == user_id)
    if rubric_slug is not None:
        stmt = stmt.join(
            RubricVersion, col(RubricVersion.id) == col(CalibrationSession.rubric_version_id)
        ).where(col(RubricVersion.slug) == rubric_slug)
    grouped: dict[tuple[int, int], list[tuple[str, int, int, int]]] = {}
    for session_id, uid, item_key, value, master_value, count in session.execute(stmt):
        grouped.setdefault((session_id, uid), []).append((item_key, value, master_value, count))
    calibrations = {
        c.id: c
        for c in session.exec(
            select(CalibrationSession).where(
                col(CalibrationSession.id).in_({k[0] for k in grouped} or {-1})
            )
        )
    }
    rubrics = {
        r.id: r
        for r in session.exec(
            select(RubricVersion).where(
                col(RubricVersion.id).in_({c.rubric_version_id for c in calibrations.values()})
            )
        )
    }
    positions: dict[int, dict[str, dict[int, int]]] = {}
    for rubric in rubrics.values():
        definition = RubricDefinition.model_validate(rubric.content)
        positions[rubric.id or 0] = {
            i.key: {lv.value: n for n, lv in enumerate(i.levels)} for i in scale_items(definition)
        }
    results: list[dict[str, Any]] = []
    for (session_id, uid), rows in grouped.items():
        calibration = calibrations[session_id]
        rubric = rubrics[calibration.rubric_version_id]
        where = positions[calibration.rubric_version_id]
        n = exact = within = 0
        pairs: list[tuple[int, int]] = []
        for item_key, value, master_value, count in rows:
            levels = where.get(item_key, {})
            if value not in levels or master_value not in levels:
                continue
            gap = abs(levels[value] - levels[master_value])
            n += count
            exact += count if gap == 0 else 0
            within += count if gap <= 1 else 0
            pairs.extend([(value, master_value)] * count)
        if not n:
            continue
        scales = {tuple(where[key]) for key, *_rest in rows if key in where}
        kappa = None
        if len(scales) == 1 and len(pairs) >= 2:
            kappa = agreement.cohen_kappa(
                [p[0] for p in pairs], [p[1] for p in pairs], list(next(iter(scales))), "quadratic"
            ).value
        results.append(
            {
                "session": calibration,
                "user_id": uid,
                "rubric": rubric.slug,
                "rubric_title": rubric.title,
                "on": calibration.revealed_at or calibration.created_at,
                "n": n,
                "exact": exact / n,
                "within_one": within / n,
                "kappa": kappa,
            }
        )
    results.sort(key=lambda r: (r["on"], r["session"].id))
    return results


def certification(
    *,
    session: Session,
    rule: CertificationRule,
    now: datetime,
    user_id: int | None = None,
    rubric_slug: str | None = None,
) -> list[dict[str, Any]]:
    """Each observer's status on each rubric they calibrated on: `certified` (until
    `expires`), `expired`, or `not_certified` (with the reason), and their sessions, oldest
    first. Sorted by rubric, then observer name."""
    by_key: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in session_results(session=session, user_id=user_id, rubric_slug=rubric_slug):
        by_key.setdefault((r["user_id"], r["rubric"]), []).append(r)
    users = {
        u.id: u
        for u in session.exec(select(User).where(col(User.id).in_({k[0] for k in by_key} or {-1})))
    }
    out = []
    for (uid, slug), rows in by_key.items():
        for r in rows:
            r["meets"] = r["exact"] >= rule.exact and r["within_one"] >= rule.within_one
        latest = rows[-rule.in_a_row :]
        certified_on = expires = None
        if len(rows) < rule.in_a_row:
            status = "not_certified"
            why = f"{len(rows)} of the {rule.in_a_row} sessions in a row the rule asks for"
        elif all(r["meets"] for r in latest):
            certified_on = latest[-1]["on"]
            expires = certified_on + timedelta(days=rule.valid_days)
            status = "certified" if now < expires else "expired"
            why = ""
        else:
            last = rows[-1]
            status = "not_certified"
            why = (
                f"latest session: {last['within_one']:.0%} within one level, "
                f"{last['exact']:.0%} exact"
                if not last["meets"]
                else "an earlier session of the run was below the bar"
            )
        out.append(
            {
                "user": users[uid],
                "rubric": slug,
                "rubric_title": rows[-1]["rubric_title"],
                "sessions": rows,
                "latest": rows[-1],
                "status": status,
                "why": why,
                "certified_on": certified_on,
                "expires": expires,
            }
        )
    out.sort(key=lambda c: (c["rubric"], c["user"].name.lower()))
    return out
