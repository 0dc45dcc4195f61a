"""Invitations: the email a user gets when an admin creates them.

A user created without a password is invited with a code that sets it (a
:class:`~services.auth.models.PasswordResetCode` of purpose ``invitation``,
valid 7 days, taken by ``reset_password`` like a reset code); a user created
with a password is invited without one, to say that the account exists.

Each invitation is announced by ``auth.invitation_sent`` (``data.with_code``)
in the transaction that makes it, and sent after that transaction commits:
all the invitations of one request go to notify in one ``send_invitations``
call (see :mod:`services.auth.delivery`). The code is in no event.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from plumbing.database import ServiceSession
from services.auth import accounts, delivery, events
from services.auth.models import CODE_PURPOSE_INVITATION, User

INVITATION_CODE_TTL = timedelta(days=7)


def issue(
    db: ServiceSession,
    user: User,
    *,
    now: datetime,
    actor: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Make the user's invitation (with a new code if they have no password)
    and emit ``auth.invitation_sent``; the caller commits, then sends it with
    :func:`services.auth.delivery.send_invitations`. Earlier codes are left
    alone (:func:`services.auth.users.send_invitation` spends them first).
    """
    code: str | None = None
    expires_at: datetime | None = None
    if user.password_hash is None:
        expires_at = now + INVITATION_CODE_TTL
        code = accounts.add_code(
            db, user, purpose=CODE_PURPOSE_INVITATION, expires_at=expires_at, now=now
        )
    db.emit(
        events.INVITATION_SENT,
        subject_type="user",
        subject_id=user.id,
        org_id=user.org_id,
        data={"with_code": code is not None},
        actor=actor,
    )
    return delivery.invitation_of(user, code, expires_at)
