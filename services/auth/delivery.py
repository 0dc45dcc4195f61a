"""What reaches people by email, through the notify service: password reset
codes and invitations, each by one RPC that auth makes on its own account
(``ServiceRpc("notify", as_service="auth")``), never by an event or a file.

The contract of notify (only the auth service, on its own account, may call
these):

- ``send_password_reset(recipient, code, expires_at)`` answers
  ``{"email_id": str}``, or ``{"email_id": None}`` when notify refuses (a rate
  limit, say);
- ``send_invitations(invitations)``, a list of ``{"recipient", "code",
  "expires_at"}`` (``code`` and ``expires_at`` None for a user who already has
  a password), answers ``{"queued": int}``.

A recipient is ``{user_id, org_id, email, given_name, family_name,
username}``; ``expires_at`` is an ISO 8601 string.

The code travels only in the RPC's arguments: no event and no log line holds
it. Each call is made after the transaction that stored the code committed,
so a notify that is not running, too slow, or failing is logged (with user
ids, never the code) and reported as not sent; nothing is undone. An
invitation that could not reach notify is sent again later
(:mod:`services.auth.invitations`); a reset code is not: the person is
waiting for it now and asks again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import structlog

from plumbing.errors import PlatformError, ServiceTimeout, ServiceUnavailable
from services.auth.models import User

log = structlog.get_logger()


class Notify(Protocol):
    """The part of the notify service auth calls (``self.notify_rpc``)."""

    def send_password_reset(
        self, recipient: dict[str, Any], code: str, expires_at: str
    ) -> dict[str, Any]: ...

    def send_invitations(self, invitations: list[dict[str, Any]]) -> dict[str, Any]: ...


def recipient_of(user: User) -> dict[str, Any]:
    return {
        "user_id": user.id,
        "org_id": user.org_id,
        "email": user.email,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "username": user.username,
    }


def invitation_of(
    user: User, code: str | None, expires_at: datetime | None
) -> dict[str, Any]:
    """One item of ``send_invitations``; without a code for a user who has a
    password (the email then only says that the account exists)."""
    return {
        "recipient": recipient_of(user),
        "code": code,
        "expires_at": expires_at.isoformat() if expires_at is not None else None,
    }


def _failure(error: Exception) -> str:
    """What went wrong, by name only: a remote error's message may quote the
    arguments of the call, and one of them is a code."""
    if isinstance(error, PlatformError):
        return error.code
    return getattr(error, "exc_type", None) or type(error).__name__


def send_reset_code(
    notify: Notify, user: User, code: str, expires_at: datetime
) -> bool:
    """Hand a committed reset code to notify; True if an email was queued."""
    try:
        answer = notify.send_password_reset(
            recipient_of(user), code, expires_at.isoformat()
        )
    except (ServiceUnavailable, ServiceTimeout) as error:
        log.warning(
            "password_reset_code_undelivered", user_id=user.id, error=error.code
        )
        return False
    except Exception as error:  # noqa: BLE001 (the answer is {} whatever happens)
        log.error(
            "password_reset_code_undelivered", user_id=user.id, error=_failure(error)
        )
        return False
    email_id = answer.get("email_id") if isinstance(answer, dict) else None
    if email_id is None:
        log.warning("password_reset_code_refused", user_id=user.id)
        return False
    log.info("password_reset_code_sent", user_id=user.id, email_id=email_id)
    return True


# What became of invitations handed to notify.
SENT = "sent"
# Not running or too slow to answer: worth trying again later.
UNREACHABLE = "unreachable"
# Answered, but did not queue them all (a rate limit, a fault of its own).
REFUSED = "refused"


def send_invitations(notify: Notify, invitations: list[dict[str, Any]]) -> str:
    """Hand committed invitations to notify in one call: SENT if notify
    queued every one of them, else UNREACHABLE or REFUSED."""
    if not invitations:
        return SENT
    user_ids = [item["recipient"]["user_id"] for item in invitations]
    try:
        answer = notify.send_invitations(invitations)
    except (ServiceUnavailable, ServiceTimeout) as error:
        log.warning("invitations_undelivered", user_ids=user_ids, error=error.code)
        return UNREACHABLE
    except Exception as error:  # noqa: BLE001 (the users are created already)
        log.error("invitations_undelivered", user_ids=user_ids, error=_failure(error))
        return REFUSED
    queued = answer.get("queued") if isinstance(answer, dict) else None
    if queued != len(invitations):
        log.warning(
            "invitations_not_all_queued",
            user_ids=user_ids,
            queued=queued,
            expected=len(invitations),
        )
        return REFUSED
    log.info("invitations_sent", count=len(invitations))
    return SENT
