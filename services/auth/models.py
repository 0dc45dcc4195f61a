"""The auth service's tables. No other service reads them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from plumbing.sqltypes import UTCDateTime

ORG_KINDS = ("trust", "school")
# What a password reset code was made for: a reset the user asked for, or the
# invitation of a new user (with a longer life). Both set a password alike.
CODE_PURPOSE_RESET = "reset"
CODE_PURPOSE_INVITATION = "invitation"
CODE_PURPOSES = (CODE_PURPOSE_RESET, CODE_PURPOSE_INVITATION)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class Organisation(Base):
    """A trust, or a school (standalone or within a trust)."""

    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    parent_trust_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id"), index=True
    )
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class User(Base):
    """A member of staff of a school or of a trust's central team.

    ``username`` is stored in lower case, which makes it unique regardless of
    case.
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    line_manager_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id"), index=True
    )
    password_hash: Mapped[str | None] = mapped_column(String(100))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    roles: Mapped[list[RoleGrant]] = relationship(
        cascade="all, delete-orphan", order_by="RoleGrant.id", lazy="selectin"
    )


class RoleGrant(Base):
    """One role a user holds at one organisation."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("user_id", "role", "org_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)


class Session(Base):
    """A signed-in session: the parent of a chain of rotated refresh tokens."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    absolute_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))


class RefreshToken(Base):
    """A refresh token, kept only as its SHA-256; used once, then replaced."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PasswordResetCode(Base):
    """A single-use code that sets a password, kept only as its SHA-256:
    asked for by the user (``purpose`` reset) or sent with an invitation."""

    __tablename__ = "password_reset_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16), default=CODE_PURPOSE_RESET)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UndeliveredInvitation(Base):
    """A user whose invitation notify could not take (not running, or too
    slow to answer): auth invites them again later, with a new code, until
    notify takes it or a day has passed (:mod:`services.auth.invitations`)."""

    __tablename__ = "undelivered_invitations"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class LoginAttempt(Base):
    """One login attempt from a source address, for per-address throttling.

    Kept in the database so that every auth instance sees the same count.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_ip_at", "ip", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    success: Mapped[bool] = mapped_column(Boolean)


class ResetRequest(Base):
    """One password-reset request from a source address, for per-address
    throttling across every auth instance. At most one more row than the
    limit is kept per address and window; older rows are deleted."""

    __tablename__ = "reset_requests"
    __table_args__ = (Index("ix_reset_requests_ip_at", "ip", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
