"""The mailer against a real SMTP server: retries with back-off while the
server is down or refusing, failure after the limit, no email ever sent
twice (two mailers, a mailer that died mid-send), STARTTLS with a login."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from plumbing import migrations
from plumbing.database import ServiceSession
from services.notify.mailer import (
    EXPIRED,
    INTERRUPTED,
    Transport,
    claim_next,
    send_due,
    sweep_expired,
    sweep_interrupted,
)
from services.notify.messages import new_email
from services.notify.models import FAILED, QUEUED, SENDING, SENT, Email
from services.notify.settings import Settings
from tests.notify.conftest import MailSink, body_text, free_port
from tests.service_support import outbox, service_session


def queue(
    db: ServiceSession, settings: Settings, count: int = 1, now: datetime | None = None
) -> list[str]:
    now = now or datetime.now(UTC)
    ids = []
    for number in range(count):
        email = new_email(
            db,
            kind="booking_expired",
            category="bookings",
            user_id=f"user-{number}",
            org_id="org-1",
            to_address=f"person{number}@example.org",
            subject=f"Message {number}",
            params={
                "name": "Pat",
                "text": f"Body {number}",
                "app_url": "x",
                "category": "bookings",
            },
            attachments=[],
            status=QUEUED,
            now=now,
            settings=settings,
        )
        ids.append(email.id)
    db.commit()
    return ids


def queue_reset_code(
    db: ServiceSession, settings: Settings, code: str, expires_at: datetime
) -> str:
    email = new_email(
        db,
        kind="password_reset",
        category="security",
        user_id="user-1",
        org_id="org-1",
        to_address="pat@example.org",
        subject="Your password reset code",
        params={
            "name": "Pat",
            "username": "pat",
            "school": "Elm Primary",
            "code": code,
            "expires": "soon",
            "app_url": "x",
            "category": "security",
        },
        attachments=[],
        status=QUEUED,
        now=datetime.now(UTC),
        settings=settings,
        expires_at=expires_at,
    )
    db.commit()
    return email.id


def state(db: ServiceSession, email_id: str) -> Email:
    db.rollback()
    found = db.get(Email, email_id, populate_existing=True)
    assert found is not None
    return found


def test_sends_once_and_records_it(
    db: ServiceSession, settings: Settings, mail_sink: MailSink
) -> None:
    [email_id] = queue(db, settings)
    assert send_due(db, settings, Transport(settings), datetime.now(UTC)) == (1, False)
    assert send_due(db, settings, Transport(settings), datetime.now(UTC)) == (0, False)
    [message] = mail_sink.wait_for(1)
    assert message["Message-ID"] == state(db, email_id).message_id
    found = state(db, email_id)
    assert (found.status, found.attempts) == (SENT, 1)
    [event] = outbox(db, "notify.email_sent")
    assert event["subject"]["id"] == email_id
    assert "person0@example.org" not in str(event)


def test_server_down_then_back_retries_with_backoff(
    db: ServiceSession, settings: Settings, mail_sink: MailSink
) -> None:
    [email_id] = queue(db, settings)
    mail_sink.stop()
    now = datetime.now(UTC)
    handled, unreachable = send_due(db, settings, Transport(settings), now)
    assert (handled, unreachable) == (1, True)
    found = state(db, email_id)
    assert found.status == QUEUED and found.attempts == 1
    assert "ConnectionRefusedError" in (found.last_error or "")
    first_delay = found.next_attempt_at - now
    # Not due again before the back-off.
    assert send_due(db, settings, Transport(settings), now) == (0, False)
    later = found.next_attempt_at + timedelta(milliseconds=1)
    send_due(db, settings, Transport(settings), later)
    second_delay = state(db, email_id).next_attempt_at - later
    assert second_delay > first_delay  # doubled
    mail_sink.start()
    send_due(db, settings, Transport(settings), state(db, email_id).next_attempt_at)
    assert state(db, email_id).status == SENT
    assert len(mail_sink.wait_for(1)) == 1


def test_refusals_until_the_limit_mark_it_failed_for_admins(
    db: ServiceSession, settings: Settings, mail_sink: MailSink
) -> None:
    [email_id] = queue(db, settings)
    mail_sink.refuse()
    when = datetime.now(UTC)
    for _ in range(settings.max_attempts):
        send_due(db, settings, Transport(settings), when)
        when = (state(db, email_id).next_attempt_at or when) + timedelta(seconds=1)
    found = state(db, email_id)
    assert (found.status, found.attempts) == (FAILED, settings.max_attempts)
    assert found.last_error.startswith("SMTP 451")
    [failed] = outbox(db, "notify.email_failed")
    assert failed["data"]["attempts"] == settings.max_attempts
    assert mail_sink.messages() == []


def test_two_mailers_never_send_an_email_twice(
    notify_db_url: str, db: ServiceSession, settings: Settings, mail_sink: MailSink
) -> None:
    ids = queue(db, settings, count=40)

    def run() -> None:
        with service_session(notify_db_url) as session:
            for _ in range(5):
                send_due(session, settings, Transport(settings), datetime.now(UTC))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    messages = mail_sink.wait_for(40)
    assert len(messages) == 40
    assert len({m["Message-ID"] for m in messages}) == 40
    db.rollback()
    assert {e.status for e in db.scalars(select(Email).where(Email.id.in_(ids)))} == {
        SENT
    }


def test_a_mailer_takes_the_next_email_while_another_is_claiming_the_oldest(
    notify_db_url: str, db: ServiceSession, settings: Settings
) -> None:
    """While one mailer holds the oldest due email's row, another takes the
    next one at once instead of waiting for it or finding nothing."""
    now = datetime.now(UTC)
    [oldest] = queue(db, settings, now=now - timedelta(minutes=2))
    [second] = queue(db, settings, now=now - timedelta(minutes=1))
    db.execute(
        select(Email.id).where(Email.id == oldest).with_for_update()
    ).scalar_one()
    with service_session(notify_db_url) as other:
        other.execute(text("SET lock_timeout = '3s'"))
        taken = claim_next(other, now, settings.lease_seconds)
        assert taken is not None and taken.id == second
    db.rollback()
    assert state(db, oldest).status == QUEUED
    assert state(db, second).status == SENDING


def test_on_sqlite_a_mailer_sends_due_emails_oldest_first_and_once(
    tmp_path: Path, settings: Settings, mail_sink: MailSink
) -> None:
    """On the laptop default, SQLite, the claim takes the oldest due email
    first, each once, and leaves emails that are not due yet."""
    url = f"sqlite:///{tmp_path / 'notify.sqlite3'}"
    migrations.upgrade("notify", url)
    now = datetime.now(UTC)
    with service_session(url) as lite:
        [newer] = queue(lite, settings, now=now - timedelta(minutes=1))
        [older] = queue(lite, settings, now=now - timedelta(minutes=2))
        [later] = queue(lite, settings, now=now + timedelta(minutes=5))
        first = claim_next(lite, now, settings.lease_seconds)
        second = claim_next(lite, now, settings.lease_seconds)
        assert [first and first.id, second and second.id] == [older, newer]
        assert claim_next(lite, now, settings.lease_seconds) is None
        assert state(lite, later).status == QUEUED
        lite.execute(
            update(Email)
            .where(Email.id.in_([older, newer]))
            .values(status=QUEUED, attempts=0, lease_until=None)
        )
        lite.commit()
        assert send_due(lite, settings, Transport(settings), now) == (2, False)
        assert send_due(lite, settings, Transport(settings), now) == (0, False)
    assert len(mail_sink.wait_for(2)) == 2


def test_an_email_held_by_a_dead_mailer_is_failed_not_resent(
    db: ServiceSession, settings: Settings, mail_sink: MailSink
) -> None:
    [email_id] = queue(db, settings)
    found = state(db, email_id)
    found.status = SENDING
    found.attempts = 1
    found.lease_until = datetime.now(UTC) - timedelta(seconds=1)
    db.commit()
    assert sweep_interrupted(db, datetime.now(UTC)) == 1
    assert send_due(db, settings, Transport(settings), datetime.now(UTC)) == (0, False)
    assert state(db, email_id).status == FAILED
    assert state(db, email_id).last_error == INTERRUPTED
    assert mail_sink.messages() == []


def test_a_sent_code_is_no_longer_kept_in_the_database(
    db: ServiceSession, settings: Settings, mail_sink: MailSink
) -> None:
    """The reset code reaches the person, then its email's body is dropped."""
    expires = datetime.now(UTC) + timedelta(minutes=30)
    email_id = queue_reset_code(db, settings, "WXYZ-2345-ABCD-6789", expires)
    assert "WXYZ-2345-ABCD-6789" in state(db, email_id).text_body
    send_due(db, settings, Transport(settings), datetime.now(UTC))
    [message] = mail_sink.wait_for(1)
    assert "WXYZ-2345-ABCD-6789" in message.get_body(("plain",)).get_content()
    found = state(db, email_id)
    assert found.status == SENT
    assert (found.text_body, found.html_body) == ("", "")


