"""Sharing an observation's feedback with its teacher: the share and its secret link, what the
teacher sees, the teacher's reflection, acknowledgement and replies, and the loop's state."""

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.accounts.models import Role, Teacher, User
from app.accounts.service import valid_email_address
from app.db import utcnow
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.feedback.models import (
    FeedbackEvent,
    FeedbackEventKind,
    FeedbackShare,
    FeedbackState,
    MailMessage,
)
from app.observations.models import Observation, ObservationStatus
from app.rubrics.loader import (
    CheckItem,
    CountItem,
    ParticipationItem,
    RubricDefinition,
    ScaleItem,
    TextItem,
)

MAX_TEXT = 4000


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def feedback_items(definition: RubricDefinition) -> list[TextItem | ParticipationItem]:
    """The items that can be shared as feedback: the written ones (a strength, a next step),
    and participation maps (a picture of who talked; numbered markers, never names)."""
    return [
        item for _s, item in definition.items() if isinstance(item, (TextItem, ParticipationItem))
    ]


def offered_by_default(item: TextItem | ParticipationItem) -> bool:
    """Checked on the share form: feedback marked for the teacher, and every map."""
    return item.share_with_teacher or isinstance(item, ParticipationItem)


def may_share(user: User, obs: Observation) -> bool:
    """The observer who recorded it shares its feedback; an admin may too."""
    return obs.observer_id == user.id or user.role == Role.admin


def create_share(
    *,
    session: Session,
    user: User,
    obs: Observation,
    definition: RubricDefinition,
    items: list[str],
    include_notes: bool,
    include_scores: bool,
    email: str | None,
    days: int,
    link_base: str,
    seal: Callable[[str], str],
) -> tuple[FeedbackShare, str]:
    """A new link for the teacher (the earlier one stops working), and its e-mail queued when
    an address is given. Returns the share and the token, which is never stored."""
    if not may_share(user, obs):
        raise Forbidden("Only the observer who recorded this observation shares its feedback.")
    if obs.deleted_at is not None:
        raise Conflict("This observation was deleted; restore it before sharing.")
    if obs.status != ObservationStatus.submitted:
        raise Conflict("Submit the observation before sharing its feedback with the teacher.")
    allowed = {item.key for item in feedback_items(definition)}
    unknown = [k for k in items if k not in allowed]
    if unknown:
        raise Invalid(f"These are not written feedback items of this rubric: {', '.join(unknown)}.")
    if email is not None:
        typed = email.strip()
        email = valid_email_address(typed) if typed else None
        if typed and email is None:
            raise Invalid(f"'{typed[:80]}' is not one e-mail address (like name@school.org).")
    now = utcnow()
    # One live link per observation: two shares at once take turns on the observation's row.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Observation.id).where(Observation.id == obs.id).with_for_update())
    for earlier in _active(session, obs.id):
        earlier.revoked_at = now
        session.add(earlier)
        _event(
            session, earlier, FeedbackEventKind.revoked, user=user, body="replaced by a new link"
        )
        _stop_mail(session, earlier)
    token = secrets.token_urlsafe(32)
    share = FeedbackShare(
        observation_id=obs.id,
        created_by_id=user.id or 0,
        created_at=now,
        token_hash=token_hash(token),
        expires_at=now + timedelta(days=days),
        items=[k for k in dict.fromkeys(items)],
        include_notes=include_notes,
        include_scores=include_scores,
        email=email,
    )
    session.add(share)
    session.flush()
    _event(session, share, FeedbackEventKind.shared, user=user)
    if email is not None:
        session.add(
            MailMessage(
                share_id=share.id,
                to_address=email,
                subject=f"Feedback from your walk-through on {obs.observed_at:%-d %B %Y}",
                # The link goes in at sending time ({link}): kept sealed until then.
                body=(
                    f"Hello {_one_line(obs.teacher_name)},\n\n{_one_line(user.name)} shared "
                    "feedback from a visit to your classroom. Read it, reflect and reply here "
                    f"(no sign-in needed; the link works until {share.expires_at:%-d %B %Y}):"
                    "\n\n{link}\n\nThis link is for you alone: please do not forward it.\n"
                ),
                sealed_link=seal(f"{link_base}/f/{token}"),
                headers={"Message-ID": f"<feedback-{uuid.uuid4().hex}@walkthrough>"},
            )
        )
    return share, token


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _stop_mail(session: Session, share: FeedbackShare) -> None:
    """Mail not yet sent for a link that stops working is not sent: it is given up, wiped."""
    session.execute(
        update(MailMessage)
        .where(
            col(MailMessage.share_id) == share.id,
            col(MailMessage.sent_at).is_(None),
            col(MailMessage.gave_up_at).is_(None),
        )
        .values(gave_up_at=utcnow(), sealed_link=None, last_error="the link was withdrawn")
    )


