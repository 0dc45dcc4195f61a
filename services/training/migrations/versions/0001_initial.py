"""Organisations and staff (copied from auth), courses, events, sessions,
bookings, attendance, CPD records, evaluations, external requests, absences,
budgets, hours targets, calendar feeds, and the outbox.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from plumbing.outbox import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "absences",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("booking_id", sa.String(length=36), nullable=True),
        sa.Column("external_request_id", sa.String(length=36), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("days", sa.Numeric(precision=5, scale=1), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("cover_needed", sa.Boolean(), nullable=False),
        sa.Column("cover_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("booking_id"),
        sa.UniqueConstraint("external_request_id"),
    )
    op.create_index(op.f("ix_absences_org_id"), "absences", ["org_id"], unique=False)
    op.create_index(op.f("ix_absences_user_id"), "absences", ["user_id"], unique=False)
    op.create_table(
        "budgets",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "year"),
    )
    op.create_table(
        "calendar_feeds",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "courses",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("provider_kind", sa.String(length=16), nullable=False),
        sa.Column("provider_name", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("cpd_hours", sa.Numeric(precision=7, scale=2), nullable=False),
        sa.Column("fee", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("audience", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_courses_org_id"), "courses", ["org_id"], unique=False)
    op.create_table(
        "cpd_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("activity", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("activity_date", sa.Date(), nullable=False),
        sa.Column("hours", sa.Numeric(precision=7, scale=2), nullable=False),
        sa.Column("reflection", sa.Text(), nullable=True),
        sa.Column("evidence_links", sa.JSON(), nullable=False),
        sa.Column("booking_id", sa.String(length=36), nullable=True),
        sa.Column("external_request_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("booking_id"),
    )
    op.create_index(
        "ix_cpd_records_org_date",
        "cpd_records",
        ["org_id", "activity_date"],
        unique=False,
    )
    op.create_index(
        "ix_cpd_records_user_date",
        "cpd_records",
        ["user_id", "activity_date"],
        unique=False,
    )
    op.create_table(
        "external_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("days", sa.Numeric(precision=5, scale=1), nullable=False),
        sa.Column("hours", sa.Numeric(precision=7, scale=2), nullable=False),
        sa.Column("fee", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("travel_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("cover_needed", sa.Boolean(), nullable=False),
        sa.Column("cover_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("intended_impact", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("manager_decided_by", sa.String(length=36), nullable=True),
        sa.Column("lead_decided_by", sa.String(length=36), nullable=True),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_external_requests_org_id"),
        "external_requests",
        ["org_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_external_requests_user_id"),
        "external_requests",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "hours_targets",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("job_role", sa.String(length=32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("hours", sa.Numeric(precision=7, scale=2), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "job_role", "year"),
    )
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_trust_id", sa.String(length=36), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column(
            "cover_daily_rate", sa.Numeric(precision=12, scale=2), nullable=False
        ),
        sa.Column("cpd_lead_approval", sa.Boolean(), nullable=False),
        sa.Column("budget_policy", sa.String(length=8), nullable=False),
        sa.Column("followup_weeks", sa.Integer(), nullable=False),
        sa.Column("synced", sa.Boolean(), nullable=False, server_default="false"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_organisations_parent_trust_id"),
        "organisations",
        ["parent_trust_id"],
        unique=False,
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "staff",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("line_manager_id", sa.String(length=36), nullable=True),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("job_role", sa.String(length=32), nullable=False),
        sa.Column("synced", sa.Boolean(), nullable=False, server_default="false"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_index(
        op.f("ix_staff_line_manager_id"), "staff", ["line_manager_id"], unique=False
    )
    op.create_index(op.f("ix_staff_org_id"), "staff", ["org_id"], unique=False)
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("course_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("facilitator", sa.String(length=200), nullable=True),
        sa.Column("booking_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_events_course_id"), "events", ["course_id"], unique=False)
    op.create_index(op.f("ix_events_org_id"), "events", ["org_id"], unique=False)
    op.create_index(op.f("ix_events_starts_at"), "events", ["starts_at"], unique=False)
    op.create_table(
        "bookings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=36), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waitlist_position", sa.Integer(), nullable=True),
        sa.Column("manager_decided_by", sa.String(length=36), nullable=True),
        sa.Column("lead_decided_by", sa.String(length=36), nullable=True),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        sa.Column("fee", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("cover_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("travel_cost", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("cover_needed", sa.Boolean(), nullable=False),
        sa.Column("ical_sequence", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_bookings_event_status", "bookings", ["event_id", "status"], unique=False
    )
    op.create_index(
        "ix_bookings_org_status", "bookings", ["org_id", "status"], unique=False
    )
    op.create_index(op.f("ix_bookings_user_id"), "bookings", ["user_id"], unique=False)
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("venue", sa.String(length=200), nullable=True),
        sa.Column("online_link", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_sessions_event_id"), "sessions", ["event_id"], unique=False
    )
    op.create_table(
        "attendance",
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("recorded_by", sa.String(length=36), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
        ),
        sa.PrimaryKeyConstraint("booking_id", "session_id"),
    )
    op.create_table(
        "evaluations",
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("will_change", sa.Text(), nullable=False),
        sa.Column("followup_due", sa.Date(), nullable=False),
        sa.Column("impact", sa.Text(), nullable=True),
        sa.Column("impact_rating", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("followup_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("followed_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
        ),
        sa.PrimaryKeyConstraint("booking_id"),
    )
    create_outbox_table(op)


def downgrade() -> None:
    op.drop_table("evaluations")
    op.drop_table("attendance")
    op.drop_index(op.f("ix_sessions_event_id"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_index(op.f("ix_bookings_user_id"), table_name="bookings")
    op.drop_index("ix_bookings_org_status", table_name="bookings")
    op.drop_index("ix_bookings_event_status", table_name="bookings")
    op.drop_table("bookings")
    op.drop_index(op.f("ix_events_starts_at"), table_name="events")
    op.drop_index(op.f("ix_events_org_id"), table_name="events")
    op.drop_index(op.f("ix_events_course_id"), table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_staff_org_id"), table_name="staff")
    op.drop_index(op.f("ix_staff_line_manager_id"), table_name="staff")
    op.drop_table("staff")
    op.drop_table("processed_events")
    op.drop_index(op.f("ix_organisations_parent_trust_id"), table_name="organisations")
    op.drop_table("organisations")
    op.drop_table("hours_targets")
    op.drop_index(op.f("ix_external_requests_user_id"), table_name="external_requests")
    op.drop_index(op.f("ix_external_requests_org_id"), table_name="external_requests")
    op.drop_table("external_requests")
    op.drop_index("ix_cpd_records_user_date", table_name="cpd_records")
    op.drop_index("ix_cpd_records_org_date", table_name="cpd_records")
    op.drop_table("cpd_records")
    op.drop_index(op.f("ix_courses_org_id"), table_name="courses")
    op.drop_table("courses")
    op.drop_table("calendar_feeds")
    op.drop_table("budgets")
    op.drop_index(op.f("ix_absences_user_id"), table_name="absences")
    op.drop_index(op.f("ix_absences_org_id"), table_name="absences")
    op.drop_table("absences")
    op.drop_table("outbox")
