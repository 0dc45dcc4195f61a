"""Tables of the audit database.

``audit_log`` and ``checkpoints`` are append-only on PostgreSQL (triggers
refuse UPDATE, DELETE and TRUNCATE; see the first migration). ``chain_head``
is the single row that serialises appends across instances. ``subject_keys``
sits outside the chain so that a subject's key can be destroyed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plumbing.outbox import OUTBOX  # noqa: F401 (the outbox is part of this schema)


class Base(DeclarativeBase):
    pass


BigId = BigInteger().with_variant(Integer, "sqlite")


class LogEntry(Base):
    """One event in the chain. ``entry`` holds the canonical JSON that
    ``hash`` is computed over; the other columns are copies for filtering."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    org_id: Mapped[str | None] = mapped_column(String(64))
    actor_user_id: Mapped[str | None] = mapped_column(String(64))
    actor_ip: Mapped[str | None] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    entry: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_log_type_seq", "type", "seq"),
        Index("ix_audit_log_org_seq", "org_id", "seq"),
        Index("ix_audit_log_subject", "subject_type", "subject_id"),
        Index("ix_audit_log_actor", "actor_user_id"),
    )


class ChainHead(Base):
    """The last appended entry: one row (id 1), locked by every append."""

    __tablename__ = "chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigId)
    hash: Mapped[str] = mapped_column(String(64))


class Checkpoint(Base):
    """A signed (seq, hash, time) statement; the key is not in the database."""

    __tablename__ = "checkpoints"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))


class SubjectKey(Base):
    """The AES-256-GCM key of one data subject; ``key`` is NULL once erased."""

    __tablename__ = "subject_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), unique=True)
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    erased_by: Mapped[str | None] = mapped_column(String(64))


class DeadLetter(Base):
    """A message that could not be stored; its body went to the dead-letter
    queue and is deliberately not kept here (it may hold personal values)."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(200))
    exchange: Mapped[str | None] = mapped_column(String(200))
    routing_key: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    body_sha256: Mapped[str] = mapped_column(String(64))