def _active(session: Session, obs_id: uuid.UUID) -> list[FeedbackShare]:
    return list(
        session.exec(
            select(FeedbackShare).where(
                FeedbackShare.observation_id == obs_id, col(FeedbackShare.revoked_at).is_(None)
            )
        )
    )


def _event(
    session: Session,
    share: FeedbackShare,
    kind: FeedbackEventKind,
    *,
    user: User | None = None,
    body: str = "",
) -> None:
    session.add(
        FeedbackEvent(
            share_id=share.id or 0, kind=kind, user_id=user.id if user else None, body=body
        )
    )


def latest_share(session: Session, obs_id: uuid.UUID) -> FeedbackShare | None:
    """The observation's newest share (revoked or not)."""
    return session.exec(
        select(FeedbackShare)
        .where(FeedbackShare.observation_id == obs_id)
        .order_by(col(FeedbackShare.id).desc())
    ).first()


def state_of(share: FeedbackShare | None) -> FeedbackState:
    """Not shared, shared, opened, reflected or acknowledged (a revoked link is not shared)."""
    if share is None or share.revoked_at is not None:
        return FeedbackState.not_shared
    return share.state


def by_token(session: Session, token: str) -> FeedbackShare:
    """The share behind a link, or a clear reason it does not open (never which part failed
    for a token that does not exist)."""
    if not 20 <= len(token) <= 100:
        raise NotFound("This feedback link is not valid. Ask your observer for a new one.")
    share = session.exec(
        select(FeedbackShare).where(FeedbackShare.token_hash == token_hash(token))
    ).first()
    if share is None:
        raise NotFound("This feedback link is not valid. Ask your observer for a new one.")
    if share.revoked_at is not None:
        raise NotFound("This feedback link was withdrawn. Ask your observer for a new one.")
    if share.expires_at <= utcnow():
        raise NotFound("This feedback link has expired. Ask your observer for a new one.")
    obs = session.get(Observation, share.observation_id)
    if obs is None or obs.deleted_at is not None:
        raise NotFound("This feedback link was withdrawn. Ask your observer for a new one.")
    return share


def record_open(session: Session, share: FeedbackShare) -> None:
    """Every open of the link is logged (counted atomically: opens at once all count); the
    first one moves the loop to "opened"."""
    session.execute(
        update(FeedbackShare)
        .where(col(FeedbackShare.id) == share.id)
        .values(
            opens=col(FeedbackShare.opens) + 1,
            first_opened_at=func.coalesce(col(FeedbackShare.first_opened_at), utcnow()),
        )
    )
    _event(session, share, FeedbackEventKind.opened)


