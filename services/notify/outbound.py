"""Emails asked for by RPC (reset codes and invitations, from the auth
service only), and the school admins' view of emails that did not go.

Codes travel only in the RPC and in the queued email's body: never in an
event, a notification or a log line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from plumbing.database import ServiceSession
from plumbing.errors import NotFound
from plumbing.identity import Identity, deny
from services.notify import contacts, events
from services.notify.catalogue import CODE_KINDS, KINDS
from services.notify.exceptions import EmailNotRetryable
from services.notify.messages import forget_code, new_email, over_limit, school_name
from services.notify.models import FAILED, QUEUED, SUPPRESSED, Contact, Email
from services.notify.render import title_and_text, when
from services.notify.schemas import (
    EmailQuerySchema,
    InvitationsSchema,
    ResetSchema,
    load,
)
from services.notify.settings import Settings


def _remember(db: ServiceSession, recipient: dict[str, Any], now: datetime) -> None:
    """An invitation or reset may arrive before auth's event of the user."""
    values = {
        k: recipient.get(k)
        for k in ("org_id", "username", "email", "given_name", "family_name")
    }
    contacts.apply_user(db, recipient["user_id"], values, contacts.stamp(now))


def _transactional(
    db: ServiceSession,
    kind: str,
    recipient: dict[str, Any],
    params: dict[str, Any],
    *,
    expires_at: datetime | None,
    limit: int,
    now: datetime,
    settings: Settings,
) -> Email:
    found = KINDS[kind]
    school = school_name(db, recipient["org_id"])
    values = {
        **params,
        "name": recipient.get("given_name"),
        "username": recipient["username"],
        "school": school or "your school",
        "app_url": settings.app_url,
        "category": found.category,
    }
    title, _ = title_and_text(kind, values)
    status, error = QUEUED, None
    if over_limit(db, recipient["user_id"], limit, now, kind=kind):
        status, error = SUPPRESSED, "Rate limit: too many of these to this person"
    email = new_email(
        db,
        kind=kind,
        category=found.category,
        user_id=recipient["user_id"],
        org_id=recipient["org_id"],
        to_address=recipient["email"],
        subject=title,
        params={**values, "title": title},
        attachments=[],
        status=status,
        now=now,
        settings=settings,
        last_error=error,
        expires_at=expires_at,
    )
    if status == SUPPRESSED:
        forget_code(email)
    return email


def send_password_reset(
    db: ServiceSession, data: Any, *, now: datetime, settings: Settings
) -> dict[str, Any]:
    """Queue a reset code email; commits. ``{"email_id"}``, None when the
    recipient's hourly limit of reset emails is reached."""
    values = load(ResetSchema(), data)
    recipient = values["recipient"]
    _remember(db, recipient, now)
    email = _transactional(
        db,
        "password_reset",
        recipient,
        {"code": values["code"], "expires": when(values["expires_at"], "UTC") + " UTC"},
        expires_at=values["expires_at"],
        limit=settings.resets_per_hour,
        now=now,
        settings=settings,
    )
    db.emit(
        events.RESET_CODE_QUEUED,
        subject_type="user",
        subject_id=recipient["user_id"],
        org_id=recipient["org_id"],
        data={"email_id": email.id, "status": email.status},
    )
    db.commit()
    return {"email_id": email.id if email.status == QUEUED else None}


def send_invitations(
    db: ServiceSession, data: Any, *, now: datetime, settings: Settings
) -> dict[str, Any]:
    """Queue one invitation email per person; commits. ``{"queued"}``."""
    values = load(InvitationsSchema(), {"invitations": data})
    queued = 0
    for invitation in values["invitations"]:
        recipient = invitation["recipient"]
        _remember(db, recipient, now)
        expires = invitation.get("expires_at")
        email = _transactional(
            db,
            "invitation",
            recipient,
            {
                "code": invitation.get("code"),
                "expires": when(expires, "UTC") + " UTC" if expires else None,
            },
            expires_at=expires,
            limit=settings.resets_per_hour,
            now=now,
            settings=settings,
        )
        queued += email.status == QUEUED
        db.flush()
    if values["invitations"]:
        first = values["invitations"][0]["recipient"]
        db.emit(
            events.INVITATIONS_QUEUED,
            subject_type="organisation",
            subject_id=first["org_id"],
            org_id=first["org_id"],
            data={
                "user_ids": [i["recipient"]["user_id"] for i in values["invitations"]],
                "queued": queued,
            },
        )
    db.commit()
    return {"queued": queued}


