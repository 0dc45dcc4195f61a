"""Reminders and digests, run from the service's timer.

- The day before a session: every person booked on it, once. Each run asks
  training (``sessions_starting``) for the sessions starting in the next 24
  hours, so a run missed while the service was down is made up by the next.
- ``milestone_days`` before a review milestone: every person who still has a
  step to take for it, once (``reviews.milestones_due``).
- From ``digest_hour`` (UTC) each day: one digest email per person who chose
  digests and has emails held for it.

"Once" holds across restarts and instances because each reminder is a
notification whose ``dedupe_key`` (``session:<id>``,
``milestone:<review>:<milestone>``) is unique per person in the database,
and each digest a row unique per person and day. Every reminder commits on
its own: a repeat fails only itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from plumbing.database import ServiceSession
from services.notify import events
from services.notify.catalogue import KINDS, MILESTONE_LABELS
from services.notify.messages import name_of, new_email, tell
from services.notify.models import (
    DIGESTED,
    HELD,
    QUEUED,
    Contact,
    Digest,
    Email,
)
from services.notify.render import day, session_line, title_and_text, when
from services.notify.settings import Settings

log = structlog.get_logger()

PAGE = 500
DAY = timedelta(hours=24)


def _once(db: ServiceSession, **kwargs: Any) -> bool:
    """Tell one person unless they were told under this key; commits."""
    try:
        notification = tell(db, **kwargs)
        db.commit()
    except IntegrityError:
        db.rollback()
        return False
    return notification is not None


def _pages(call: Any, **kwargs: Any) -> Any:
    offset = 0
    while True:
        page = call(offset=offset, limit=PAGE, **kwargs)
        yield from page["items"]
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return


def session_reminders(
    db: ServiceSession, training: Any, *, now: datetime, settings: Settings
) -> int:
    """Remind those booked on sessions starting within a day; how many told."""
    told = 0
    sessions = list(
        _pages(
            training.sessions_starting,
            start=now.isoformat(),
            end=(now + DAY).isoformat(),
        )
    )
    for session in sessions:
        timezone = session.get("timezone")
        params = {
            "course": session.get("title") or "your training",
            "starts": when(session["starts_at"], timezone),
            "place": session.get("venue") or session.get("online_link"),
            "sessions": [session_line(session, timezone)],
            "school": session.get("org_name") or "",
        }
        for user_id in session["user_ids"]:
            told += _once(
                db,
                user_id=user_id,
                kind="session_reminder",
                params=params,
                dedupe_key=f"session:{session['session_id']}",
                org_id=session.get("org_id"),
                now=now,
                settings=settings,
                subject_type="event",
                subject_id=session["event_id"],
                link=f"/api/v1/training/events/{session['event_id']}",
            )
    return told


def milestone_reminders(
    db: ServiceSession, reviews: Any, *, now: datetime, settings: Settings
) -> int:
    """Remind those with a step left before a milestone; how many told."""
    told = 0
    items = list(
        _pages(
            reviews.milestones_due,
            today=now.date().isoformat(),
            days=settings.milestone_days,
        )
    )
    for item in items:
        for user_id in item["user_ids"]:
            reviewee = item.get("reviewee_id")
            params = {
                "cycle": item.get("cycle_name") or "this cycle",
                "milestone": MILESTONE_LABELS.get(item["milestone"], item["milestone"]),
                "due_on": day(item["due_on"]),
                "who": name_of(db, reviewee)
                if reviewee and reviewee != user_id
                else None,
                "school": item.get("org_name") or "",
            }
            told += _once(
                db,
                user_id=user_id,
                kind="milestone_reminder",
                params=params,
                dedupe_key=f"milestone:{item['review_id']}:{item['milestone']}",
                org_id=item.get("org_id"),
                now=now,
                settings=settings,
                subject_type="review",
                subject_id=item["review_id"],
                link=f"/api/v1/reviews/reviews/{item['review_id']}",
            )
    return told


def send_digests(db: ServiceSession, *, now: datetime, settings: Settings) -> int:
    """From the digest hour on, one digest per person with held emails;
    how many digests were queued. Each is claimed by a row unique per person
    and day before it is made, so two instances never both make it."""
    if now.hour < settings.digest_hour:
        return 0
    today = now.date()
    people = list(
        db.scalars(select(Email.user_id).where(Email.status == HELD).distinct())
    )
    db.rollback()
    made = 0
    for user_id in people:
        if user_id is None:
            continue
        digest = Digest(user_id=user_id, digest_date=today, created_at=now)
        db.add(digest)
        try:
            db.flush()
        except IntegrityError:
            db.rollback()
            continue
        made += digest_for(db, user_id, digest, now=now, settings=settings)
    return made


def digest_for(
    db: ServiceSession,
    user_id: str,
    digest: Digest,
    *,
    now: datetime,
    settings: Settings,
) -> int:
    """Fold a person's held emails into one digest email, recorded on
    today's ``digest`` row (in the session); commits. 1 if one was queued."""
    held = list(
        db.scalars(
            select(Email)
            .where(Email.user_id == user_id, Email.status == HELD)
            .order_by(Email.created_at, Email.id)
            .with_for_update()
        )
    )
    contact = db.get(Contact, user_id)
    if not held or contact is None or not contact.email:
        db.commit()
        return 0
    items = [{"title": e.subject, "text": _summary(e)} for e in held]
    attachments = []
    for number, email in enumerate(held, start=1):
        for attachment in email.attachments or ():
            attachments.append(
                {**attachment, "filename": f"{number}-{attachment.get('filename')}"}
            )
    title, _ = title_and_text("digest", {"count": len(items)})
    # A digest is one email a day by construction: the hourly limit, which
    # held some of its items back, does not apply to it.
    email = new_email(
        db,
        kind="digest",
        category=KINDS["digest"].category,
        user_id=user_id,
        org_id=contact.org_id,
        to_address=contact.email,
        subject=title,
        params={
            "name": contact.given_name,
            "school": "",
            "app_url": settings.app_url,
            "title": title,
            "items": items,
            "attachments": attachments,
            "count": len(items),
        },
        attachments=attachments,
        status=QUEUED,
        now=now,
        settings=settings,
    )
    for held_email in held:
        held_email.status = DIGESTED
        held_email.digest_id = email.id
    digest.email_id = email.id
    db.emit(
        events.DIGEST_QUEUED,
        subject_type="email",
        subject_id=email.id,
        org_id=contact.org_id,
        data={"user_id": user_id, "items": len(items)},
        actor={"user_id": None},
    )
    db.commit()
    log.info("digest_queued", user_id=user_id, items=len(items))
    return 1


def _summary(email: Email) -> str:
    """The first paragraph of a held email's text, after the greeting."""
    paragraphs = [p.strip() for p in email.text_body.split("\n\n") if p.strip()]
    body = (
        paragraphs[1] if len(paragraphs) > 1 else (paragraphs[0] if paragraphs else "")
    )
    return " ".join(body.split())[:500]
