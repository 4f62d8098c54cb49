"""Rubric versions: reading them (drafts visible to admins only), and the one way to make,
change, publish and retire them in the app, each step in the audit (rubric_event)."""

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.accounts.models import Role, User
from app.db import next_seq, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.rubrics.loader import (
    Crosswalk,
    CrosswalkItem,
    RubricDefinition,
    RubricError,
    validate_text,
)
from app.rubrics.models import RubricAction, RubricEvent, RubricStatus, RubricVersion


def _visible(user: User) -> set[RubricStatus]:
    if user.role in (Role.admin, Role.facilitator):  # those who draft see drafts
        return set(RubricStatus)
    return {RubricStatus.published, RubricStatus.retired}


def list_versions(*, session: Session, user: User) -> list[RubricVersion]:
    """Every version this user may see, by slug then version."""
    stmt = (
        select(RubricVersion)
        .where(col(RubricVersion.status).in_(_visible(user)))
        .order_by(col(RubricVersion.slug), col(RubricVersion.version))
    )
    return list(session.exec(stmt))


def get_version(*, session: Session, user: User, slug: str, version: int) -> RubricVersion:
    """One version, or NotFound (also for drafts a non-admin may not see)."""
    row = session.exec(
        select(RubricVersion).where(RubricVersion.slug == slug, RubricVersion.version == version)
    ).first()
    if row is None or row.status not in _visible(user):
        raise NotFound(f"There is no rubric '{slug}' version {version}.")
    return row


_definitions: dict[str, RubricDefinition] = {}


def definition(row: RubricVersion) -> RubricDefinition:
    """The stored content as a validated definition; parsed once per content hash (the hash
    covers the content, so an edited draft is parsed again). Treat the result as read-only."""
    cached = _definitions.get(row.content_hash)
    if cached is None:
        cached = RubricDefinition.model_validate(row.content)
        if len(_definitions) > 500:
            _definitions.clear()
        _definitions[row.content_hash] = cached
    return cached


def offered_versions(*, session: Session) -> list[RubricVersion]:
    """Published versions, the ones offered for new observations and sessions."""
    stmt = (
        select(RubricVersion)
        .where(RubricVersion.status == RubricStatus.published)
        .order_by(col(RubricVersion.slug), col(RubricVersion.version))
    )
    return list(session.exec(stmt))


def earlier_versions(*, session: Session, row: RubricVersion) -> dict[int, RubricVersion]:
    """The published and retired versions of the same rubric before this one, by number:
    what its crosswalk can join."""
    rows = session.exec(
        select(RubricVersion).where(
            RubricVersion.slug == row.slug,
            RubricVersion.version < row.version,
            RubricVersion.status != RubricStatus.draft,
        )
    )
    return {r.version: r for r in rows}


# --- making and changing versions in the app --------------------------------------------------


def parse(raw: str, *, source: str, session: Session | None = None) -> RubricDefinition:
    """A rubric in the YAML format (JSON is YAML too), checked by the same validator as the
    shipped files; every problem names its field and line (Invalid, with `details`). With a
    session, a crosswalk is checked against the version it bridges from."""

    def earlier(slug: str, version: int) -> RubricDefinition | None:
        assert session is not None
        row = session.exec(
            select(RubricVersion).where(
                RubricVersion.slug == slug,
                RubricVersion.version == version,
                RubricVersion.status != RubricStatus.draft,
            )
        ).first()
        return definition(row) if row is not None else None

    parsed, errors = validate_text(
        raw, display=source, previous=earlier if session is not None else None
    )
    if parsed is None:
        raise Invalid(
            f"The rubric has {len(errors)} problem(s): " + "; ".join(str(e) for e in errors[:5]),
            details=[_detail(e) for e in errors],
        )
    return parsed


def _detail(error: RubricError) -> dict[str, Any]:
    return {
        "field": error.field,
        "line": error.line,
        "column": error.column,
        "message": error.message,
    }


def _record(session: Session, row: RubricVersion, action: RubricAction, user: User) -> None:
    assert row.id is not None
    session.add(RubricEvent(rubric_version_id=row.id, action=action, user_id=user.id))


def _next_version(session: Session, slug: str) -> int:
    latest = session.exec(
        select(func.max(RubricVersion.version)).where(RubricVersion.slug == slug)
    ).one()
    return int(latest or 0) + 1


def rubric_exists(*, session: Session, slug: str) -> bool:
    """Whether any version of this rubric exists (a draft too)."""
    return (
        session.exec(select(RubricVersion.id).where(RubricVersion.slug == slug)).first() is not None
    )


def _open_draft(session: Session, slug: str) -> RubricVersion | None:
    return session.exec(
        select(RubricVersion).where(
            RubricVersion.slug == slug, RubricVersion.status == RubricStatus.draft
        )
    ).first()


def _as_draft(d: RubricDefinition, *, version: int) -> dict[str, Any]:
    return d.model_copy(update={"status": RubricStatus.draft, "version": version}).model_dump(
        mode="json"
    )


