"""Logging in, and changing or resetting a password.

Every login decision is an event with the source IP and user agent. Unknown
user, wrong password, inactive and locked account all raise the same
InvalidCredentials; the reason is only in the ``auth.login_failed`` event.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, func, select

from plumbing.database import ServiceSession
from plumbing.errors import Unauthenticated
from plumbing.identity import Identity
from services.auth import delivery, events, passwords, sessions
from services.auth.exceptions import (
    InvalidCredentials,
    InvalidResetCode,
    LoginThrottled,
    ResetThrottled,
)
from services.auth.models import (
    CODE_PURPOSE_RESET,
    LoginAttempt,
    PasswordResetCode,
    ResetRequest,
    User,
)

LOCK_AFTER_FAILURES = 10
LOCK_DURATION = timedelta(minutes=15)
IP_FAILURE_LIMIT = 20
IP_WINDOW = timedelta(minutes=1)
# Attempts older than this no longer count for anything and are deleted.
ATTEMPT_RETENTION = timedelta(minutes=10)
RESET_CODE_TTL = timedelta(minutes=30)
# Reset requests: per source address, then per account. A school's staff may
# share one address, so the address limit is generous; the account limit
# keeps one person's codes (and their events) few whoever asks.
RESET_IP_LIMIT = 30
RESET_IP_WINDOW = timedelta(minutes=10)
RESET_CODES_PER_ACCOUNT = 5
RESET_ACCOUNT_WINDOW = timedelta(hours=1)
MAX_LOGIN_LENGTH = 254

log = structlog.get_logger()


def login(
    db: ServiceSession,
    *,
    username: object,
    password: object,
    ip: str | None,
    user_agent: str | None,
    secret: str,
    now: datetime,
) -> dict[str, Any]:
    """Check a username and password and open a session; commits.

    LoginThrottled when the address failed more than 20 times in the last
    minute; InvalidCredentials for every other refusal.
    """
    actor = {"user_id": None, "ip": ip, "user_agent": user_agent}
    if ip and _recent_failures(db, ip, now) >= IP_FAILURE_LIMIT:
        db.emit(
            events.LOGIN_THROTTLED,
            subject_type="ip",
            subject_id=ip,
            org_id=None,
            data={"window_seconds": int(IP_WINDOW.total_seconds())},
            actor=actor,
        )
        db.commit()
        log.warning("login_throttled", ip=ip)
        raise LoginThrottled()

    found = _credentials_of(db, username)
    user_id = found.id if found is not None else None
    hashed = found.password_hash if found is not None else None
    # The hash takes a quarter of a second of CPU: end the read transaction
    # first, so that the connection goes back to the pool instead of idling
    # in an open transaction meanwhile. The user is read again, locked, after.
    db.rollback()
    matches = passwords.verify_password(
        password if isinstance(password, str) else "", hashed
    )
    user = None
    if user_id is not None:
        user = db.get(User, user_id, with_for_update=True, populate_existing=True)
        assert user is not None
        actor["user_id"] = user.id
    reason = _refusal(db, user, matches, now=now, actor=actor)
    _record_attempt(db, ip, success=reason is None, now=now)

    if reason is not None:
        db.emit(
            events.LOGIN_FAILED,
            subject_type="user",
            subject_id=user.id if user is not None else "unknown",
            org_id=user.org_id if user is not None else None,
            data={"reason_code": reason},
            actor=actor,
        )
        db.commit()
        log.info("login_failed", reason=reason, user_id=actor["user_id"], ip=ip)
        raise InvalidCredentials()

    assert user is not None and isinstance(password, str)
    return _succeed(db, user, password, ip, user_agent, secret, now, actor)


def _refusal(
    db: ServiceSession,
    user: User | None,
    matches: bool,
    *,
    now: datetime,
    actor: dict[str, Any],
) -> str | None:
    """Why the login is refused (a ``data.reason``), or None to let it in."""
    if user is None:
        return events.REASON_UNKNOWN_USER
    if not user.active:
        return events.REASON_INACTIVE
    if user.locked_until is not None and now < user.locked_until:
        return events.REASON_ACCOUNT_LOCKED
    if matches:
        return None

    user.failed_logins += 1
    if user.failed_logins >= LOCK_AFTER_FAILURES:
        user.locked_until = now + LOCK_DURATION
        user.failed_logins = 0
        db.emit(
            events.ACCOUNT_LOCKED,
            subject_type="user",
            subject_id=user.id,
            org_id=user.org_id,
            data={"locked_until": user.locked_until.isoformat()},
            actor=actor,
        )
        log.warning("account_locked", user_id=user.id)
    return events.REASON_BAD_PASSWORD


def _succeed(
    db: ServiceSession,
    user: User,
    password: str,
    ip: str | None,
    user_agent: str | None,
    secret: str,
    now: datetime,
    actor: dict[str, Any],
) -> dict[str, Any]:
    user.failed_logins = 0
    user.locked_until = None
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    session = sessions.open_session(db, user, ip=ip, user_agent=user_agent, now=now)
    answer = sessions.issue_tokens(db, user, session, secret=secret, now=now)
    db.emit(
        events.LOGIN_SUCCEEDED,
        subject_type="user",
        subject_id=user.id,
        org_id=user.org_id,
        data={"session_id": session.id},
        actor=actor,
    )
    db.commit()
    return answer


def _credentials_of(db: ServiceSession, username: object) -> Any:
    """The id and password hash of the user with this username, or None.

    Only these two columns: the user is read in full, locked, after the
    hash; loading the entity here (and its role grants) was wasted work.
    """
    if not isinstance(username, str) or not 0 < len(username) <= MAX_LOGIN_LENGTH:
        return None
    return db.execute(
        select(User.id, User.password_hash).where(
            User.username == username.strip().lower()
        )
    ).one_or_none()


def _recent_failures(db: ServiceSession, ip: str, now: datetime) -> int:
    return _count_from(
        db, LoginAttempt, ip, now - IP_WINDOW, LoginAttempt.success.is_(False)
    )


def _count_from(
    db: ServiceSession,
    model: type[LoginAttempt] | type[ResetRequest],
    ip: str,
    since: datetime,
    *conditions: Any,
) -> int:
    """How many rows of a per-address table ``ip`` has after ``since``."""
    return db.execute(
        select(func.count())
        .select_from(model)
        .where(model.ip == ip, model.at > since, *conditions)
    ).scalar_one()


def _record_attempt(
    db: ServiceSession, ip: str | None, *, success: bool, now: datetime
) -> None:
    if not ip:
        return
    db.execute(
        delete(LoginAttempt).where(
            LoginAttempt.ip == ip, LoginAttempt.at < now - ATTEMPT_RETENTION
        )
    )
    db.add(LoginAttempt(ip=ip[:64], at=now, success=success))


def change_password(
    db: ServiceSession,
    caller: Identity,
    *,
    current_password: object,
    new_password: object,
    now: datetime,
) -> dict[str, Any]:
    """Set a new password given the current one; ends the user's other
    sessions. Emits ``auth.password_changed`` and ``auth.sessions_revoked``."""
    user = db.get(User, caller.user_id)
    if user is None or not user.active:
        raise Unauthenticated("The account is no longer active")
    if not passwords.verify_password(
        current_password if isinstance(current_password, str) else "",
        user.password_hash,
    ):
        raise InvalidCredentials("The current password is not correct")
    new = passwords.check_policy(new_password, field="new_password")

    _set_password(user, passwords.hash_password(new), now)
    db.emit(
        events.PASSWORD_CHANGED,
        subject_type="user",
        subject_id=user.id,
        org_id=user.org_id,
    )
    sessions.revoke_all(
        db,
        user,
        reason=sessions.REASON_PASSWORD_CHANGED,
        now=now,
        keep=caller.session_id,
    )
    db.commit()
    return {}


def _set_password(user: User, password_hash: str, now: datetime) -> None:
    user.password_hash = password_hash
    user.password_changed_at = now
    user.failed_logins = 0
    user.locked_until = None
    user.updated_at = now


def new_reset_code() -> str:
    """A code a person can type: 16 base32 characters (80 bits) in fours."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii")
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def reset_code_hash(code: str) -> str:
    canonical = "".join(code.split()).replace("-", "").upper()
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def add_code(
    db: ServiceSession, user: User, *, purpose: str, expires_at: datetime, now: datetime
) -> str:
    """Add a new code that sets the user's password; the caller commits, and
    only then hands the code (returned here, stored as its hash) to notify."""
    code = new_reset_code()
    db.add(
        PasswordResetCode(
            code_hash=reset_code_hash(code),
            user_id=user.id,
            purpose=purpose,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return code


def spend_codes(
    db: ServiceSession, user_id: str, *, now: datetime, purpose: str | None = None
) -> None:
    """Mark the user's unused codes (of one purpose, or all) as used."""
    query = select(PasswordResetCode).where(
        PasswordResetCode.user_id == user_id, PasswordResetCode.used_at.is_(None)
    )
    if purpose is not None:
        query = query.where(PasswordResetCode.purpose == purpose)
    for earlier in db.scalars(query):
        earlier.used_at = now


def request_password_reset(
    db: ServiceSession,
    *,
    login: object,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
    notify: delivery.Notify,
) -> dict[str, Any]:
    """Send a reset code to an active user found by username or email.

    Answers ``{}`` either way, so that it tells nobody whether an account
    exists. Earlier unused reset codes of the user stop working; an unused
    invitation code does not (anyone may ask for a reset, and must not be
    able to spoil a new user's invitation). The code is committed, then
    goes only to ``notify.send_password_reset``, never into an event or a
    log line; when notify cannot take it, the code stays and the user may
    ask again.

    ResetThrottled when the address asked more than ``RESET_IP_LIMIT`` times
    in ``RESET_IP_WINDOW`` (an ``auth.password_reset_throttled`` event for
    the first refusal only). An account that had ``RESET_CODES_PER_ACCOUNT``
    codes in the last hour gets no new one, and the answer is the same ``{}``.
    """
    actor = {"user_id": None, "ip": ip, "user_agent": user_agent}
    if ip:
        _count_reset_request(db, ip, now=now, actor=actor)
    user = _find_for_reset(db, login)
    if user is None:
        db.commit()
        return {}
    if _recent_reset_codes(db, user.id, now) >= RESET_CODES_PER_ACCOUNT:
        db.commit()
        log.warning("reset_codes_limited", user_id=user.id, ip=ip)
        return {}
    spend_codes(db, user.id, now=now, purpose=CODE_PURPOSE_RESET)
    expires_at = now + RESET_CODE_TTL
    code = add_code(
        db, user, purpose=CODE_PURPOSE_RESET, expires_at=expires_at, now=now
    )
    db.emit(
        events.PASSWORD_RESET_REQUESTED,
        subject_type="user",
        subject_id=user.id,
        org_id=user.org_id,
        data={"expires_at": expires_at.isoformat()},
        actor=actor,
    )
    db.commit()
    delivery.send_reset_code(notify, user, code, expires_at)
    return {}


def _count_reset_request(
    db: ServiceSession, ip: str, *, now: datetime, actor: dict[str, Any]
) -> None:
    """Record a reset request from ``ip``, or refuse it over the limit.

    Only the request that passes the limit is recorded beyond it and emits an
    event, so that a flood from one address adds neither rows nor audit
    entries; the rest of the window is refused with a log line only.
    """
    ip = ip[:64]
    since = now - RESET_IP_WINDOW
    asked = _count_from(db, ResetRequest, ip, since)
    if asked <= RESET_IP_LIMIT:
        db.execute(
            delete(ResetRequest).where(ResetRequest.ip == ip, ResetRequest.at <= since)
        )
        db.add(ResetRequest(ip=ip, at=now))
        if asked < RESET_IP_LIMIT:
            return
        db.emit(
            events.PASSWORD_RESET_THROTTLED,
            subject_type="ip",
            subject_id=ip,
            org_id=None,
            data={
                "limit": RESET_IP_LIMIT,
                "window_seconds": int(RESET_IP_WINDOW.total_seconds()),
            },
            actor=actor,
        )
        db.commit()
    log.warning("password_reset_throttled", ip=ip)
    raise ResetThrottled()


def _recent_reset_codes(db: ServiceSession, user_id: str, now: datetime) -> int:
    return db.execute(
        select(func.count())
        .select_from(PasswordResetCode)
        .where(
            PasswordResetCode.user_id == user_id,
            PasswordResetCode.purpose == CODE_PURPOSE_RESET,
            PasswordResetCode.created_at > now - RESET_ACCOUNT_WINDOW,
        )
    ).scalar_one()


def _find_for_reset(db: ServiceSession, login: object) -> User | None:
    if not isinstance(login, str) or not 0 < len(login) <= MAX_LOGIN_LENGTH:
        return None
    login = login.strip().lower()
    user = db.scalar(select(User).where(User.username == login))
    if user is None and "@" in login:
        matches = list(
            db.scalars(select(User).where(func.lower(User.email) == login).limit(2))
        )
        user = matches[0] if len(matches) == 1 else None
    return user if user is not None and user.active else None


def reset_password(
    db: ServiceSession,
    *,
    code: object,
    new_password: object,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Set a new password with a reset or invitation code; every unused code
    of the user is then spent and every session of the user ends.
    InvalidResetCode if unknown, used or expired."""
    if not isinstance(code, str) or len(code) > 100:
        raise InvalidResetCode()
    code_hash = reset_code_hash(code)
    if _usable_code(db.get(PasswordResetCode, code_hash), now) is None:
        raise InvalidResetCode()
    new = passwords.check_policy(new_password, field="new_password")
    new_hash = passwords.hash_password(new)

    row = _usable_code(
        db.get(
            PasswordResetCode, code_hash, with_for_update=True, populate_existing=True
        ),
        now,
    )
    user = db.get(User, row.user_id) if row is not None else None
    if row is None or user is None or not user.active:
        raise InvalidResetCode()
    row.used_at = now
    # With a password set, a pending invitation (or reset) code is no use to
    # the user, and would still set the password if the email leaked.
    spend_codes(db, user.id, now=now)
    _set_password(user, new_hash, now)
    actor = {"user_id": user.id, "ip": ip, "user_agent": user_agent}
    db.emit(
        events.PASSWORD_RESET_COMPLETED,
        subject_type="user",
        subject_id=user.id,
        org_id=user.org_id,
        data={"purpose": row.purpose},
        actor=actor,
    )
    sessions.revoke_all(
        db, user, reason=sessions.REASON_PASSWORD_RESET, now=now, actor=actor
    )
    db.commit()
    return {}


def _usable_code(
    row: PasswordResetCode | None, now: datetime
) -> PasswordResetCode | None:
    if row is None or row.used_at is not None or now >= row.expires_at:
        return None
    return row
