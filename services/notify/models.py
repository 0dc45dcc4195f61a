"""The notify service's tables. No other service reads them.

``organisations`` and ``contacts`` are this service's copy of who is who and
how to reach them, kept from the auth service's events so that messages go
out while auth is down (see :mod:`services.notify.contacts`).

A notification is what a person sees in the app; an email is one message to
one address, tied to at most one notification (so a notification is never
emailed twice) and moved through ``queued`` -> ``sending`` -> ``sent`` by the
mailer (see :mod:`services.notify.mailer`).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plumbing.sqltypes import UTCDateTime

# Email states.
QUEUED = "queued"  # waiting for the mailer (again, after a failed attempt)
SENDING = "sending"  # one mailer holds it and is talking to the SMTP server
SENT = "sent"  # the SMTP server accepted it
FAILED = "failed"  # given up; a school admin sees it and may retry it
HELD = "held"  # waiting for the daily digest (chosen, or over the hourly limit)
DIGESTED = "digested"  # went out inside a digest
SUPPRESSED = "suppressed"  # not sent (codes over their limit, erasure)
EMAIL_STATES = (QUEUED, SENDING, SENT, FAILED, HELD, DIGESTED, SUPPRESSED)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class Organisation(Base):
    """A trust or school, as ``auth.organisation_created`` announced it."""

    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    parent_trust_id: Mapped[str | None] = mapped_column(String(36), index=True)


class Contact(Base):
    """How to reach one user. ``versions`` holds, per field, the
    ``occurred_at`` of the event that set it, so events applied in any order
    leave the latest value. ``roles`` is ``[{"role", "org_id"}]``, to find the
    CPD leads who decide a request. An erased contact keeps only its id."""

    __tablename__ = "contacts"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(36), index=True)
    username: Mapped[str | None] = mapped_column(String(150))
    email: Mapped[str | None] = mapped_column(String(320))
    given_name: Mapped[str | None] = mapped_column(String(100))
    family_name: Mapped[str | None] = mapped_column(String(100))
    line_manager_id: Mapped[str | None] = mapped_column(String(36))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    roles: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ProcessedEvent(Base):
    """An event already handled (delivery is at least once)."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Indexed for the retention run (services.notify.retention), as are the
    # creation times of notifications, emails and digests.
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class FailedEvent(Base):
    """An event notify gave up on after repeated unexpected errors: kept
    whole, with the last error, for an operator to replay
    (``python -m services.notify.cli replay``)."""

    __tablename__ = "failed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Notification(Base):
    """One thing one person is told, in the app.

    ``dedupe_key`` is unique per user: the id of the event that caused it, or
    the name of a reminder (``session:<id>``), so that a redelivered event, a
    restart or a second instance never tells anyone twice. ``about_user_id``
    is the person it names, whose name is removed when they are erased.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("user_id", "dedupe_key"),
        Index("ix_notifications_inbox", "user_id", "read_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36))
    org_id: Mapped[str | None] = mapped_column(String(36))
    category: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(36))
    about_user_id: Mapped[str | None] = mapped_column(String(36), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Email(Base):
    """One message to one address, and where it is on its way.

    ``notification_id`` is unique: one notification, at most one email.
    ``attachments`` is ``[{"filename", "content_type", "content"}]`` (text).
    """

    __tablename__ = "emails"
    __table_args__ = (
        # The mailer's question: which queued emails are due?
        Index(
            "ix_emails_due",
            "next_attempt_at",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index("ix_emails_recipient_created", "user_id", "created_at"),
        Index("ix_emails_org_status", "org_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    notification_id: Mapped[str | None] = mapped_column(
        ForeignKey("notifications.id", ondelete="SET NULL"), unique=True
    )
    user_id: Mapped[str | None] = mapped_column(String(36))
    org_id: Mapped[str | None] = mapped_column(String(36))
    category: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))
    message_id: Mapped[str] = mapped_column(String(200))
    digest_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the one-time code inside stops working: not sent after that.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Preference(Base):
    """Whether a user wants email for one category (in-app is always on)."""

    __tablename__ = "preferences"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RecipientSettings(Base):
    """A user's choice of one daily digest instead of single emails."""

    __tablename__ = "recipient_settings"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    daily_digest: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Digest(Base):
    """One user's digest of one day: unique, so it is made once."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("user_id", "digest_date"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36))
    digest_date: Mapped[date] = mapped_column(Date)
    email_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