def create_draft(*, session: Session, user: User, definition: RubricDefinition) -> RubricVersion:
    """A new draft version: of a new rubric, or the next version of an existing one. The
    version is always the next for its slug (the content's own is replaced), one draft at a
    time per rubric."""
    if definition.status != RubricStatus.draft:
        raise Invalid(
            "A version made in the app starts as a draft: set status: draft, then publish it.",
            details=[{"field": "status", "line": None, "column": None, "message": "must be draft"}],
        )
    existing = _open_draft(session, definition.slug)
    if existing is not None:
        raise Conflict(
            f"'{definition.slug}' already has a draft, version {existing.version}: change that "
            "draft, or publish it before starting another."
        )
    version = _next_version(session, definition.slug)
    content = _as_draft(definition, version=version)
    checked = RubricDefinition.model_validate(content)
    row = RubricVersion(
        slug=checked.slug,
        version=version,
        title=checked.title,
        status=RubricStatus.draft,
        content_hash=checked.content_hash(),
        content=content,
    )
    return _saved(session, row, RubricAction.created, user)


def new_version(*, session: Session, user: User, slug: str, version: int) -> RubricVersion:
    """A draft copy of a published (or retired) version, as the next version."""
    source = get_version(session=session, user=user, slug=slug, version=version)
    if source.status == RubricStatus.draft:
        raise Conflict(f"{slug} v{version} is itself a draft: change it, or publish it first.")
    copied = definition(source)
    # Every item starts as continuing its namesake: the draft's author marks what changes.
    crosswalk = Crosswalk(
        from_version=source.version,
        items=[CrosswalkItem(key=item.key, status="continues") for _s, item in copied.items()],
    )
    return create_draft(
        session=session,
        user=user,
        definition=copied.model_copy(update={"status": RubricStatus.draft, "crosswalk": crosswalk}),
    )


def draft_of(*, session: Session, user: User, slug: str, version: int) -> RubricVersion:
    """A draft version, or Conflict saying why a published or retired one cannot change."""
    return _draft(session, user, slug, version)


def _draft(session: Session, user: User, slug: str, version: int) -> RubricVersion:
    row = get_version(session=session, user=user, slug=slug, version=version)
    if row.status != RubricStatus.draft:
        raise Conflict(
            f"{slug} v{version} is {row.status.value}: a published version never changes, so "
            "every observation that used it stays readable. Make a new version from it instead "
            f"(POST /api/rubrics/{slug}/versions/{version}/new-version)."
        )
    return row


def replace_draft(
    *, session: Session, user: User, slug: str, version: int, definition: RubricDefinition
) -> RubricVersion:
    """The draft's whole content, replaced (its slug and version stay those of its address)."""
    row = _draft(session, user, slug, version)
    if definition.slug != slug or definition.version != version:
        raise Invalid(
            f"This draft is {slug} v{version}; the content says {definition.slug} "
            f"v{definition.version}.",
            details=[
                {
                    "field": "slug" if definition.slug != slug else "version",
                    "line": None,
                    "column": None,
                    "message": f"must be {slug} v{version}",
                }
            ],
        )
    content = _as_draft(definition, version=version)
    row.content = content
    row.title = definition.title
    row.content_hash = definition.content_hash()
    return _saved(session, row, RubricAction.changed, user)


def publish(*, session: Session, user: User, slug: str, version: int) -> RubricVersion:
    """The draft becomes published: offered for new observations, and immutable for good.
    (Its content hash stays: the status is not content.)"""
    row = _draft(session, user, slug, version)
    _set_status(row, RubricStatus.published)
    row.published_at = utcnow()
    return _saved(session, row, RubricAction.published, user)


def retire(*, session: Session, user: User, slug: str, version: int) -> RubricVersion:
    """A published version is no longer offered for new work; everything that used it stays."""
    row = get_version(session=session, user=user, slug=slug, version=version)
    if row.status != RubricStatus.published:
        raise Conflict(
            f"{slug} v{version} is {row.status.value}; only a published version retires."
        )
    _set_status(row, RubricStatus.retired)
    row.retired_at = utcnow()
    return _saved(session, row, RubricAction.retired, user)


def _set_status(row: RubricVersion, status: RubricStatus) -> None:
    row.status = status
    row.content = {**row.content, "status": status.value}


def _saved(session: Session, row: RubricVersion, action: RubricAction, user: User) -> RubricVersion:
    """The row with its next change number, written, and the step in the audit."""
    row.change_seq = next_seq(session)
    session.add(row)
    session.flush()
    _record(session, row, action, user)
    return row


def history(*, session: Session, row: RubricVersion) -> list[tuple[RubricEvent, User | None]]:
    """The audit of one version, oldest first, with who did each step."""
    stmt = (
        select(RubricEvent, User)
        .join(User, col(User.id) == col(RubricEvent.user_id), isouter=True)
        .where(RubricEvent.rubric_version_id == row.id)
        .order_by(col(RubricEvent.id))
    )
    return [(event, user) for event, user in session.exec(stmt)]
