"""The in-app notifications of one person: list, mark read, mark all read.

Each person reaches only their own. Another person's notification is
answered NotFound (whether it exists is nobody else's business) after an
``authz.denied`` event, as everywhere on the platform.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from plumbing.database import ServiceSession, rows_matched
from plumbing.errors import NotFound
from plumbing.identity import Identity, deny
from services.notify.models import Notification
from services.notify.schemas import InboxSchema, load


def dump(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "category": notification.category,
        "kind": notification.kind,
        "title": notification.title,
        "body": notification.body,
        "link": notification.link,
        "subject": (
            {"type": notification.subject_type, "id": notification.subject_id}
            if notification.subject_type
            else None
        ),
        "created_at": notification.created_at.isoformat(),
        "read_at": notification.read_at.isoformat() if notification.read_at else None,
    }


def list_notifications(
    db: ServiceSession, caller: Identity, query: Any
) -> dict[str, Any]:
    """``{items, total, unread}``: unread first, newest first within each."""
    page = load(InboxSchema(), query)
    mine = Notification.user_id == caller.user_id
    condition = [mine]
    if page["unread_only"]:
        condition.append(Notification.read_at.is_(None))
    items = db.scalars(
        select(Notification)
        .where(*condition)
        .order_by(
            Notification.read_at.is_(None).desc(),
            Notification.created_at.desc(),
            Notification.id,
        )
        .offset(page["offset"])
        .limit(page["limit"])
    )
    total = db.scalar(select(func.count()).select_from(Notification).where(*condition))
    unread = db.scalar(
        select(func.count())
        .select_from(Notification)
        .where(mine, Notification.read_at.is_(None))
    )
    return {
        "items": [dump(n) for n in items],
        "total": total or 0,
        "unread": unread or 0,
        "offset": page["offset"],
        "limit": page["limit"],
    }


def mark_read(
    db: ServiceSession, caller: Identity, notification_id: Any, *, now: datetime
) -> dict[str, Any]:
    """Mark one of the caller's notifications read; commits."""
    notification = (
        db.get(Notification, notification_id, with_for_update=True)
        if isinstance(notification_id, str) and len(notification_id) <= 36
        else None
    )
    if notification is None or notification.user_id != caller.user_id:
        if notification is not None:
            deny(
                db,
                caller,
                subject_type="notification",
                subject_id=notification.id,
                action="notify.mark_read",
                org_id=notification.org_id,
            )
        raise NotFound("No such notification")
    if notification.read_at is None:
        notification.read_at = now
    db.commit()
    return dump(notification)


def mark_all_read(
    db: ServiceSession, caller: Identity, *, now: datetime
) -> dict[str, Any]:
    """Mark every unread notification of the caller read; commits."""
    result = db.execute(
        update(Notification)
        .where(Notification.user_id == caller.user_id, Notification.read_at.is_(None))
        .values(read_at=now)
    )
    db.commit()
    return {"marked": rows_matched(result)}