def _text(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise Invalid(f"Write your {what} first.")
    if len(text) > MAX_TEXT or "\x00" in text:
        raise Invalid(f"Your {what} is longer than {MAX_TEXT} characters; shorten it.")
    return text


def reflect(session: Session, share: FeedbackShare, reflection: str) -> None:
    """The teacher's reflection (it may be rewritten; each version is in the history)."""
    share.reflection = _text(reflection, "reflection")
    share.reflected_at = utcnow()
    session.add(share)
    _event(session, share, FeedbackEventKind.reflected, body=share.reflection)


def acknowledge(session: Session, share: FeedbackShare, name: str, comment: str) -> None:
    """The teacher acknowledges the feedback, signing with their name, with a comment or not."""
    signed = name.strip()
    if not signed:
        raise Invalid("Type your name to acknowledge.")
    if len(signed) > 200:
        raise Invalid("Your name is longer than 200 characters.")
    said = comment.strip()[:MAX_TEXT] if comment.strip() else ""
    # Once: two acknowledgements at once (or one racing a withdrawal) cannot both count.
    done = session.execute(
        update(FeedbackShare)
        .where(
            col(FeedbackShare.id) == share.id,
            col(FeedbackShare.acknowledged_at).is_(None),
            col(FeedbackShare.revoked_at).is_(None),
        )
        .values(acknowledged_name=signed, acknowledged_comment=said, acknowledged_at=utcnow())
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("This feedback was already acknowledged, or its link was withdrawn.")
    _event(session, share, FeedbackEventKind.acknowledged, body=said)


def reply(session: Session, share: FeedbackShare, body: str, user: User | None = None) -> None:
    """A message in the share's thread, from the teacher (user None) or the observer."""
    _event(session, share, FeedbackEventKind.replied, user=user, body=_text(body, "reply"))


def revoke(session: Session, user: User, obs: Observation) -> None:
    """The link stops working at once."""
    if not may_share(user, obs):
        raise Forbidden("Only the observer who recorded this observation manages its sharing.")
    if not _active(session, obs.id):
        raise Conflict("There is no active link to withdraw.")
    revoke_all(session, obs.id, user, "")


def revoke_all(session: Session, obs_id: uuid.UUID, user: User | None, why: str) -> None:
    """Every live link of the observation stops working (withdrawn, or it was deleted)."""
    for share in _active(session, obs_id):
        share.revoked_at = utcnow()
        session.add(share)
        _event(session, share, FeedbackEventKind.revoked, user=user, body=why)
        _stop_mail(session, share)


def events(session: Session, obs_id: uuid.UUID) -> list[tuple[FeedbackEvent, User | None]]:
    """Everything that happened to the observation's shares, oldest first."""
    stmt = (
        select(FeedbackEvent, User)
        .join(FeedbackShare, col(FeedbackShare.id) == col(FeedbackEvent.share_id))
        .join(User, col(User.id) == col(FeedbackEvent.user_id), isouter=True)
        .where(FeedbackShare.observation_id == obs_id)
        .order_by(col(FeedbackEvent.id))
    )
    return [(e, u) for e, u in session.exec(stmt)]


def thread(session: Session, share: FeedbackShare) -> list[tuple[FeedbackEvent, User | None]]:
    """The replies of one share, oldest first."""
    stmt = (
        select(FeedbackEvent, User)
        .join(User, col(User.id) == col(FeedbackEvent.user_id), isouter=True)
        .where(
            FeedbackEvent.share_id == share.id,
            FeedbackEvent.kind == FeedbackEventKind.replied,
        )
        .order_by(col(FeedbackEvent.id))
    )
    return [(e, u) for e, u in session.exec(stmt)]


def teacher_email(session: Session, obs: Observation) -> str:
    """The teacher's address from the roster, when there is one."""
    if obs.teacher_id is None:
        return ""
    teacher = session.get(Teacher, obs.teacher_id)
    return (teacher.email or "") if teacher is not None else ""


@dataclass
class SharedItem:
    title: str
    kind: str
    shown: str


def shared_view(
    obs: Observation, definition: RubricDefinition, share: FeedbackShare
) -> dict[str, Any]:
    """What the teacher sees: the chosen written feedback, the overall notes if chosen, and
    the levels, look-fors and tallies only when the share includes them. Evidence notes and
    anything not chosen never appear."""
    feedback: list[SharedItem] = []
    scores: list[SharedItem] = []
    maps: list[tuple[ParticipationItem, dict[str, Any]]] = []
    for _section, item in definition.items():
        value = (obs.values.get(item.key) or {}) if isinstance(obs.values, dict) else {}
        raw = value.get("value") if isinstance(value, dict) else None
        if isinstance(item, ParticipationItem):
            if item.key in share.items and isinstance(raw, dict):
                maps.append((item, {"value": raw}))  # the map alone: never evidence
            continue
        if isinstance(item, TextItem):
            if item.key in share.items and isinstance(raw, str) and raw.strip():
                feedback.append(SharedItem(item.title, "text", raw))
            continue
        if not share.include_scores:
            continue
        if isinstance(value, dict) and value.get("not_observed"):
            shown = "Not observed"
        elif isinstance(item, ScaleItem):
            label = next((lv.label for lv in item.levels if lv.value == raw), None)
            shown = f"{raw} · {label}" if label else "—"
        elif isinstance(item, CheckItem):
            shown = "Seen" if raw is True else ("Not seen" if raw is False else "—")
        elif isinstance(item, CountItem):
            shown = str(raw) if isinstance(raw, int) else "—"
        else:
            shown = "—"
        scores.append(SharedItem(item.title, item.kind, shown))
    return {
        "feedback": feedback,
        "scores": scores,
        "maps": maps,
        "notes": obs.overall_notes if share.include_notes else "",
    }


def unopened(
    session: Session, *, school_id: int | None, days: int, now: datetime | None = None
) -> list[tuple[FeedbackShare, Observation]]:
    """Shares still not opened `days` after they were made (a principal's start page)."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    stmt = (
        select(FeedbackShare, Observation)
        .join(Observation, col(Observation.id) == col(FeedbackShare.observation_id))
        .where(
            col(FeedbackShare.revoked_at).is_(None),
            col(FeedbackShare.first_opened_at).is_(None),
            col(FeedbackShare.reflected_at).is_(None),
            col(FeedbackShare.acknowledged_at).is_(None),
            col(FeedbackShare.created_at) <= cutoff,
            col(Observation.deleted_at).is_(None),
        )
        .order_by(col(FeedbackShare.created_at))
        .limit(50)
    )
    if school_id is not None:
        stmt = stmt.where(Observation.school_id == school_id)
    return [(s, o) for s, o in session.exec(stmt)]


def mail_of(session: Session, share: FeedbackShare) -> list[MailMessage]:
    """The e-mail of a share: waiting, sent, or given up (with the mail server's reason)."""
    return list(
        session.exec(
            select(MailMessage)
            .where(MailMessage.share_id == share.id)
            .order_by(col(MailMessage.id))
        )
    )


def state_condition(state: str, observation_id: Any) -> ColumnElement[bool]:
    """SQL: the observation (`observation_id`, a column) has its feedback at `state`, judged
    on its one live share as FeedbackShare.state judges it."""
    S = FeedbackShare
    live = sa_select(col(S.id)).where(
        col(S.observation_id) == observation_id, col(S.revoked_at).is_(None)
    )
    if state == FeedbackState.not_shared:
        return ~live.exists()
    steps = {
        FeedbackState.shared: [
            col(S.first_opened_at).is_(None),
            col(S.reflected_at).is_(None),
            col(S.acknowledged_at).is_(None),
        ],
        FeedbackState.opened: [
            col(S.first_opened_at).is_not(None),
            col(S.reflected_at).is_(None),
            col(S.acknowledged_at).is_(None),
        ],
        FeedbackState.reflected: [
            col(S.reflected_at).is_not(None),
            col(S.acknowledged_at).is_(None),
        ],
        FeedbackState.acknowledged: [col(S.acknowledged_at).is_not(None)],
    }
    return live.where(*steps[FeedbackState(state)]).exists()
