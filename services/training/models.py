"""The training service's tables. No other service reads them.

Money is ``Numeric(12, 2)``, CPD hours ``Numeric(7, 2)``; times are UTC
(shown in the school's time zone by the callers that display them); dates
without a time (CPD activities, absences) are plain dates.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

Money = Numeric(12, 2)
Hours = Numeric(7, 2)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    Not :class:`plumbing.sqltypes.UTCDateTime`: on SQLite this one stores the
    zone offset with the value, and the training files of existing laptops
    hold values in that form, which compare as text.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Organisation(Base):
    """A trust or school as the auth service announced it, with the training
    settings of that school (cover rate, approval and budget rules)."""

    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="school")
    name: Mapped[str] = mapped_column(String(200), default="")
    parent_trust_id: Mapped[str | None] = mapped_column(String(36), index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    cover_daily_rate: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    cpd_lead_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    # "warn": an approval past the budget answers a warning; "refuse": it fails.
    budget_policy: Mapped[str] = mapped_column(String(8), default="warn")
    followup_weeks: Mapped[int] = mapped_column(Integer, default=6)
    # True once auth's facts (kind, trust, time zone) have been copied in.
    synced: Mapped[bool] = mapped_column(Boolean, default=False)


class Staff(Base):
    """Who works where and who manages whom: a local copy fed by the auth
    service's ``auth.user_created`` and ``auth.user_updated`` events.
    ``department`` and ``job_role`` are kept by the training service."""

    __tablename__ = "staff"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    line_manager_id: Mapped[str | None] = mapped_column(String(36), index=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    department: Mapped[str | None] = mapped_column(String(100))
    job_role: Mapped[str] = mapped_column(String(32), default="staff")
    # True once auth's facts (school, line manager, name) have been copied in.
    synced: Mapped[bool] = mapped_column(Boolean, default=False)


class ProcessedEvent(Base):
    """Ids of events already handled, so that a redelivery changes nothing."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    provider_kind: Mapped[str] = mapped_column(String(16), default="internal")
    provider_name: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100))
    cpd_hours: Mapped[Decimal] = mapped_column(Hours)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    audience: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Event(Base):
    """One run of a course, with its sessions and places."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    course_id: Mapped[str] = mapped_column(ForeignKey("courses.id"), index=True)
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    capacity: Mapped[int] = mapped_column(Integer)
    facilitator: Mapped[str | None] = mapped_column(String(200))
    booking_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The first session's start and the last one's end, kept with the sessions.
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    course: Mapped[Course] = relationship(lazy="joined")
    sessions: Mapped[list[Session]] = relationship(
        order_by="Session.starts_at",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    venue: Mapped[str | None] = mapped_column(String(200))
    online_link: Mapped[str | None] = mapped_column(String(500))


class Booking(Base):
    """A member of staff's place (or request for one) on an event.

    ``status``: ``pending_manager``, ``pending_cpd_lead``, ``booked``,
    ``waitlisted``, ``declined``, ``expired``, ``cancelled``.
    ``waitlist_position`` orders the waitlist by the time each joined it.
    """

    __tablename__ = "bookings"
    __table_args__ = (
        Index("ix_bookings_event_status", "event_id", "status"),
        Index("ix_bookings_org_status", "org_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    org_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[str] = mapped_column(String(36))
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    waitlist_position: Mapped[int | None] = mapped_column(Integer)
    manager_decided_by: Mapped[str | None] = mapped_column(String(36))
    lead_decided_by: Mapped[str | None] = mapped_column(String(36))
    decline_reason: Mapped[str | None] = mapped_column(Text)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    cover_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    travel_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    cover_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    ical_sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    event: Mapped[Event] = relationship(lazy="joined")


class Attendance(Base):
    __tablename__ = "attendance"

    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    recorded_by: Mapped[str] = mapped_column(String(36))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CpdRecord(Base):
    """One professional development activity of one person.

    ``kind``: internal (from a completed event), external or informal;
    ``activity``: course, conference, reading, webinar, coaching, visit, other.
    """

    __tablename__ = "cpd_records"
    __table_args__ = (
        Index("ix_cpd_records_org_date", "org_id", "activity_date"),
        Index("ix_cpd_records_user_date", "user_id", "activity_date"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36))
    org_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))
    activity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    activity_date: Mapped[date] = mapped_column(Date)
    hours: Mapped[Decimal] = mapped_column(Hours)
    reflection: Mapped[str | None] = mapped_column(Text)
    evidence_links: Mapped[list[str]] = mapped_column(JSON, default=list)
    booking_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    external_request_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Evaluation(Base):
    __tablename__ = "evaluations"

    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"), primary_key=True)
    rating: Mapped[int] = mapped_column(Integer)
    will_change: Mapped[str] = mapped_column(Text, default="")
    followup_due: Mapped[date] = mapped_column(Date)
    impact: Mapped[str | None] = mapped_column(Text)
    impact_rating: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    followup_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    followed_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ExternalRequest(Base):
    """A request to attend training run elsewhere; decided like a booking."""

    __tablename__ = "external_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    provider: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    days: Mapped[Decimal] = mapped_column(Numeric(5, 1))
    hours: Mapped[Decimal] = mapped_column(Hours)
    fee: Mapped[Decimal] = mapped_column(Money)
    travel_cost: Mapped[Decimal] = mapped_column(Money)
    cover_needed: Mapped[bool] = mapped_column(Boolean)
    cover_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    rationale: Mapped[str] = mapped_column(Text)
    intended_impact: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    manager_decided_by: Mapped[str | None] = mapped_column(String(36))
    lead_decided_by: Mapped[str | None] = mapped_column(String(36))
    decline_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Absence(Base):
    """Time out of school for professional development, with its cover."""

    __tablename__ = "absences"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    booking_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    external_request_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    days: Mapped[Decimal] = mapped_column(Numeric(5, 1))
    reason: Mapped[str] = mapped_column(Text)
    cover_needed: Mapped[bool] = mapped_column(Boolean)
    cover_cost: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Budget(Base):
    """A school's CPD budget for an academic year (``year`` 2030 = 2030/31)."""

    __tablename__ = "budgets"

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Money)


class HoursTarget(Base):
    """CPD hours expected of a job role in an organisation for a year."""

    __tablename__ = "hours_targets"

    org_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_role: Mapped[str] = mapped_column(String(32), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    hours: Mapped[Decimal] = mapped_column(Hours)


class CalendarFeed(Base):
    """A user's private calendar feed, found by the SHA-256 of its token."""

    __tablename__ = "calendar_feeds"
    __table_args__ = (UniqueConstraint("token_hash"),)

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
