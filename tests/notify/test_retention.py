"""The retention run: what is older than the period is deleted in batches,
what is still on its way or recent stays, and each run that deleted anything
says so in an event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from plumbing.database import ServiceSession
from services.notify import retention
from services.notify import settings as notify_settings
from services.notify.messages import new_email
from services.notify.models import (
    QUEUED,
    SENT,
    Digest,
    Email,
    Notification,
    ProcessedEvent,
)
from services.notify.settings import Settings
from tests.service_support import outbox

NOW = datetime(2027, 6, 1, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
RECENT = NOW - timedelta(days=10)


def add_notice(db: ServiceSession, key: str, created: datetime) -> Notification:
    notice = Notification(
        user_id="user-1",
        org_id="org-1",
        category="bookings",
        kind="booking_expired",
        title=f"Notice {key}",
        body="Your request expired.",
        dedupe_key=key,
        created_at=created,
    )
    db.add(notice)
    db.flush()
    return notice


def add_email(
    db: ServiceSession,
    settings: Settings,
    notice: Notification,
    status: str,
    created: datetime,
) -> Email:
    email = new_email(
        db,
        kind="booking_expired",
        category="bookings",
        user_id="user-1",
        org_id="org-1",
        to_address="pat@example.org",
        subject=notice.title,
        params={"name": "Pat", "text": "x", "app_url": "x", "category": "bookings"},
        attachments=[],
        status=status,
        now=created,
        settings=settings,
        notification_id=notice.id,
    )
    db.flush()
    return email


def count(db: ServiceSession, model: Any) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_old_notices_emails_and_records_go_recent_and_queued_ones_stay(
    db: ServiceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After 365 days: sent emails, notices, digests and handled events go."""
    monkeypatch.setattr(retention, "BATCH", 2)  # several batches per table
    settings = Settings()
    for number in range(3):
        old = add_notice(db, f"old-{number}", OLD)
        add_email(db, settings, old, SENT, OLD)
    waiting = add_email(db, settings, add_notice(db, "old-queued", OLD), QUEUED, OLD)
    recent = add_email(db, settings, add_notice(db, "recent", RECENT), SENT, RECENT)
    db.add_all(
        [
            ProcessedEvent(event_id="e-old", processed_at=OLD),
            ProcessedEvent(event_id="e-new", processed_at=RECENT),
            Digest(user_id="user-1", digest_date=OLD.date(), created_at=OLD),
        ]
    )
    db.commit()

    assert retention.prune(db, now=NOW, settings=settings) == 3 + 4 + 1 + 1

    db.rollback()
    assert set(db.scalars(select(Email.id))) == {waiting.id, recent.id}
    assert set(db.scalars(select(Notification.dedupe_key))) == {"recent"}
    assert db.get(Email, waiting.id).notification_id is None  # its notice went
    assert list(db.scalars(select(ProcessedEvent.event_id))) == ["e-new"]
    assert count(db, Digest) == 0
    [event] = outbox(db, "notify.retention_applied")
    assert event["data"]["deleted"] == {
        "emails": 3,
        "notifications": 4,
        "digests": 1,
        "processed_events": 1,
    }
    assert "pat@example.org" not in str(event)

    assert retention.prune(db, now=NOW, settings=settings) == 0
    assert len(outbox(db, "notify.retention_applied")) == 1  # nothing new to say


def test_a_shorter_period_takes_more_and_too_short_a_period_is_refused(
    db: ServiceSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """90 days is the least: under it a milestone reminder could come twice."""
    add_notice(db, "four-months", NOW - timedelta(days=120))
    db.commit()
    assert retention.prune(db, now=NOW, settings=Settings()) == 0
    assert retention.prune(db, now=NOW, settings=Settings(retention_days=90)) == 1

    monkeypatch.setenv("NOTIFY_RETENTION_DAYS", "30")
    with pytest.raises(ValueError, match="NOTIFY_RETENTION_DAYS"):
        notify_settings.load({})
