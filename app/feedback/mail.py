"""The e-mail outbox: messages are written in the transaction that makes them and sent after
it commits, by whichever app server claims them first; a mail server that is away only delays
them (retried with backoff), and a claimed, sent message is never sent again."""

import asyncio
import contextlib
import logging
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.config import Settings
from app.db import utcnow
from app.feedback.models import FeedbackEvent, FeedbackEventKind, MailMessage

log = logging.getLogger(__name__)

# Attempts before giving up (and saying so to the observer): about a day with the backoff.
MAX_ATTEMPTS = 12
CLAIM_SECONDS = 120


def backoff(attempts: int) -> timedelta:
    """The wait before the next try: 30 s, 1, 2, 4 ... minutes, at most 4 hours."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 4 * 3600))


def _claim(engine: Engine, limit: int) -> list[MailMessage]:
    """Messages due now, each claimed by this sender alone (an atomic update per message)."""
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        due = list(
            session.exec(
                select(MailMessage)
                .where(
                    col(MailMessage.sent_at).is_(None),
                    col(MailMessage.gave_up_at).is_(None),
                    col(MailMessage.next_attempt_at) <= now,
                    or_(
                        col(MailMessage.claimed_until).is_(None),
                        col(MailMessage.claimed_until) < now,
                    ),
                )
                .order_by(col(MailMessage.id))
                .limit(limit)
            )
        )
        mine = []
        for message in due:
            taken = session.execute(
                update(MailMessage)
                .where(
                    col(MailMessage.id) == message.id,
                    col(MailMessage.sent_at).is_(None),
                    or_(
                        col(MailMessage.claimed_until).is_(None),
                        col(MailMessage.claimed_until) < now,
                    ),
                )
                .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            )
            session.commit()
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                mine.append(message)
        for message in mine:
            session.expunge(message)
        return mine


def _send(settings: Settings, message: MailMessage) -> None:
    email = EmailMessage()
    email["From"] = settings.smtp_from
    email["To"] = message.to_address
    email["Subject"] = message.subject
    for name, value in (message.headers or {}).items():
        email[name] = str(value)
    email.set_content(message.body)
    host = settings.smtp_host or "localhost"
    if settings.smtp_tls == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            host, settings.smtp_port, timeout=20, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(host, settings.smtp_port, timeout=20)
    with client:
        if settings.smtp_tls == "starttls":
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password or "")
        client.send_message(email)


def send_due(engine: Engine, settings: Settings, limit: int = 50) -> tuple[int, int]:
    """Send what is due; returns (sent, failed this round). Never raises for a mail problem:
    the message waits for its next try, and after the last one the observer is told."""
    if not settings.smtp_host:
        return 0, 0
    sent = failed = 0
    for message in _claim(engine, limit):
        error = ""
        try:
            _send(settings, message)
        except (OSError, smtplib.SMTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        now = utcnow()
        with Session(engine) as session:
            row = session.get(MailMessage, message.id)
            if row is None:
                continue
            row.claimed_until = None
            kind: FeedbackEventKind | None = None
            if not error:
                row.sent_at = now
                sent += 1
                kind = FeedbackEventKind.emailed
            else:
                row.attempts += 1
                row.last_error = error
                failed += 1
                if row.attempts >= MAX_ATTEMPTS:
                    row.gave_up_at = now
                    kind = FeedbackEventKind.email_failed
                else:
                    row.next_attempt_at = now + backoff(row.attempts)
            session.add(row)
            if kind is not None and row.share_id is not None:
                detail = row.to_address if not error else f"{row.to_address}: {error}"
                session.add(FeedbackEvent(share_id=row.share_id, kind=kind, body=detail))
            session.commit()
    return sent, failed


async def sender_loop(engine: Engine, settings: Settings, wake: asyncio.Event) -> None:
    """Runs for the app's life: sends what is due every 30 s, or at once when woken (a share
    was just committed)."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=30)
        wake.clear()
        try:
            await asyncio.to_thread(send_due, engine, settings)
        except Exception:  # the database away for a moment: the next round tries again
            log.warning("the e-mail outbox could not be sent this round", exc_info=True)
