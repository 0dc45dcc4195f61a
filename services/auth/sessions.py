"""Sessions and their tokens.

A session starts at login. The client holds a short-lived access token (a JWT
the gateway verifies alone) and an opaque refresh token, stored here only as
its SHA-256. Each refresh marks the token used and issues a new one; a used
token presented again means it was copied, so the whole session is revoked.
A session ends after 30 minutes without a refresh or 12 hours after login.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from plumbing.database import ServiceSession
from plumbing.errors import Forbidden, ValidationFailed
from plumbing.identity import Identity, deny
from plumbing.tokens import issue_access_token
from services.auth import events
from services.auth.exceptions import InvalidRefreshToken
from services.auth.models import RefreshToken, Session, User
from services.auth.roles import scopes_for
from services.auth.schemas import dump_user

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# Revocations older than this concern tokens that have expired anyway.
REVOKED_LOOKBACK = ABSOLUTE_TIMEOUT + timedelta(hours=1)
MAX_TOKEN_LENGTH = 200

REASON_LOGOUT = "logout"
REASON_PASSWORD_CHANGED = "password_changed"
REASON_PASSWORD_RESET = "password_reset"
REASON_DEACTIVATED = "user_deactivated"
REASON_REVOKED = "revoked"
REASON_TOKEN_REUSED = "refresh_token_reused"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_session(
    db: ServiceSession,
    user: User,
    *,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
) -> Session:
    session = Session(
        user_id=user.id,
        created_at=now,
        last_used_at=now,
        absolute_expires_at=now + ABSOLUTE_TIMEOUT,
        ip=ip,
        user_agent=user_agent[:512] if user_agent else None,
    )
    db.add(session)
    db.flush()
    return session


def issue_tokens(
    db: ServiceSession, user: User, session: Session, *, secret: str, now: datetime
) -> dict[str, Any]:
    """A new refresh token for the session and a fresh access token."""
    refresh_token = secrets.token_urlsafe(32)
    db.add(
        RefreshToken(
            token_hash=token_hash(refresh_token), session_id=session.id, created_at=now
        )
    )
    access_token, expires = issue_access_token(
        secret,
        user_id=user.id,
        org_id=user.org_id,
        session_id=session.id,
        scopes=scopes_for(db, user.roles),
        now=now,
    )
    return {
        "access_token": access_token,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": int((expires - now).total_seconds()),
        "user": dump_user(user),
    }


def refresh(
    db: ServiceSession,
    *,
    refresh_token: object,
    ip: str | None,
    user_agent: str | None,
    secret: str,
    now: datetime,
) -> dict[str, Any]:
    """Rotate a refresh token; commits. InvalidRefreshToken if it is unknown,
    used before (which revokes its session), or its session has ended."""
    if not isinstance(refresh_token, str) or len(refresh_token) > MAX_TOKEN_LENGTH:
        raise InvalidRefreshToken()
    token = db.get(RefreshToken, token_hash(refresh_token), with_for_update=True)
    if token is None:
        raise InvalidRefreshToken()
    session = db.get(Session, token.session_id, with_for_update=True)
    assert session is not None
    user = db.get(User, session.user_id)
    assert user is not None
    actor = {"user_id": user.id, "ip": ip, "user_agent": user_agent}

    if session.revoked_at is not None:
        raise InvalidRefreshToken()
    if token.used_at is not None:
        revoke(db, user, [session], reason=REASON_TOKEN_REUSED, now=now, actor=actor)
        db.commit()
        raise InvalidRefreshToken()
    if not session_alive(session, now) or not user.active:
        raise InvalidRefreshToken()

    token.used_at = now
    session.last_used_at = now
    answer = issue_tokens(db, user, session, secret=secret, now=now)
    db.emit(
        events.TOKEN_REFRESHED,
        subject_type="session",
        subject_id=session.id,
        org_id=user.org_id,
        data={"session_id": session.id},
        actor=actor,
    )
    db.commit()
    return answer


def session_alive(session: Session, now: datetime) -> bool:
    return (
        session.revoked_at is None
        and now < session.absolute_expires_at
        and now - session.last_used_at <= IDLE_TIMEOUT
    )


def live_sessions(db: ServiceSession, user_id: str, now: datetime) -> list[Session]:
    """The user's sessions that are neither revoked nor past their 12 hours."""
    return list(
        db.scalars(
            select(Session)
            .where(
                Session.user_id == user_id,
                Session.revoked_at.is_(None),
                Session.absolute_expires_at > now,
            )
            .order_by(Session.created_at)
        )
    )


def revoke(
    db: ServiceSession,
    user: User,
    sessions: Iterable[Session],
    *,
    reason: str,
    now: datetime,
    actor: dict[str, Any] | None = None,
) -> list[str]:
    """End sessions and emit ``auth.sessions_revoked``; the caller commits."""
    ended = []
    for session in sessions:
        if session.revoked_at is None:
            session.revoked_at = now
            session.revoke_reason = reason
            ended.append(session.id)
    if ended:
        db.emit(
            events.SESSIONS_REVOKED,
            subject_type="user",
            subject_id=user.id,
            org_id=user.org_id,
            data={"session_ids": ended, "reason_code": reason},
            actor=actor,
        )
    return ended


def revoke_all(
    db: ServiceSession,
    user: User,
    *,
    reason: str,
    now: datetime,
    keep: str | None = None,
    actor: dict[str, Any] | None = None,
) -> list[str]:
    """End every live session of the user, except ``keep``; the caller commits."""
    sessions = [s for s in live_sessions(db, user.id, now) if s.id != keep]
    return revoke(db, user, sessions, reason=reason, now=now, actor=actor)


def logout(db: ServiceSession, caller: Identity, *, now: datetime) -> dict[str, Any]:
    """End the caller's own session and emit ``auth.logged_out``; commits."""
    session = db.get(Session, caller.session_id) if caller.session_id else None
    if session is None or session.user_id != caller.user_id:
        return {}
    if session.revoked_at is None:
        session.revoked_at = now
        session.revoke_reason = REASON_LOGOUT
        db.emit(
            events.LOGGED_OUT,
            subject_type="session",
            subject_id=session.id,
            org_id=caller.org_id,
            data={"session_id": session.id},
        )
        db.commit()
    return {}


def list_revoked(
    db: ServiceSession, caller: Identity, since: object, *, now: datetime
) -> dict[str, Any]:
    """Sessions revoked since an ISO time; for the gateway's warm-up only."""
    if caller.service != "gateway":
        deny(
            db,
            caller,
            subject_type="session",
            subject_id="*",
            action="auth.list_revoked_sessions",
        )
        raise Forbidden("Only the gateway may list revoked sessions")
    start = _parse_time(since)
    start = max(start, now - REVOKED_LOOKBACK)
    ids = db.scalars(
        select(Session.id)
        .where(Session.revoked_at >= start)
        .order_by(Session.revoked_at)
    )
    return {"session_ids": list(ids), "until": now.isoformat()}


def _parse_time(value: object) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed(fields={"since": ["Not an ISO 8601 time."]}) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
