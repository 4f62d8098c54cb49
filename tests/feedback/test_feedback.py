"""Feedback to the teacher: share links (hashed, expiring, revocable, every open logged, one
observation each), what the shared view shows for each choice, the teacher's reflection,
acknowledgement and replies recorded, the loop's state, role checks, and e-mail through a real
SMTP server (aiosmtpd on 127.0.0.1) with an outage and recovery: nothing lost, nothing twice."""

import hashlib
import re
import socket
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from app.accounts.service import import_roster
from app.db import utcnow
from app.feedback import mail
from app.feedback.models import FeedbackEvent, FeedbackShare, MailMessage
from app.observations.models import Observation
from tests.helpers import World, login, make_observation

VALUES = {
    "overall_discourse": {"value": 3, "evidence": "PRIVATE EVIDENCE about a student"},
    "glow": {"value": "Your questions invited every table to explain."},
    "grow": {"value": "Try a turn-and-talk before sharing out."},
}


def _fresh(session: Session) -> None:
    """What the server wrote since: a new snapshot, nothing remembered."""
    session.rollback()
    session.expire_all()


def _obs(session: Session, world: World, **kwargs: Any) -> Observation:
    obs = make_observation(session, world.observer, teacher=world.teacher, values=VALUES, **kwargs)
    obs.overall_notes = "Strong launch."
    session.add(obs)
    session.commit()
    return obs


def _share(client: TestClient, csrf: str, obs: Observation, **form: Any) -> tuple[int, str]:
    data = {"csrf_token": csrf, "items": ["glow", "grow"], "include_notes": "1", **form}
    answer = client.post(f"/observations/{obs.id}/share", data=data)
    if answer.status_code == 303:  # the link is shown once, on the page it redirects to
        assert answer.headers["location"] == f"/observations/{obs.id}/shared"
        answer = client.get(answer.headers["location"])
        assert answer.headers["cache-control"] == "no-store"
    link = re.search(
        r'data-share-link[^>]*value="([^"]+)"|value="([^"]+)"[^>]*data-share-link', answer.text
    )
    token = ""
    if link:
        token = (link.group(1) or link.group(2)).rsplit("/f/", 1)[1]
    return answer.status_code, token


