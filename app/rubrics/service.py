"""Reading rubric versions, with drafts visible to admins only."""

from sqlmodel import Session, col, select

from app.accounts.models import Role, User
from app.errors import NotFound
from app.rubrics.loader import RubricDefinition
from app.rubrics.models import RubricStatus, RubricVersion


def _visible(user: User) -> set[RubricStatus]:
    if user.role == Role.admin:
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
