"""The mailer: sends queued emails over SMTP, retries with back-off, and
never sends one email twice.

A thread of every notify process looks for due emails (``queued`` and
``next_attempt_at`` passed). It claims one at a time with a conditional
update (``queued`` -> ``sending``, with a lease) that skips the emails other
mailers are claiming, so instances never take the same email nor wait on
each other, then talks to the SMTP server and records the outcome:

- accepted: ``sent`` (event ``notify.email_sent``);
- refused for good (a 5xx reply, every recipient refused): ``failed`` at once;
- anything else (server down, timeout, a 4xx reply, a failed login):
  ``queued`` again after ``retry_seconds`` x 2^(attempts-1), at most
  ``retry_max_seconds``, until ``max_attempts``, then ``failed`` (event
  ``notify.email_failed``). School admins list failed emails and may queue
  one again.

A process that dies while it holds an email leaves it ``sending``; when the
lease ends it is marked ``failed`` ("interrupted"), not sent again: the
server may have accepted it just before the process died, and an email is
never sent twice. An admin decides whether to queue it again.

An email with a one-time code (a password reset, an invitation) keeps its
body only until it is sent or given up on, and one still waiting when its
code expires is marked ``failed`` ("expired") instead of being sent: the
person asks for a new code.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import eventlet
import structlog
from nameko.extensions import DependencyProvider
from sqlalchemy import or_, select, update

from plumbing.database import Database, ServiceSession
from services.notify import events
from services.notify import settings as notify_settings
from services.notify.messages import forget_code
from services.notify.models import FAILED, QUEUED, SENDING, SENT, Email
from services.notify.settings import Settings

log = structlog.get_logger()

BATCH = 20
INTERRUPTED = "Interrupted while sending; not retried, so that it is never sent twice"
EXPIRED = "Its one-time code expired before it could be sent"


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_message(email: Email, settings: Settings) -> EmailMessage:
    """The MIME message: plain text, HTML alternative, calendar attachments."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = email.to_address or ""
    message["Subject"] = email.subject
    message["Message-ID"] = email.message_id
    message["Date"] = format_datetime(email.created_at or utc_now())
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.text_body)
    message.add_alternative(email.html_body, subtype="html")
    for attachment in email.attachments or ():
        content_type = attachment.get("content_type") or "text/calendar"
        maintype, _, rest = content_type.partition("/")
        subtype, *raw_params = [part.strip() for part in rest.split(";")]
        params = dict(p.split("=", 1) for p in raw_params if "=" in p)
        message.add_attachment(
            attachment["content"].encode("utf-8"),
            maintype=maintype,
            subtype=subtype,
            filename=attachment.get("filename") or "attachment",
            params=params,
        )
    return message


