"""The e-mail outbox: messages are written in the transaction that makes them and sent after
it commits, by whichever app server claims them first; a mail server that is away only delays
them (retried with backoff). A message is claimed by one sender at a time, just before it is
sent, and only that claim can mark it sent: two app servers never both send it. (A process
that dies between handing a message to the mail server and recording it would send it again
after its claim runs out; its stable Message-ID lets mail systems drop the copy.)"""

import asyncio
import base64
import contextlib
import hashlib
import logging
import secrets
import smtplib
import ssl
from datetime import timedelta
from email.message import EmailMessage

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.config import Settings
from app.db import utcnow, write_turn
from app.feedback.models import FeedbackEvent, FeedbackEventKind, FeedbackShare, MailMessage

log = logging.getLogger(__name__)

# Attempts before giving up (and saying so to the observer): about a day with the backoff.
MAX_ATTEMPTS = 12
# Longer than any one delivery can take (each SMTP step times out after 20 s).
CLAIM_SECONDS = 600


def _fernet(settings: Settings) -> Fernet:
    key = hashlib.sha256(b"walkthrough-mail-link:" + settings.resolved_secret_key().encode())
    return Fernet(base64.urlsafe_b64encode(key.digest()))


def seal(settings: Settings, link: str) -> str:
    """The link, encrypted for the outbox."""
    return _fernet(settings).encrypt(link.encode()).decode()


def _unseal(settings: Settings, sealed: str) -> str | None:
    try:
        return _fernet(settings).decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError):
        return None  # the secret key changed since: the link cannot be rebuilt


def backoff(attempts: int) -> timedelta:
    """The wait before the next try: 30 s, 1, 2, 4 ... minutes, at most 4 hours."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 4 * 3600))


def _due_ids(engine: Engine, limit: int) -> list[int]:
    now = utcnow()
    with Session(engine) as session:
        return [
            int(i or 0)
            for i in session.exec(
                select(MailMessage.id)
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
        ]


def _claim(engine: Engine, message_id: int) -> tuple[MailMessage, str] | None:
    """This one message, claimed by this sender alone (an atomic update), or None."""
    now = utcnow()
    claim = secrets.token_hex(16)
    # A write turn (on SQLite: this process's writer queue, then the write lock up front), as
    # every write outside a request takes: a plain transaction could fail "database is
    # locked" when it turns from reading to writing while a request writes.
    with write_turn(engine) as session:
        taken = session.execute(
            update(MailMessage)
            .where(
                col(MailMessage.id) == message_id,
                col(MailMessage.sent_at).is_(None),
                col(MailMessage.gave_up_at).is_(None),
                or_(
                    col(MailMessage.claimed_until).is_(None),
                    col(MailMessage.claimed_until) < now,
                ),
            )
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS), claim_id=claim)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        message = session.get(MailMessage, message_id)
        if message is None:
            return None
        session.expunge(message)
    return message, claim


def _send(settings: Settings, message: MailMessage, body: str) -> None:
    email = EmailMessage()
    email["From"] = settings.smtp_from
    email["To"] = message.to_address
    email["Subject"] = message.subject
    for name, value in (message.headers or {}).items():
        email[name] = str(value)
    email.set_content(body)
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


def _live(engine: Engine, share_id: int | None) -> bool:
    if share_id is None:
        return True
    with Session(engine) as session:
        share = session.get(FeedbackShare, share_id)
        return share is not None and share.revoked_at is None and share.expires_at > utcnow()


def send_due(engine: Engine, settings: Settings, limit: int = 50) -> tuple[int, int]:
    """Send what is due, one message at a time; returns (sent, failed this round). A mail
    problem, or a message that cannot be sent at all, never stops the others: it waits for
    its next try, and after the last one the observer is told."""
    if not settings.smtp_host:
        return 0, 0
    sent = failed = 0
    for message_id in _due_ids(engine, limit):
        claimed = _claim(engine, message_id)
        if claimed is None:
            continue  # another sender has it
        message, claim = claimed
        error, final = "", False
        if not _live(engine, message.share_id):
            error, final = "the link was withdrawn or has expired; nothing was sent", True
        else:
            link = _unseal(settings, message.sealed_link) if message.sealed_link else ""
            if link is None:
                error, final = "the server's secret key changed: share again", True
            else:
                try:
                    _send(settings, message, message.body.replace("{link}", link))
                except Exception as exc:  # a refused address, a mail server away, a bad header
                    error = f"{type(exc).__name__}: {exc}"[:500]
        if _record(engine, message_id, claim, error, final):
            if error:
                failed += 1
            else:
                sent += 1
    return sent, failed


def _record(engine: Engine, message_id: int, claim: str, error: str, final: bool) -> bool:
    """What became of one try, written only under this sender's claim."""
    now = utcnow()
    with write_turn(engine) as session:
        row = session.get(MailMessage, message_id)
        if row is None or row.claim_id != claim:
            return False
        row.claimed_until, row.claim_id = None, None
        kind: FeedbackEventKind | None = None
        if not error:
            row.sent_at, row.sealed_link = now, None
            kind = FeedbackEventKind.emailed
        else:
            row.attempts += 1
            row.last_error = error
            if final or row.attempts >= MAX_ATTEMPTS:
                row.gave_up_at, row.sealed_link = now, None
                kind = FeedbackEventKind.email_failed
            else:
                row.next_attempt_at = now + backoff(row.attempts)
        session.add(row)
        if kind is not None and row.share_id is not None:
            detail = row.to_address if not error else f"{row.to_address}: {error}"
            session.add(FeedbackEvent(share_id=row.share_id, kind=kind, body=detail))
        return True


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
