"""Forgetting what notify no longer needs, after ``retention_days``.

Notify holds personal data on the school's behalf (who was told what, the
emails' text and addresses), and keeps it only as long as it serves: after
``NOTIFY_RETENTION_DAYS`` (365 by default) a person's notifications, the
emails that have left the queue (sent, failed, suppressed, digested, or
held for a digest that could never go), the digest rows and the record of
handled events are deleted. Queued emails and those being sent are kept
whatever their age.

The period is at least 90 days, longer than any reminder window (review
milestones are reminded at most 60 days ahead), so a reminder whose
notification was pruned cannot be sent again. An event replayed by an
operator after the period would tell its people again.

It runs from the service's timer; with an index on each table's date, a run
that finds nothing costs a few index look-ups. Rows go in batches, each in
its own transaction, so a large first run holds no long locks. Each run that
deleted anything emits ``notify.retention_applied`` with the counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, select

from plumbing.database import ServiceSession
from services.notify import events
from services.notify.models import (
    QUEUED,
    SENDING,
    Digest,
    Email,
    Notification,
    ProcessedEvent,
)
from services.notify.settings import Settings

log = structlog.get_logger()

BATCH = 2000


def _tables(cutoff: datetime) -> list[tuple[str, Any, Any]]:
    """What is deleted: ``(name, key column, condition)``, emails before
    their notifications (an email points at its notification)."""
    return [
        (
            "emails",
            Email.id,
            (Email.created_at < cutoff) & Email.status.not_in((QUEUED, SENDING)),
        ),
        ("notifications", Notification.id, Notification.created_at < cutoff),
        ("digests", Digest.id, Digest.created_at < cutoff),
        (
            "processed_events",
            ProcessedEvent.event_id,
            ProcessedEvent.processed_at < cutoff,
        ),
    ]


def _delete_in_batches(db: ServiceSession, key: Any, condition: Any) -> int:
    deleted = 0
    while True:
        ids = list(db.scalars(select(key).where(condition).limit(BATCH)))
        if not ids:
            db.rollback()
            return deleted
        db.execute(
            delete(key.class_)
            .where(key.in_(ids))
            .execution_options(synchronize_session=False)
        )
        db.commit()
        deleted += len(ids)


def prune(db: ServiceSession, *, now: datetime, settings: Settings) -> int:
    """Delete what is older than the retention period; how many rows."""
    cutoff = now - timedelta(days=settings.retention_days)
    counts = {
        name: _delete_in_batches(db, key, condition)
        for name, key, condition in _tables(cutoff)
    }
    total = sum(counts.values())
    if total:
        db.emit(
            events.RETENTION_APPLIED,
            subject_type="retention",
            subject_id=cutoff.date().isoformat(),
            org_id=None,
            data={"before": cutoff.isoformat(), "deleted": counts},
            actor={"user_id": None},
        )
        db.commit()
        log.info("retention_applied", before=cutoff.isoformat(), **counts)
    return total
