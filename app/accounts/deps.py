"""The request dependencies every route uses: who is signed in (cookie session or personal
token), role checks, sign-in and sign-out, and the app-wide CSRF check."""

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete
from sqlmodel import Session, col

from app.accounts import service as accounts
from app.accounts.models import Role, User, UserSession
from app.db import WRITE_METHODS, ReadSessionDep, SessionDep, utcnow, write_turn_if_free
from app.errors import Forbidden, NotAuthenticated
from app.security import CSRF_EXEMPT_PATHS, CSRF_FIELD, CSRF_HEADER, UNSAFE_METHODS, session_key
from app.web import MAX_FORM_FIELDS, csrf_token


def start_session(request: Request, session: Session, user: User) -> None:
    """Sign the user in: a fresh session (new CSRF token) bound to the user's auth stamp and
    recorded on the server; sign-ins older than the session lifetime are forgotten."""
    assert user.id is not None
    max_age = request.app.state.settings.session_max_age_seconds
    session.exec(
        delete(UserSession).where(
            col(UserSession.created_at) < utcnow() - timedelta(seconds=max_age)
        )
    )
    sid = secrets.token_urlsafe(32)
    session.add(UserSession(id=session_key(sid), user_id=user.id))
    session.flush()
    request.session.clear()
    request.session.update({"uid": user.id, "stamp": user.auth_stamp, "sid": sid})
    csrf_token(request)


def end_session(request: Request, session: Session) -> None:
    """Sign out of this browser: the server forgets the session, so a copy of the cookie
    no longer signs anyone in."""
    sid = request.session.get("sid")
    if isinstance(sid, str):
        session.exec(delete(UserSession).where(col(UserSession.id) == session_key(sid)))
    request.session.clear()


async def verify_csrf(request: Request) -> None:
    """App-wide dependency: every state-changing request must carry the session's CSRF token.

    The token comes in the X-CSRF-Token header (htmx, fetch) or the csrf_token form field.
    Requests authenticated by a bearer token carry no cookie and need none.
    """
    if request.method not in UNSAFE_METHODS or request.url.path in CSRF_EXEMPT_PATHS:
        return
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        if await run_in_threadpool(_live_token, request, authorization[7:].strip()):
            return
        if "uid" not in request.session:  # a script whose token is no longer valid
            raise NotAuthenticated(
                "This API token is not valid: it was revoked or mistyped. Create a new one at "
                "/account/tokens."
            )
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form(max_fields=MAX_FORM_FIELDS)
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise Forbidden(
            "This form has expired or did not come from Walkthrough. Reload the page and try again."
        )


def _live_token(request: Request, raw: str) -> bool:
    """A bearer token skips the CSRF check only when it is a live token: an invalid one
    must not switch the check off for a request that also carries a session cookie."""
    with Session(request.app.state.engine) as session:
        return accounts.authenticate_token(session=session, raw=raw) is not None


def _load_user(request: Request, session: Session) -> User | None:
    uid, sid = request.session.get("uid"), request.session.get("sid")
    if not isinstance(uid, int) or not isinstance(sid, str):
        return None
    user = session.get(User, uid)
    signed_in = session.get(UserSession, session_key(sid))
    if (
        user is None
        or not user.active
        or user.auth_stamp != request.session.get("stamp")
        or signed_in is None
        or signed_in.user_id != uid
    ):
        for key in ("uid", "stamp", "sid"):
            request.session.pop(key, None)
        return None
    return user


@dataclass(frozen=True)
class Viewer:
    """What pages show of the signed-in user; a plain copy that outlives the DB session."""

    id: int
    name: str
    role: Role
    school_id: int | None


def _identify(request: Request, session: Session, holds_write_turn: bool) -> User | None:
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        found = accounts.authenticate_token(session=session, raw=authorization[7:].strip())
        user = found[0] if found else None
        if found and found[1].id is not None and accounts.token_use_due(found[1]):
            if holds_write_turn:
                accounts.record_token_use(session=session, token_id=found[1].id)
            else:
                # Best effort: a read never waits for the write turn just to note the time
                # (the next use within a minute tries again).
                with write_turn_if_free(request.app.state.engine) as writer:
                    if writer is not None:
                        accounts.record_token_use(session=writer, token_id=found[1].id)
    else:
        user = _load_user(request, session)
    if user is not None and user.id is not None:
        request.state.user = Viewer(user.id, user.name, user.role, user.school_id)
    return user


def optional_user(request: Request, session: SessionDep) -> User | None:
    """The signed-in user (session cookie, or a personal token as `Authorization: Bearer`)."""
    return _identify(request, session, holds_write_turn=request.method in WRITE_METHODS)


def reading_user(request: Request, session: ReadSessionDep) -> User:
    """The signed-in user, read without waiting for the write turn (for routes that queue
    their writes with run_write, like the sync push)."""
    user = _identify(request, session, holds_write_turn=False)
    # Give the connection back now: the request may wait a while for its write turn.
    session.close()
    if user is None:
        raise NotAuthenticated("Please sign in to continue.")
    return user


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    """The signed-in user; anyone else is sent to sign in."""
    if user is None:
        raise NotAuthenticated("Please sign in to continue.")
    return user


def require_roles(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets through only users holding one of the roles."""
    allowed = set(roles)

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in allowed:
            raise Forbidden("Your role does not give access to this page.")
        return user

    return check


CurrentUser = Annotated[User, Depends(current_user)]
ReadingUser = Annotated[User, Depends(reading_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
AdminUser = Annotated[User, Depends(require_roles(Role.admin))]