# -- the admins' view -------------------------------------------------------


def dump_email(db: ServiceSession, email: Email) -> dict[str, Any]:
    contact = db.get(Contact, email.user_id) if email.user_id else None
    return {
        "id": email.id,
        "user_id": email.user_id,
        "recipient_name": (
            " ".join(p for p in (contact.given_name, contact.family_name) if p)
            if contact is not None
            else None
        ),
        "to": email.to_address,
        "org_id": email.org_id,
        "kind": email.kind,
        "category": email.category,
        "subject": email.subject,
        "status": email.status,
        "attempts": email.attempts,
        "last_error": email.last_error,
        "created_at": email.created_at.isoformat(),
        "next_attempt_at": email.next_attempt_at.isoformat()
        if email.next_attempt_at
        else None,
        "sent_at": email.sent_at.isoformat() if email.sent_at else None,
    }


def list_emails(db: ServiceSession, caller: Identity, query: Any) -> dict[str, Any]:
    """A school or trust admin: the emails of their organisations in one
    state (``failed`` unless asked), newest first. Others see none."""
    page = load(EmailQuerySchema(), query)
    orgs = contacts.admin_orgs(caller)
    if page["org_id"] is not None:
        orgs &= {page["org_id"]}
    if not orgs:
        deny(
            db,
            caller,
            subject_type="email",
            subject_id="*",
            action="notify.list_emails",
            org_id=page["org_id"] or caller.org_id,
        )
        return {
            "items": [],
            "total": 0,
            "offset": page["offset"],
            "limit": page["limit"],
        }
    condition = (Email.org_id.in_(sorted(orgs)), Email.status == page["status"])
    items = db.scalars(
        select(Email)
        .where(*condition)
        .order_by(Email.created_at.desc(), Email.id)
        .offset(page["offset"])
        .limit(page["limit"])
    )
    total = db.scalar(select(func.count()).select_from(Email).where(*condition))
    return {
        "items": [dump_email(db, e) for e in items],
        "total": total or 0,
        "offset": page["offset"],
        "limit": page["limit"],
    }


def requeue_email(
    db: ServiceSession, caller: Identity, email_id: Any, *, now: datetime
) -> dict[str, Any]:
    """A school or trust admin of the email's organisation: queue a failed
    or suppressed email again, its attempts counted afresh; commits. Emits
    ``notify.email_requeued``."""
    email = (
        db.get(Email, email_id, with_for_update=True)
        if isinstance(email_id, str) and len(email_id) <= 36
        else None
    )
    if email is None or email.org_id not in contacts.admin_orgs(caller):
        if email is not None:
            deny(
                db,
                caller,
                subject_type="email",
                subject_id=email.id,
                action="notify.requeue_email",
                org_id=email.org_id,
            )
        raise NotFound("No such email")
    if email.status not in (FAILED, SUPPRESSED) or not email.to_address:
        raise EmailNotRetryable()
    if email.kind in CODE_KINDS:
        # Its code may have expired or been replaced: ask auth for a new one.
        raise EmailNotRetryable(
            "A reset code or invitation is not sent again; ask for a new one"
        )
    before = email.status
    email.status = QUEUED
    email.attempts = 0
    email.next_attempt_at = now
    email.last_error = None
    db.emit(
        events.EMAIL_REQUEUED,
        subject_type="email",
        subject_id=email.id,
        org_id=email.org_id,
        changes={"status": {"before": before, "after": QUEUED}},
        data={"user_id": email.user_id, "kind": email.kind},
    )
    db.commit()
    return dump_email(db, email)