def _teacher(app: FastAPI) -> TestClient:
    return TestClient(app, follow_redirects=False)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def test_a_share_link_is_hashed_logged_and_opens_that_observation_only(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    obs = _obs(session, world)
    other = _obs(session, world)
    csrf = login(client, world.observer)
    status, token = _share(client, csrf, obs)
    assert status == 200 and len(token) >= 40
    share = session.exec(select(FeedbackShare)).one()
    assert share.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(share.model_dump())  # only the hash is stored
    teacher = _teacher(app)
    for _ in range(2):
        page = teacher.get(f"/f/{token}")
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
    assert "Your questions invited every table" in page.text
    _fresh(session)
    share = session.exec(select(FeedbackShare)).one()
    assert share.opens == 2 and share.first_opened_at is not None
    opens = session.exec(select(FeedbackEvent).where(FeedbackEvent.kind == "opened")).all()
    assert len(opens) == 2
    # The link names no other observation, and a made-up one opens nothing.
    assert str(other.id) not in page.text
    assert teacher.get(f"/f/{token[:-2]}xx").status_code == 404
    assert teacher.get("/f/short").status_code == 404
    assert "Opened" in client.get(f"/observations/{obs.id}").text


def test_an_expired_or_withdrawn_link_says_so(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    obs = _obs(session, world)
    csrf = login(client, world.observer)
    _status, token = _share(client, csrf, obs)
    teacher = _teacher(app)
    share = session.exec(select(FeedbackShare)).one()
    share.expires_at = utcnow() - timedelta(minutes=1)
    session.add(share)
    session.commit()
    expired = teacher.get(f"/f/{token}")
    assert expired.status_code == 404 and "expired" in expired.text
    _status, fresh = _share(client, csrf, obs)  # a new link: the old one stops working
    assert teacher.get(f"/f/{fresh}").status_code == 200
    revoked = client.post(f"/observations/{obs.id}/share/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    gone = teacher.get(f"/f/{fresh}")
    assert gone.status_code == 404 and "withdrawn" in gone.text
    assert 'data-feedback-state="not_shared"' in client.get(f"/observations/{obs.id}").text


@pytest.mark.parametrize(
    ("form", "shown", "hidden"),
    [
        (
            {},
            ["Your questions invited", "Try a turn-and-talk", "Strong launch."],
            ["PRIVATE EVIDENCE", "data-shared-scores"],
        ),
        (
            {"items": ["glow"], "include_notes": ""},
            ["Your questions invited"],
            ["Try a turn-and-talk", "Strong launch.", "PRIVATE EVIDENCE", "data-shared-scores"],
        ),
        (
            {"include_scores": "1"},
            ["Your questions invited", "data-shared-scores", "3 ·"],
            ["PRIVATE EVIDENCE"],
        ),
    ],
)
def test_the_shared_view_shows_what_was_chosen_and_never_the_evidence(
    app: FastAPI,
    client: TestClient,
    session: Session,
    world: World,
    form: dict[str, Any],
    shown: list[str],
    hidden: list[str],
) -> None:
    obs = _obs(session, world)
    csrf = login(client, world.observer)
    _status, token = _share(client, csrf, obs, **form)
    page = _teacher(app).get(f"/f/{token}").text
    for text in shown:
        assert text in page, text
    for text in hidden:
        assert text not in page, text


def test_the_teacher_reflects_acknowledges_and_replies_and_the_observer_sees_it(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    obs = _obs(session, world)
    csrf = login(client, world.observer)
    _status, token = _share(client, csrf, obs)
    teacher = _teacher(app)
    page = teacher.get(f"/f/{token}").text
    tcsrf = _csrf(page)
    empty = teacher.post(f"/f/{token}/reflect", data={"csrf_token": tcsrf, "reflection": "  "})
    assert empty.status_code == 422 and "Write your reflection first" in empty.text
    no_csrf = teacher.post(f"/f/{token}/reflect", data={"reflection": "x"})
    assert no_csrf.status_code == 403
    done = teacher.post(
        f"/f/{token}/reflect", data={"csrf_token": tcsrf, "reflection": "I will try it Monday."}
    )
    assert done.status_code == 303
    unsigned = teacher.post(
        f"/f/{token}/acknowledge", data={"csrf_token": tcsrf, "name": "", "comment": "Kept"}
    )
    assert unsigned.status_code == 422 and "Kept" in unsigned.text  # typed text kept
    teacher.post(
        f"/f/{token}/acknowledge",
        data={"csrf_token": tcsrf, "name": "Ana García", "comment": "Thanks, with a question."},
    )
    teacher.post(f"/f/{token}/reply", data={"csrf_token": tcsrf, "body": "Which tables?"})
    again = teacher.post(f"/f/{token}/acknowledge", data={"csrf_token": tcsrf, "name": "Ana"})
    assert again.status_code == 409
    client.post(
        f"/observations/{obs.id}/feedback/reply",
        data={"csrf_token": csrf, "body": "Tables 2 and 5."},
    )
    seen = client.get(f"/observations/{obs.id}").text
    assert 'data-feedback-state="acknowledged"' in seen
    assert "I will try it Monday." in seen and "Acknowledged by Ana García" in seen
    assert "Which tables?" in seen and "Tables 2 and 5." in seen
    assert "Tables 2 and 5." in teacher.get(f"/f/{token}").text
    history = client.get(f"/observations/{obs.id}/history").text
    for what in (
        "Shared with the teacher",
        "Opened by the teacher",
        "Reflection written",
        "Acknowledged by the teacher",
        "I will try it Monday.",
        "Which tables?",
    ):
        assert what in history, what


@pytest.mark.parametrize("role", ["principal", "facilitator", "admin"])
def test_only_the_observer_or_an_admin_shares(
    app: FastAPI, client: TestClient, session: Session, world: World, role: str
) -> None:
    obs = _obs(session, world)
    other = TestClient(app, follow_redirects=False)
    csrf = login(other, getattr(world, role))
    status, token = _share(other, csrf, obs)
    assert (status, bool(token)) == ((200, True) if role == "admin" else (status, False))
    if role != "admin":
        assert status in (403, 404)
        revoke = other.post(f"/observations/{obs.id}/share/revoke", data={"csrf_token": csrf})
        assert revoke.status_code in (403, 404)
        reply = other.post(
            f"/observations/{obs.id}/feedback/reply", data={"csrf_token": csrf, "body": "x"}
        )
        assert reply.status_code in (403, 404)


def test_a_draft_or_signed_out_share_is_refused(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    draft = _obs(session, world, status="draft")
    csrf = login(client, world.observer)
    status, _token = _share(client, csrf, draft)
    assert status == 409
    anonymous = TestClient(app, follow_redirects=False)
    assert anonymous.post(f"/observations/{draft.id}/share", data={}).status_code in (401, 403)


# --- e-mail through a real SMTP server -------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mail_server(app: FastAPI, port: int | None = None) -> Any:
    """The app's settings with a mail server on 127.0.0.1 (none listens unless a test starts
    one on `port`)."""
    app.state.settings = app.state.settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port or _free_port(), "smtp_tls": "none"}
    )
    return app.state.settings


def test_email_waits_out_a_mail_server_outage_then_goes_once(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    from aiosmtpd.controller import Controller

    port = _free_port()
    settings = _mail_server(app, port)
    world.teacher.email = "ana@school.example"
    session.add(world.teacher)
    session.commit()
    obs = _obs(session, world)
    csrf = login(client, world.observer)
    page = client.get(f"/observations/{obs.id}").text
    assert 'value="ana@school.example"' in page  # from the roster
    status, token = _share(client, csrf, obs, send_email="1", email="ana@school.example")
    assert status == 200
    engine = app.state.engine

    # The mail server is down: nothing is lost, the message waits with the reason.
    assert mail.send_due(engine, settings) == (0, 1)
    _fresh(session)
    waiting = session.exec(select(MailMessage)).one()
    assert waiting.sent_at is None and waiting.attempts == 1 and waiting.last_error
    assert waiting.next_attempt_at > utcnow()
    assert "tried 1 time" in client.get(f"/observations/{obs.id}").text
    assert mail.send_due(engine, settings) == (0, 0)  # not due yet: backoff

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        waiting.next_attempt_at = utcnow() - timedelta(seconds=1)
        session.add(waiting)
        session.commit()
        assert mail.send_due(engine, settings) == (1, 0)
        assert mail.send_due(engine, settings) == (0, 0)  # sent once, never again
        deadline = time.monotonic() + 5
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    envelope = inbox.messages[0]
    assert envelope.rcpt_tos == ["ana@school.example"]
    body = envelope.content.decode()
    assert f"/f/{token}" in body
    _fresh(session)
    sent = session.exec(select(MailMessage)).one()
    assert sent.sent_at is not None and sent.attempts == 1
    assert "sent" in client.get(f"/observations/{obs.id}").text
    kinds = [e.kind for e in session.exec(select(FeedbackEvent).order_by(col(FeedbackEvent.id)))]
    assert kinds == ["shared", "emailed"]


def test_a_message_given_up_is_shown_to_the_observer(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    port = _free_port()  # nothing listens there
    settings = app.state.settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_tls": "none"}
    )
    app.state.settings = settings
    obs = _obs(session, world)
    csrf = login(client, world.observer)
    _share(client, csrf, obs, send_email="1", email="ana@school.example")
    for _ in range(mail.MAX_ATTEMPTS):
        _fresh(session)
        message = session.exec(select(MailMessage)).one()
        message.next_attempt_at = utcnow() - timedelta(seconds=1)
        session.add(message)
        session.commit()
        mail.send_due(app.state.engine, settings)
    page = client.get(f"/observations/{obs.id}").text
    assert "could not be sent" in page


def test_the_loop_is_filtered_listed_and_exported(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    import csv
    import io

    shared = _obs(session, world)
    quiet = _obs(session, world)
    csrf = login(client, world.observer)
    _status, token = _share(client, csrf, shared)
    teacher = _teacher(app)
    tcsrf = _csrf(teacher.get(f"/f/{token}").text)
    teacher.post(f"/f/{token}/reflect", data={"csrf_token": tcsrf, "reflection": "SECRET THOUGHT"})

    listed = client.get("/observations?feedback=reflected").text
    assert str(shared.id) in listed and str(quiet.id) not in listed
    listed = client.get("/observations?feedback=not_shared").text
    assert str(quiet.id) in listed and str(shared.id) not in listed
    assert client.get("/observations?feedback=nonsense").status_code == 200

    # The principal's start page lists shares nobody opened after N days.
    _status, _unread = _share(client, csrf, quiet)
    _fresh(session)
    for share in session.exec(select(FeedbackShare)):
        share.created_at = utcnow() - timedelta(days=10)
        session.add(share)
    session.commit()
    principal = TestClient(app, follow_redirects=False)
    login(principal, world.principal)
    home = principal.get("/").text
    assert "Feedback not opened" in home and f"/observations/{quiet.id}#feedback" in home
    assert f"/observations/{shared.id}#feedback" not in home  # opened

    admin = TestClient(app, follow_redirects=False)
    login(admin, world.admin)

    def exported() -> dict[str, dict[str, str]]:
        text = admin.get("/exports/download?dataset=observations_long&format=csv").text
        return {r["observation_id"]: r for r in csv.DictReader(io.StringIO(text))}

    rows = exported()
    assert rows[str(shared.id)]["feedback_state"] == "reflected"
    assert rows[str(shared.id)]["feedback_reflected_at"]
    assert rows[str(shared.id)]["feedback_reflection"] == ""  # not exported by default
    assert rows[str(quiet.id)]["feedback_state"] == "shared"
    app.state.settings = app.state.settings.model_copy(update={"export_reflections": True})
    assert exported()[str(shared.id)]["feedback_reflection"] == "SECRET THOUGHT"


def test_hostile_links_and_steps_get_a_plain_answer(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    obs = _obs(session, world)
    csrf = login(client, world.observer)
    _status, token = _share(client, csrf, obs)
    teacher = _teacher(app)
    tcsrf = _csrf(teacher.get(f"/f/{token}").text)
    for path in ("/f/" + "x" * 5000, "/f/%E2%80%AE", "/f/..%2f..", f"/f/{token}%20"):
        assert teacher.get(path).status_code in (404, 405), path
    for step in ("nothing", "reflect/more", "²"):
        answer = teacher.post(f"/f/{token}/{step}", data={"csrf_token": tcsrf})
        assert answer.status_code in (404, 405), (step, answer.status_code)
    huge = teacher.post(
        f"/f/{token}/reflect", data={"csrf_token": tcsrf, "reflection": "x" * 20_000}
    )
    assert huge.status_code in (400, 422)
    for data in (
        {"items": ["not-an-item"]},
        {"send_email": "1", "email": "not an address"},
        {"items": ["x"] * 5000},
    ):
        answer = client.post(f"/observations/{obs.id}/share", data={"csrf_token": csrf, **data})
        assert 400 <= answer.status_code < 500, (data, answer.status_code)
    assert client.post("/observations/not-a-uuid/share", data={"csrf_token": csrf}).status_code in (
        404,
        422,
    )


def test_the_link_is_shown_once_and_never_kept_in_the_clear(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    _mail_server(app)
    obs = _obs(session, world)
    csrf = login(client, world.observer)
    _status, token = _share(client, csrf, obs, send_email="1", email="ana@school.example")
    again = client.get(f"/observations/{obs.id}/shared")  # a reload: no new share, no link
    assert "data-link-gone" in again.text and token not in again.text
    _fresh(session)
    assert len(session.exec(select(FeedbackShare)).all()) == 1
    message = session.exec(select(MailMessage)).one()
    assert token not in message.body and "{link}" in message.body
    assert message.sealed_link and token not in message.sealed_link
    # Withdrawn before it could go: given up, its sealed link wiped, nothing sent.
    client.post(f"/observations/{obs.id}/share/revoke", data={"csrf_token": csrf})
    _fresh(session)
    message = session.exec(select(MailMessage)).one()
    assert message.gave_up_at is not None and message.sealed_link is None
    assert mail.send_due(app.state.engine, app.state.settings) == (0, 0)


def test_bad_addresses_are_refused_where_they_are_typed(
    client: TestClient, session: Session, world: World
) -> None:
    obs = _obs(session, world)
    csrf = login(client, world.observer)
    for address in ("ana@[", "ana@[school.org", "a@b.c,x@y.z", "Ana <a@b.c>", "a@b"):
        status, token = _share(client, csrf, obs, send_email="1", email=address)
        assert (status, token) == (422, ""), address
    report = import_roster(
        session=session, data=b"school,teacher,email\nLincoln Elementary,Ana Garc\xc3\xada,ana@[\n"
    )
    assert report.errors == [
        {"row": 2, "column": "email", "message": "'ana@[' is not an e-mail address."}
    ]


def test_two_senders_at_once_send_each_message_once(
    app: FastAPI, client: TestClient, session: Session, world: World, monkeypatch: Any
) -> None:
    import threading

    settings = _mail_server(app)
    csrf = login(client, world.observer)
    for _ in range(4):
        _share(client, csrf, _obs(session, world), send_email="1", email="ana@school.example")
    sent: list[int] = []

    def slow_send(_settings: Any, message: MailMessage, body: str) -> None:
        assert "/f/" in body and "{link}" not in body  # unsealed at sending time
        time.sleep(0.2)
        sent.append(message.id or 0)

    monkeypatch.setattr(mail, "_send", slow_send)
    senders = [
        threading.Thread(target=mail.send_due, args=(app.state.engine, settings)) for _ in range(2)
    ]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 4
    _fresh(session)
    assert all(m.sent_at and m.sealed_link is None for m in session.exec(select(MailMessage)))


def test_a_message_that_cannot_be_sent_never_holds_up_the_others(
    app: FastAPI, client: TestClient, session: Session, world: World, monkeypatch: Any
) -> None:
    settings = _mail_server(app)
    csrf = login(client, world.observer)
    for _ in range(2):
        _share(client, csrf, _obs(session, world), send_email="1", email="ana@school.example")
    calls: list[int] = []

    def picky(_settings: Any, message: MailMessage, body: str) -> None:
        calls.append(message.id or 0)
        if len(calls) == 1:
            raise AttributeError("a header the mail library cannot write")

    monkeypatch.setattr(mail, "_send", picky)
    assert mail.send_due(app.state.engine, settings) == (1, 1)


def test_deleting_an_observation_withdraws_its_link(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    obs = _obs(session, world)
    csrf = login(client, world.observer)
    _status, token = _share(client, csrf, obs)
    admin = TestClient(app, follow_redirects=False)
    acsrf = login(admin, world.admin)
    assert (
        admin.post(f"/observations/{obs.id}/delete", data={"csrf_token": acsrf}).status_code == 303
    )
    assert _teacher(app).get(f"/f/{token}").status_code == 404
    history = admin.get(f"/observations/{obs.id}/history").text
    assert "the observation was deleted" in history


def test_a_share_acted_on_without_an_open_is_in_one_state_only(
    app: FastAPI, client: TestClient, session: Session, world: World
) -> None:
    obs = _obs(session, world)
    csrf = login(client, world.observer)
    _share(client, csrf, obs)
    _fresh(session)
    share = session.exec(select(FeedbackShare)).one()
    share.acknowledged_at, share.acknowledged_name = utcnow(), "Ana"
    session.add(share)
    session.commit()
    found = {
        state: str(obs.id) in client.get(f"/observations?feedback={state}").text
        for state in ("not_shared", "shared", "opened", "reflected", "acknowledged")
    }
    assert found == {
        "not_shared": False,
        "shared": False,
        "opened": False,
        "reflected": False,
        "acknowledged": True,
    }


def test_access_logs_never_show_a_feedback_token() -> None:
    import logging

    from app.main import RedactFeedbackLinks

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/f/SECRETTOKEN123456789012345/reflect?x=1", "1.1", 303),
        None,
    )
    assert RedactFeedbackLinks().filter(record)
    assert "SECRET" not in record.getMessage() and "/f/…/reflect" in record.getMessage()