def test_a_code_that_expires_while_the_server_is_down_is_not_sent_late(
    db: ServiceSession, settings: Settings, mail_sink: MailSink
) -> None:
    """An outage outlasting the code fails the email as expired, unsent."""
    now = datetime.now(UTC)
    email_id = queue_reset_code(
        db, settings, "WXYZ-2345-ABCD-6789", now + timedelta(minutes=30)
    )
    mail_sink.stop()
    assert send_due(db, settings, Transport(settings), datetime.now(UTC)) == (1, True)
    mail_sink.start()
    later = now + timedelta(minutes=31)
    assert sweep_expired(db, later) == 1
    assert send_due(db, settings, Transport(settings), later) == (0, False)
    found = state(db, email_id)
    assert (found.status, found.last_error) == (FAILED, EXPIRED)
    assert "WXYZ" not in found.text_body + found.html_body
    [failed] = outbox(db, "notify.email_failed")
    assert failed["data"]["error"] == EXPIRED
    assert mail_sink.messages() == []


def test_an_expired_code_is_not_sent_even_before_the_sweep(
    db: ServiceSession, settings: Settings, mail_sink: MailSink
) -> None:
    """The send itself skips a code past its expiry; the sweep then fails it."""
    now = datetime.now(UTC)
    email_id = queue_reset_code(db, settings, "WXYZ-2345-ABCD-6789", now)
    assert send_due(db, settings, Transport(settings), now) == (0, False)
    assert state(db, email_id).status == QUEUED
    assert mail_sink.messages() == []


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_with_a_login(
    db: ServiceSession, settings: Settings, tmp_path: Path, mode: str
) -> None:
    """STARTTLS (port 587 style) and TLS from the first byte (port 465
    style), each with a login, against a real server that demands both."""
    cert, key = _certificate(tmp_path)
    implicit = ["--implicit-tls"] if mode == "ssl" else []
    sink = MailSink(
        tmp_path / "tls-mail",
        free_port(),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        *implicit,
        "--auth",
        "cpd:s3cret-pass",
    )
    sink.start()
    try:
        secure = replace(
            settings,
            smtp_port=sink.port,
            smtp_tls=mode,
            smtp_ca_file=str(cert),
            smtp_username="cpd",
            smtp_password="s3cret-pass",
        )
        [good] = queue(db, secure)
        send_due(db, secure, Transport(secure), datetime.now(UTC))
        assert state(db, good).status == SENT
        [message] = sink.wait_for(1)
        assert body_text(message)

        wrong = replace(secure, smtp_password="wrong")
        [refused] = queue(db, wrong)
        send_due(db, wrong, Transport(wrong), datetime.now(UTC))
        found = state(db, refused)
        # A failed login is the server's settings: retried, not failed.
        assert found.status == QUEUED and found.last_error.startswith("SMTP 535")

        # Without TLS the server takes nothing: it demands STARTTLS, or
        # (implicit TLS) never understands the plain greeting.
        plain = replace(secure, smtp_tls="none", smtp_timeout=1)
        [no_tls] = queue(db, plain)
        send_due(db, plain, Transport(plain), datetime.now(UTC))
        assert state(db, no_tls).status == QUEUED
        assert len(sink.messages()) == 1
    finally:
        sink.stop()


