"""The reviews service's tables. No other service reads them.

``directory_*`` tables are this service's copy of who works where and who
manages whom, kept from the auth service's events (see :mod:`directory`).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plumbing.sqltypes import UTCDateTime

# Review states, in order.
DRAFT = "draft"
OBJECTIVES_AGREED = "objectives_agreed"
INTERIM_REVIEW_DONE = "interim_review_done"
SELF_REVIEW_SUBMITTED = "self_review_submitted"
FINAL_REVIEW_DONE = "final_review_done"
SIGNED_OFF = "signed_off"
CLOSED = "closed"
REVIEW_STATES = (
    DRAFT,
    OBJECTIVES_AGREED,
    INTERIM_REVIEW_DONE,
    SELF_REVIEW_SUBMITTED,
    FINAL_REVIEW_DONE,
    SIGNED_OFF,
    CLOSED,
)

OBJECTIVE_TYPES = ("school_priority", "team", "personal")
PROGRESS_STATUSES = ("on_track", "at_risk", "met", "partially_met", "not_met")
OBJECTIVE_STATUSES = ("not_started", *PROGRESS_STATUSES)
OBSERVATION_TYPES = ("formal", "drop_in", "learning_walk", "work_scrutiny")
# Who besides the observer and the observed may read a shared observation.
VISIBILITIES = ("participants", "reviewer", "leaders")
COMMENT_VISIBILITIES = ("shared", "reviewers")
EVIDENCE_TARGETS = ("review", "objective", "observation")
COMMENT_TARGETS = ("review", "objective")


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class DirectoryOrganisation(Base):
    """A trust or school, as announced by ``auth.organisation_created``."""

    __tablename__ = "directory_organisations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    parent_trust_id: Mapped[str | None] = mapped_column(String(36), index=True)


class DirectoryUser(Base):
    """A member of staff: where they work and who manages them.

    ``versions`` holds, per field, the ``occurred_at`` of the event that set
    it, so events applied in any order leave the latest value.
    """

    __tablename__ = "directory_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(36), index=True)
    line_manager_id: Mapped[str | None] = mapped_column(String(36), index=True)
    given_name: Mapped[str | None] = mapped_column(String(100))
    family_name: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProcessedEvent(Base):
    """An event already applied to the directory (at-least-once delivery)."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Cycle(Base):
    """A review cycle of a school, or of a trust for all its schools."""

    __tablename__ = "cycles"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(200))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    objectives_due: Mapped[date] = mapped_column(Date)
    interim_due: Mapped[date] = mapped_column(Date)
    final_due: Mapped[date] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Review(Base):
    """One member of staff's review in one cycle."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("cycle_id", "reviewee_id"),
        Index("ix_reviews_cycle_org_state", "cycle_id", "org_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    cycle_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"))
    # The reviewee's school (or the trust, for central staff).
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    reviewee_id: Mapped[str] = mapped_column(String(36), index=True)
    reviewer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(32), default=DRAFT)
    interim_notes: Mapped[str | None] = mapped_column(Text)
    self_review_text: Mapped[str | None] = mapped_column(Text)
    self_review_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    final_notes: Mapped[str | None] = mapped_column(Text)
    sign_off_comment: Mapped[str | None] = mapped_column(Text)
    signed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReviewStep(Base):
    """One state change of a review: who, when, and the reason of a reopening."""

    __tablename__ = "review_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    review_id: Mapped[str] = mapped_column(ForeignKey("reviews.id"), index=True)
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    by: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(Text)


class Objective(Base):
    """An objective of a review, with its latest progress status."""

    __tablename__ = "objectives"
    __table_args__ = (Index("ix_objectives_review_status", "review_id", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    review_id: Mapped[str] = mapped_column(ForeignKey("reviews.id"))
    type: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    success_criteria: Mapped[str] = mapped_column(Text)
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(32), default="not_started")
    cpd_record_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProgressUpdate(Base):
    __tablename__ = "progress_updates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    objective_id: Mapped[str] = mapped_column(ForeignKey("objectives.id"), index=True)
    on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Observation(Base):
    """An observation of one member of staff by another; draft until shared."""

    __tablename__ = "observations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    type: Mapped[str] = mapped_column(String(32))
    observer_id: Mapped[str] = mapped_column(String(36), index=True)
    observed_id: Mapped[str] = mapped_column(String(36), index=True)
    observed_on: Mapped[date] = mapped_column(Date)
    focus: Mapped[str] = mapped_column(Text)
    strengths: Mapped[str | None] = mapped_column(Text)
    areas_for_development: Mapped[str | None] = mapped_column(Text)
    actions: Mapped[str | None] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(16))
    shared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ObservationView(Base):
    """Someone other than the author read an observation."""

    __tablename__ = "observation_views"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    observation_id: Mapped[str] = mapped_column(
        ForeignKey("observations.id"), index=True
    )
    viewer_id: Mapped[str] = mapped_column(String(36))
    viewed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Evidence(Base):
    """A file (stored outside the database, by checksum) or a link, attached
    to a review, an objective or an observation."""

    __tablename__ = "evidence"
    __table_args__ = (Index("ix_evidence_target", "target_type", "target_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(36), index=True)
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(8))
    title: Mapped[str | None] = mapped_column(String(200))
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(String(2000))
    added_by: Mapped[str] = mapped_column(String(36))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Comment(Base):
    """A comment on a review or an objective; ``parent_id`` makes threads."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_target", "target_type", "target_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    review_id: Mapped[str] = mapped_column(ForeignKey("reviews.id"), index=True)
    target_type: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[str] = mapped_column(String(36))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("comments.id"))
    author_id: Mapped[str] = mapped_column(String(36))
    visibility: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
