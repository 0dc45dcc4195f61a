"""Turning "tell this person this" into an in-app notification and, where
the person wants it, an email waiting in the queue.

Whether an email is made, and in which state:

- no email for an ``in_app_only`` kind, a person with no address, or a
  category they turned email off for (never possible for security);
- ``held`` for the daily digest, if they chose it (not for security
  messages, codes and invitations, which go at once);
- ``held`` too when the recipient already had ``emails_per_hour`` emails in
  the last hour: a fault must not flood a mailbox, and nothing is lost, since
  the next daily digest gathers it (the notification is in the app at once);
- ``queued`` otherwise, for the mailer (:mod:`services.notify.mailer`).

The caller commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from plumbing.database import ServiceSession
from services.notify.catalogue import CODE_KINDS, KINDS, LOCKED_CATEGORIES
from services.notify.models import (
    FAILED,
    HELD,
    QUEUED,
    SENDING,
    SENT,
    Contact,
    Email,
    Notification,
    Organisation,
    Preference,
    RecipientSettings,
)
from services.notify.render import email_parts, title_and_text
from services.notify.settings import Settings

# Emails that reached, or are on their way to, the recipient's mailbox.
COUNTED = (QUEUED, SENDING, SENT, FAILED)


def full_name(contact: Contact | None) -> str:
    if contact is None or contact.erased_at is not None:
        return "a colleague"
    name = " ".join(part for part in (contact.given_name, contact.family_name) if part)
    return name or "a colleague"


def name_of(db: ServiceSession, user_id: str | None) -> str:
    return full_name(db.get(Contact, user_id) if user_id else None)


def school_name(db: ServiceSession, org_id: str | None, fallback: str = "") -> str:
    organisation = db.get(Organisation, org_id) if org_id else None
    return organisation.name if organisation is not None else fallback


def wants_email(db: ServiceSession, user_id: str, category: str) -> bool:
    if category in LOCKED_CATEGORIES:
        return True
    preference = db.get(Preference, (user_id, category))
    return preference is None or preference.email


def wants_digest(db: ServiceSession, user_id: str) -> bool:
    settings = db.get(RecipientSettings, user_id)
    return settings is not None and settings.daily_digest


def lock_recipient(db: ServiceSession, user_id: str) -> None:
    """Hold the recipient's rate limit until this transaction ends: another
    worker counting their emails waits here, then counts ours too. A
    deadlock between two workers (each telling the other's next recipient)
    is broken by PostgreSQL with an OperationalError, and the event goes
    back to the queue. SQLite runs one writer at a time and needs no lock."""
    if db.get_bind().dialect.name != "postgresql":
        return
    db.execute(
        select(
            func.pg_advisory_xact_lock(
                func.hashtext("notify.recipient"), func.hashtext(user_id)
            )
        )
    )


def over_limit(
    db: ServiceSession, user_id: str, limit: int, now: datetime, kind: str | None = None
) -> bool:
    """True when the recipient already had ``limit`` emails (of ``kind``, if
    given) in the hour before ``now``. Locks the recipient's count first, so
    that workers telling one person at the same moment take turns."""
    lock_recipient(db, user_id)
    query = select(func.count()).where(
        Email.user_id == user_id,
        Email.created_at > now - timedelta(hours=1),
        Email.status.in_(COUNTED),
    )
    if kind is not None:
        query = query.where(Email.kind == kind)
    return (db.scalar(query) or 0) >= limit


def new_email(
    db: ServiceSession,
    *,
    kind: str,
    category: str,
    user_id: str | None,
    org_id: str | None,
    to_address: str | None,
    subject: str,
    params: dict[str, Any],
    attachments: list[dict[str, str]],
    status: str,
    now: datetime,
    settings: Settings,
    notification_id: str | None = None,
    last_error: str | None = None,
    expires_at: datetime | None = None,
) -> Email:
    text_body, html_body = email_parts(kind, params)
    email_id = str(uuid.uuid4())
    domain = settings.sender.rsplit("@", 1)[-1].rstrip(">").strip() or "localhost"
    email = Email(
        id=email_id,
        notification_id=notification_id,
        user_id=user_id,
        org_id=org_id,
        category=category,
        kind=kind,
        to_address=to_address,
        subject=subject,
        text_body=text_body,
        html_body=html_body,
        attachments=attachments,
        status=status,
        attempts=0,
        next_attempt_at=now,
        last_error=last_error,
        message_id=f"<{email_id}@{domain}>",
        created_at=now,
        expires_at=expires_at,
    )
    db.add(email)
    return email


def forget_code(email: Email) -> None:
    """Drop the body of an email that carries a one-time code once it has
    gone or been given up on: nobody here needs the code after that, and a
    copy of the database must not hold working codes (auth keeps only their
    hashes)."""
    if email.kind in CODE_KINDS:
        email.text_body = ""
        email.html_body = ""


def tell(
    db: ServiceSession,
    *,
    user_id: str,
    kind: str,
    params: dict[str, Any],
    dedupe_key: str,
    org_id: str | None,
    now: datetime,
    settings: Settings,
    subject_type: str | None = None,
    subject_id: str | None = None,
    about_user_id: str | None = None,
    link: str | None = None,
    attachments: list[dict[str, str]] | None = None,
) -> Notification | None:
    """Tell one person: add the notification and its email (if any) to the
    session and flush. None for an inactive or erased person.

    A second notification with the same ``(user_id, dedupe_key)`` fails the
    flush with IntegrityError; the caller decides what a repeat means.
    """
    found = KINDS[kind]
    contact = db.get(Contact, user_id)
    if contact is not None and (not contact.active or contact.erased_at is not None):
        return None
    school = school_name(db, org_id or (contact.org_id if contact else None))
    values = {
        **params,
        "name": contact.given_name if contact else None,
        "school": school or params.get("school") or "",
        "app_url": settings.app_url,
        "category": found.category,
    }
    title, text = title_and_text(kind, values)
    notification = Notification(
        id=str(uuid.uuid4()),
        user_id=user_id,
        org_id=org_id,
        category=found.category,
        kind=kind,
        title=title,
        body=text,
        link=link,
        subject_type=subject_type,
        subject_id=subject_id,
        about_user_id=about_user_id,
        dedupe_key=dedupe_key,
        created_at=now,
    )
    db.add(notification)
    db.flush()
    if found.in_app_only or contact is None or not contact.email:
        return notification
    if not wants_email(db, user_id, found.category):
        return notification
    status, error = QUEUED, None
    if not found.immediate and wants_digest(db, user_id):
        status = HELD
    elif over_limit(db, user_id, settings.emails_per_hour, now):
        # Not lost, not flooding: it goes in the person's next digest.
        status, error = HELD, "Over the hourly limit: held for the daily digest"
    new_email(
        db,
        kind=kind,
        category=found.category,
        user_id=user_id,
        org_id=org_id,
        to_address=contact.email,
        subject=title,
        params={**values, "title": title, "text": text},
        attachments=list(attachments or ()),
        status=status,
        now=now,
        settings=settings,
        notification_id=notification.id,
        last_error=error,
    )
    db.flush()
    return notification