def test_settings_come_from_config_then_environment(monkeypatch: Any) -> None:
    from services.notify import settings as notify_settings

    monkeypatch.setenv("NOTIFY_SMTP_PORT", "2525")
    monkeypatch.setenv("NOTIFY_SMTP_TLS", "ssl")
    found = notify_settings.load({"NOTIFY_SMTP_HOST": "mail.example.org"})
    assert (found.smtp_host, found.smtp_port, found.smtp_tls) == (
        "mail.example.org",
        2525,
        "ssl",
    )
    monkeypatch.setenv("NOTIFY_SMTP_TLS", "sometimes")
    try:
        notify_settings.load({})
    except ValueError as error:
        assert "NOTIFY_SMTP_TLS" in str(error)
    else:
        raise AssertionError("a bad TLS mode must be refused")
    assert Settings(retry_seconds=60, retry_max_seconds=600).retry_delay(5) == 600


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NOTIFY_RETRY_SECONDS", "0"),
        ("NOTIFY_RETRY_SECONDS", "7200"),
        ("NOTIFY_MAX_ATTEMPTS", "0"),
    ],
)
def test_settings_refuse_retries_that_would_spin_or_never_try(
    monkeypatch: Any, key: str, value: str
) -> None:
    """No wait between retries, a first wait beyond the longest, or no attempt
    at all is refused at start-up with the setting's name."""
    from services.notify import settings as notify_settings

    monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=key):
        notify_settings.load({})