class Transport:
    """One SMTP connection, opened on first use, as the settings say."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: smtplib.SMTP | None = None

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.smtp_ca_file)

    def connect(self) -> smtplib.SMTP:
        if self.client is not None:
            return self.client
        s = self.settings
        if s.smtp_tls == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                s.smtp_host,
                s.smtp_port,
                timeout=s.smtp_timeout,
                context=self._tls_context(),
            )
        else:
            client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        try:
            client.ehlo()
            if s.smtp_tls == "starttls":
                client.starttls(context=self._tls_context())
                client.ehlo()
            if s.smtp_username:
                client.login(s.smtp_username, s.smtp_password or "")
        except BaseException:
            _close(client)
            raise
        self.client = client
        return client

    def send(self, message: EmailMessage) -> None:
        self.connect().send_message(message)

    def close(self) -> None:
        if self.client is not None:
            _close(self.client)
            self.client = None


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def is_permanent(error: BaseException) -> bool:
    """A refusal that another attempt will not change."""
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return False  # the server's settings are wrong: fixable, retry
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return bool(codes) and all(500 <= code < 600 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return 500 <= error.smtp_code < 600
    return False


def is_unreachable(error: BaseException) -> bool:
    """The server itself is away (not one message refused): stop the batch."""
    if isinstance(
        error,
        smtplib.SMTPServerDisconnected
        | smtplib.SMTPConnectError
        # The server's settings are wrong for every message alike.
        | smtplib.SMTPAuthenticationError
        | smtplib.SMTPNotSupportedError,
    ):
        return True
    if isinstance(error, smtplib.SMTPException):
        return False
    return isinstance(error, OSError)  # refused, unreachable, timed out, TLS


def describe(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        detail = error.smtp_error
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return f"SMTP {error.smtp_code}: {detail}"[:500]
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return f"Recipient refused: {list(error.recipients.values())}"[:500]
    return f"{type(error).__name__}: {error}"[:500]


def _emit(db: ServiceSession, event_type: str, email: Email, **extra: Any) -> None:
    db.emit(
        event_type,
        subject_type="email",
        subject_id=email.id,
        org_id=email.org_id,
        data={
            "user_id": email.user_id,
            "kind": email.kind,
            "category": email.category,
            "attempts": email.attempts,
            **extra,
        },
        actor={"user_id": None},
    )


def sweep_interrupted(db: ServiceSession, now: datetime) -> int:
    """Mark emails whose sender died mid-send as failed; commits."""
    stale = list(
        db.scalars(
            select(Email).where(Email.status == SENDING, Email.lease_until < now)
        )
    )
    for email in stale:
        email.status = FAILED
        email.last_error = INTERRUPTED
        email.lease_until = None
        forget_code(email)
        _emit(db, events.EMAIL_FAILED, email, error=INTERRUPTED)
    db.commit()
    return len(stale)


def sweep_expired(db: ServiceSession, now: datetime) -> int:
    """Give up on queued emails whose one-time code no longer works; commits."""
    expired = list(
        db.scalars(
            select(Email)
            .where(Email.status == QUEUED, Email.expires_at <= now)
            .with_for_update(skip_locked=True)
        )
    )
    for email in expired:
        email.status = FAILED
        email.last_error = EXPIRED
        forget_code(email)
        _emit(db, events.EMAIL_FAILED, email, error=EXPIRED)
    db.commit()
    return len(expired)


def claim_next(db: ServiceSession, now: datetime, lease: float) -> Email | None:
    """Take the next due email for this mailer; None when none is left.

    One statement picks and takes it. On PostgreSQL the pick locks its row
    and skips rows other mailers hold (``SKIP LOCKED``), so mailers running
    at once take different emails rather than all reaching for the oldest;
    SQLite writes one statement at a time. The ``queued`` condition on the
    update is what makes a claim exclusive either way."""
    oldest_due = (
        select(Email.id)
        .where(
            Email.status == QUEUED,
            Email.next_attempt_at <= now,
            or_(Email.expires_at.is_(None), Email.expires_at > now),
        )
        .order_by(Email.next_attempt_at, Email.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    email = db.execute(
        update(Email)
        .where(Email.id == oldest_due, Email.status == QUEUED)
        .values(
            status=SENDING,
            attempts=Email.attempts + 1,
            lease_until=now + timedelta(seconds=lease),
        )
        .returning(Email)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).scalar_one_or_none()
    db.commit()
    return email


def record(
    db: ServiceSession,
    email: Email,
    error: BaseException | None,
    now: datetime,
    settings: Settings,
) -> str:
    """Store the outcome of one attempt; commits. Answers the new status."""
    email.lease_until = None
    if error is None:
        email.status = SENT
        email.sent_at = now
        email.last_error = None
        forget_code(email)
        _emit(db, events.EMAIL_SENT, email)
    elif is_permanent(error) or email.attempts >= settings.max_attempts:
        email.status = FAILED
        email.last_error = describe(error)
        forget_code(email)
        _emit(db, events.EMAIL_FAILED, email, error=email.last_error)
    else:
        email.status = QUEUED
        email.last_error = describe(error)
        email.next_attempt_at = now + timedelta(
            seconds=settings.retry_delay(email.attempts)
        )
    db.commit()
    return email.status


def send_due(
    db: ServiceSession, settings: Settings, transport: Transport, now: datetime
) -> tuple[int, bool]:
    """Send one batch of due emails. Answers how many were handled and
    whether the server could not be reached (the caller then waits).
    ``now`` dates the claims and the outcomes too: a batch is short."""
    handled = 0
    try:
        while handled < BATCH:
            email = claim_next(db, now, settings.lease_seconds)
            if email is None:
                break
            handled += 1
            error = _attempt(transport, email, settings)
            status = record(db, email, error, now, settings)
            log.info(
                "email_attempted",
                email_id=email.id,
                kind=email.kind,
                status=status,
                attempts=email.attempts,
                error=None if error is None else type(error).__name__,
            )
            if error is not None and is_unreachable(error):
                return handled, True
    finally:
        # One connection per batch: servers drop idle ones.
        transport.close()
    return handled, False


def _attempt(
    transport: Transport, email: Email, settings: Settings
) -> BaseException | None:
    try:
        transport.send(build_message(email, settings))
    except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as error:
        transport.close()
        return error
    return None


class Mailer(DependencyProvider):
    """Runs the mailer loop in every notify process, on the service's
    database. Gives ``self.mailer``: this provider (tests call ``wake``)."""

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._wake = eventlet.event.Event()

    def setup(self) -> None:
        self.settings = notify_settings.load(self.container.config)
        self.database = next(
            dep for dep in self.container.dependencies if isinstance(dep, Database)
        )

    def start(self) -> None:
        self._stopped.clear()
        self.container.spawn_managed_thread(self._run)

    def stop(self) -> None:
        self._stopped.set()
        self.wake()

    def kill(self) -> None:
        self.stop()

    def wake(self) -> None:
        if not self._wake.ready():
            self._wake.send(True)

    def _session(self) -> ServiceSession:
        session = self.database.session_factory()
        session.info["context_data"] = {}
        return session

    def _pause(self, seconds: float) -> None:
        timer = eventlet.Timeout(seconds, False)
        with timer:
            self._wake.wait()
        if self._wake.ready():
            self._wake = eventlet.event.Event()

    def _run(self) -> None:
        transport = Transport(self.settings)
        while not self._stopped.is_set():
            db = self._session()
            pause = self.settings.mail_poll_seconds
            try:
                sweep_interrupted(db, utc_now())
                sweep_expired(db, utc_now())
                handled, unreachable = send_due(db, self.settings, transport, utc_now())
                if unreachable:
                    pause = min(max(self.settings.retry_seconds, pause), 30.0)
                elif handled >= BATCH:
                    pause = 0
            except Exception as error:  # noqa: BLE001 (the loop must outlive any fault)
                log.warning("mailer_failed", error=repr(error))
                pause = min(max(self.settings.retry_seconds, 1.0), 30.0)
                db.rollback()
            finally:
                db.close()
            if pause and not self._stopped.is_set():
                self._pause(pause)
        transport.close()

    def get_dependency(self, worker_ctx: Any) -> Mailer:
        return self
