"""Invitations: the email a user gets when an admin creates them.

A user created without a password is invited with a code that sets it (a
:class:`~services.auth.models.PasswordResetCode` of purpose ``invitation``,
valid 7 days, taken by ``reset_password`` like a reset code); a user created
with a password is invited without one, to say that the account exists.

Each invitation is announced by ``auth.invitation_sent`` (``data.with_code``)
in the transaction that makes it, and sent after that transaction commits:
all the invitations of one request go to notify in one ``send_invitations``
call (see :mod:`services.auth.delivery`). The code is in no event.

When notify cannot be reached (not running, or too slow to answer), the
users are kept in ``undelivered_invitations`` and invited again by the
service's timer: each time with a new code (the earlier ones were never
sent, or went only if notify was merely slow; any of them still sets the
password, and using one spends the rest), after 1, 2, 4, ... minutes up to
an hour, for a day. Then the invitation is given up (logged) and an admin
sends it again. A refusal by notify (a rate limit) is not retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, select, update

from plumbing.database import ServiceSession
from services.auth import accounts, delivery, events
from services.auth.models import CODE_PURPOSE_INVITATION, UndeliveredInvitation, User

log = structlog.get_logger()

INVITATION_CODE_TTL = timedelta(days=7)
RETRY_FIRST = timedelta(minutes=1)
RETRY_LONGEST = timedelta(hours=1)
# Beyond this the person has probably been told another way; an admin can
# always send the invitation again.
RETRY_FOR = timedelta(days=1)
RETRY_BATCH = 100
# A timer that took a batch and died leaves it for another try after this.
CLAIM_LEASE = timedelta(minutes=5)


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


def send(
    db: ServiceSession,
    notify: delivery.Notify,
    invited: Sequence[dict[str, Any]],
    *,
    now: datetime,
) -> bool:
    """Hand committed invitations to notify; True if it took every one. When
    notify cannot be reached, keep the users to be invited again; when it
    took them, forget any earlier invitation still waiting (commits)."""
    outcome = delivery.send_invitations(notify, list(invited))
    user_ids = [item["recipient"]["user_id"] for item in invited]
    if outcome == delivery.UNREACHABLE:
        _remember(db, user_ids, now=now)
    elif outcome == delivery.SENT and user_ids:
        db.execute(
            delete(UndeliveredInvitation).where(
                UndeliveredInvitation.user_id.in_(user_ids)
            )
        )
        db.commit()
    return outcome == delivery.SENT


def _remember(db: ServiceSession, user_ids: list[str], *, now: datetime) -> None:
    known = set(
        db.scalars(
            select(UndeliveredInvitation.user_id).where(
                UndeliveredInvitation.user_id.in_(user_ids)
            )
        )
    )
    for user_id in dict.fromkeys(user_ids):
        if user_id not in known:
            db.add(
                UndeliveredInvitation(
                    user_id=user_id,
                    first_failed_at=now,
                    attempts=0,
                    next_attempt_at=now + RETRY_FIRST,
                )
            )
    db.commit()


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th retry failed."""
    return min(RETRY_FIRST * 2**attempts, RETRY_LONGEST)


def _claim(db: ServiceSession, now: datetime) -> list[UndeliveredInvitation]:
    """Take the due invitations for this instance (commits). Rows another
    instance is taking are skipped (``SKIP LOCKED`` on PostgreSQL), and each
    taken row is pushed past ``CLAIM_LEASE``, so no two instances retry one
    user at once."""
    due = (
        select(UndeliveredInvitation.user_id)
        .where(UndeliveredInvitation.next_attempt_at <= now)
        .order_by(UndeliveredInvitation.next_attempt_at)
        .limit(RETRY_BATCH)
        .with_for_update(skip_locked=True)
    )
    taken = list(
        db.scalars(
            update(UndeliveredInvitation)
            .where(
                UndeliveredInvitation.user_id.in_(due.scalar_subquery()),
                UndeliveredInvitation.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + CLAIM_LEASE)
            .returning(UndeliveredInvitation)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
    )
    db.commit()
    return taken


def retry_undelivered(
    db: ServiceSession, notify: delivery.Notify, *, now: datetime
) -> int:
    """Invite again, in one call to notify, the users whose invitation is
    due another try; answers how many notify took. Users deactivated since,
    and invitations older than ``RETRY_FOR``, are given up. Commits."""
    taken = _claim(db, now)
    if not taken:
        return 0
    users = {
        user.id: user
        for user in db.scalars(
            select(User).where(User.id.in_([row.user_id for row in taken]))
        )
    }
    retried, given_up = [], []
    for row in taken:
        user = users.get(row.user_id)
        if user is None or not user.active or now - row.first_failed_at >= RETRY_FOR:
            given_up.append(row.user_id)
        else:
            retried.append(row)
    if given_up:
        log.warning("invitations_given_up", user_ids=given_up)
    invited = [
        issue(db, users[row.user_id], now=now, actor={"user_id": None})
        for row in retried
    ]
    db.commit()
    outcome = delivery.send_invitations(notify, invited)
    done = list(given_up)
    if outcome == delivery.UNREACHABLE:
        for row in retried:
            row.attempts += 1
            row.next_attempt_at = now + retry_delay(row.attempts)
    else:
        done += [row.user_id for row in retried]
    db.execute(
        delete(UndeliveredInvitation).where(UndeliveredInvitation.user_id.in_(done))
    )
    db.commit()
    return len(retried) if outcome == delivery.SENT else 0
