"""Feedback pages: the observer shares (chooses what the teacher sees), withdraws the link and
replies; the teacher, through the link and without signing in, reads, reflects, acknowledges
and replies."""

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.background import BackgroundTask

from app.accounts.deps import CurrentUser
from app.db import SessionDep, write_turn
from app.errors import AppError, Forbidden
from app.feedback import mail, service
from app.feedback.models import FeedbackShare
from app.observations import service as observations
from app.observations.models import Observation
from app.rubrics import service as rubrics
from app.rubrics.loader import RubricDefinition
from app.rubrics.models import RubricVersion
from app.web import render

router = APIRouter()

Text = Annotated[str, Form(max_length=service.MAX_TEXT * 2)]


def _definition(session: Session, obs: Observation) -> RubricDefinition:
    rubric = session.get(RubricVersion, obs.rubric_version_id)
    assert rubric is not None
    return rubrics.definition(rubric)


def _link_base(request: Request) -> str:
    public = request.app.state.settings.public_url
    return (public or str(request.base_url)).rstrip("/")


# --- the observer -----------------------------------------------------------------------------


@router.post("/observations/{obs_id}/share", response_class=HTMLResponse)
async def share(
    request: Request, user: CurrentUser, session: SessionDep, obs_id: uuid.UUID
) -> Response:
    """Share the chosen feedback with the teacher: a new link (the earlier one stops working),
    e-mailed to the teacher when asked and a mail server is set up, shown here once."""
    form = await request.form()
    items = [v for v in form.getlist("items") if isinstance(v, str)][:200]
    email = form.get("email") if form.get("send_email") == "1" else None
    obs = observations.get_visible(session=session, user=user, obs_id=obs_id)
    settings = request.app.state.settings
    created, token = service.create_share(
        session=session,
        user=user,
        obs=obs,
        definition=_definition(session, obs),
        items=items,
        include_notes=form.get("include_notes") == "1",
        include_scores=form.get("include_scores") == "1",
        email=email if isinstance(email, str) else None,
        days=settings.feedback_link_days,
        link_base=_link_base(request),
        seal=lambda link: mail.seal(settings, link),
    )
    # Shown once, on the page this redirects to (a reload there never shares again).
    request.session["shared_link"] = {
        "obs": str(obs.id),
        "link": f"{_link_base(request)}/f/{token}",
        "share": created.id,
    }
    response = RedirectResponse(f"/observations/{obs.id}/shared", status_code=303)
    if created.email is not None and settings.smtp_host:
        # Sent once this request's transaction has committed (never before, never blocking).
        response.background = BackgroundTask(_wake, request.app.state.mail_wake)
    return response


async def _wake(event: asyncio.Event) -> None:
    event.set()  # on the event loop: asyncio events are not thread-safe


@router.get("/observations/{obs_id}/shared", response_class=HTMLResponse)
def shared_page(
    request: Request, user: CurrentUser, session: SessionDep, obs_id: uuid.UUID
) -> Response:
    """The link just made, shown this once (it is not stored anywhere it could be read)."""
    obs = observations.get_visible(session=session, user=user, obs_id=obs_id)
    kept = request.session.pop("shared_link", None)
    link = kept.get("link") if isinstance(kept, dict) and kept.get("obs") == str(obs.id) else None
    share = service.latest_share(session, obs.id)
    settings = request.app.state.settings
    response = render(
        request,
        "feedback/shared.html",
        {
            "obs": obs,
            "share": share,
            "link": link,
            "mailed": share is not None and share.email is not None and bool(settings.smtp_host),
            "no_mail_server": share is not None
            and share.email is not None
            and not settings.smtp_host,
        },
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/observations/{obs_id}/share/revoke")
def revoke(user: CurrentUser, session: SessionDep, obs_id: uuid.UUID) -> Response:
    """The link stops working at once."""
    obs = observations.get_visible(session=session, user=user, obs_id=obs_id, deleted=True)
    service.revoke(session, user, obs)
    return RedirectResponse(f"/observations/{obs.id}#feedback", status_code=303)


@router.post("/observations/{obs_id}/feedback/reply")
def observer_reply(
    user: CurrentUser, session: SessionDep, obs_id: uuid.UUID, body: Text = ""
) -> Response:
    """The observer answers in the thread the teacher sees."""
    obs = observations.get_visible(session=session, user=user, obs_id=obs_id)
    if not service.may_share(user, obs):
        raise Forbidden("Only the observer who recorded this observation replies to its teacher.")
    share = service.latest_share(session, obs.id)
    if share is None or service.state_of(share).value == "not_shared":
        raise Forbidden("Share the feedback first: there is no conversation to reply to.")
    service.reply(session, share, body, user=user)
    return RedirectResponse(f"/observations/{obs.id}#feedback", status_code=303)


# --- the teacher, through the link --------------------------------------------------------------


def _teacher_page(
    request: Request,
    session: Session,
    found: FeedbackShare,
    *,
    problem: str | None = None,
    typed: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    obs = session.get(Observation, found.observation_id)
    assert obs is not None
    definition = _definition(session, obs)
    prompts = [
        p.strip()
        for p in request.app.state.settings.feedback_reflection_prompts.split("|")
        if p.strip()
    ]
    response = render(
        request,
        "feedback/teacher.html",
        {
            "obs": obs,
            "definition": definition,
            "share": found,
            "view": service.shared_view(obs, definition, found),
            "thread": service.thread(session, found),
            "prompts": prompts,
            "problem": problem,
            "typed": typed or {},
            "token": request.path_params["token"],
        },
        status_code=status_code,
    )
    # The address is the key: never cached, never sent on as a referrer.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/f/{token}", response_class=HTMLResponse)
def teacher_view(request: Request, session: SessionDep, token: str) -> Response:
    """What the observer shared, for the teacher (no sign-in): every open is logged."""
    found = service.by_token(session, token)
    engine: Engine = request.app.state.engine
    with write_turn(engine) as writing:
        row = writing.get(FeedbackShare, found.id)
        if row is not None:
            service.record_open(writing, row)
            writing.commit()
    session.refresh(found)
    return _teacher_page(request, session, found)


@router.post("/f/{token}/{step}", response_class=HTMLResponse)
def teacher_step(
    request: Request,
    session: SessionDep,
    token: str,
    step: str,
    reflection: Text = "",
    name: Annotated[str, Form(max_length=400)] = "",
    comment: Text = "",
    body: Text = "",
) -> Response:
    """Reflect, acknowledge or reply; on a problem the page comes back with the text typed."""
    found = service.by_token(session, token)
    try:
        if step == "reflect":
            service.reflect(session, found, reflection)
        elif step == "acknowledge":
            service.acknowledge(session, found, name, comment)
        elif step == "reply":
            service.reply(session, found, body)
        else:
            return Response("There is no such step.", status_code=404)
    except AppError as exc:
        session.rollback()
        typed = {"reflection": reflection, "name": name, "comment": comment, "body": body}
        return _teacher_page(
            request,
            session,
            service.by_token(session, token),
            problem=exc.message,
            typed=typed,
            status_code=exc.status_code,
        )
    anchor = {"reflect": "reflection", "acknowledge": "acknowledge", "reply": "thread"}[step]
    return RedirectResponse(f"/f/{token}?saved={step}#{anchor}", status_code=303)
