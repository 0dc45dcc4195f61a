"""Directory copy, cycles, reviews, steps, objectives, progress, observations,
views, evidence, comments, processed events, outbox.

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
        "cycles",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("objectives_due", sa.Date(), nullable=False),
        sa.Column("interim_due", sa.Date(), nullable=False),
        sa.Column("final_due", sa.Date(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_cycles_org_id"), "cycles", ["org_id"], unique=False)
    op.create_table(
        "directory_organisations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_trust_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_directory_organisations_parent_trust_id"),
        "directory_organisations",
        ["parent_trust_id"],
        unique=False,
    )
    op.create_table(
        "directory_users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column("line_manager_id", sa.String(length=36), nullable=True),
        sa.Column("given_name", sa.String(length=100), nullable=True),
        sa.Column("family_name", sa.String(length=100), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_directory_users_line_manager_id"),
        "directory_users",
        ["line_manager_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_users_org_id"), "directory_users", ["org_id"], unique=False
    )
    op.create_table(
        "evidence",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("added_by", sa.String(length=36), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_evidence_org_id"), "evidence", ["org_id"], unique=False)
    op.create_index(
        "ix_evidence_target", "evidence", ["target_type", "target_id"], unique=False
    )
    op.create_table(
        "observations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("observer_id", sa.String(length=36), nullable=False),
        sa.Column("observed_id", sa.String(length=36), nullable=False),
        sa.Column("observed_on", sa.Date(), nullable=False),
        sa.Column("focus", sa.Text(), nullable=False),
        sa.Column("strengths", sa.Text(), nullable=True),
        sa.Column("areas_for_development", sa.Text(), nullable=True),
        sa.Column("actions", sa.Text(), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("shared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_observations_observed_id"),
        "observations",
        ["observed_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_observations_observer_id"),
        "observations",
        ["observer_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_observations_org_id"), "observations", ["org_id"], unique=False
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "observation_views",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("observation_id", sa.String(length=36), nullable=False),
        sa.Column("viewer_id", sa.String(length=36), nullable=False),
        sa.Column("viewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["observation_id"],
            ["observations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_observation_views_observation_id"),
        "observation_views",
        ["observation_id"],
        unique=False,
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cycle_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("reviewee_id", sa.String(length=36), nullable=False),
        sa.Column("reviewer_id", sa.String(length=36), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("interim_notes", sa.Text(), nullable=True),
        sa.Column("self_review_text", sa.Text(), nullable=True),
        sa.Column(
            "self_review_submitted_at", sa.DateTime(timezone=True), nullable=True
        ),
        sa.Column("final_notes", sa.Text(), nullable=True),
        sa.Column("sign_off_comment", sa.Text(), nullable=True),
        sa.Column("signed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycles.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cycle_id", "reviewee_id"),
    )
    op.create_index(
        "ix_reviews_cycle_org_state",
        "reviews",
        ["cycle_id", "org_id", "state"],
        unique=False,
    )
    op.create_index(op.f("ix_reviews_org_id"), "reviews", ["org_id"], unique=False)
    op.create_index(
        op.f("ix_reviews_reviewee_id"), "reviews", ["reviewee_id"], unique=False
    )
    op.create_index(
        op.f("ix_reviews_reviewer_id"), "reviews", ["reviewer_id"], unique=False
    )
    op.create_table(
        "comments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("review_id", sa.String(length=36), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("author_id", sa.String(length=36), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["comments.id"],
        ),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["reviews.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_comments_review_id"), "comments", ["review_id"], unique=False
    )
    op.create_index(
        "ix_comments_target", "comments", ["target_type", "target_id"], unique=False
    )
    op.create_table(
        "objectives",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("review_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("success_criteria", sa.Text(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("cpd_record_ids", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["reviews.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_objectives_review_status",
        "objectives",
        ["review_id", "status"],
        unique=False,
    )
    op.create_table(
        "review_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("review_id", sa.String(length=36), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=False),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("by", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["reviews.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_review_steps_review_id"), "review_steps", ["review_id"], unique=False
    )
    op.create_table(
        "progress_updates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("objective_id", sa.String(length=36), nullable=False),
        sa.Column("on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("by", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["objective_id"],
            ["objectives.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_progress_updates_objective_id"),
        "progress_updates",
        ["objective_id"],
        unique=False,
    )
    create_outbox_table(op)


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_index(
        op.f("ix_progress_updates_objective_id"), table_name="progress_updates"
    )
    op.drop_table("progress_updates")
    op.drop_index(op.f("ix_review_steps_review_id"), table_name="review_steps")
    op.drop_table("review_steps")
    op.drop_index("ix_objectives_review_status", table_name="objectives")
    op.drop_table("objectives")
    op.drop_index("ix_comments_target", table_name="comments")
    op.drop_index(op.f("ix_comments_review_id"), table_name="comments")
    op.drop_table("comments")
    op.drop_index(op.f("ix_reviews_reviewer_id"), table_name="reviews")
    op.drop_index(op.f("ix_reviews_reviewee_id"), table_name="reviews")
    op.drop_index(op.f("ix_reviews_org_id"), table_name="reviews")
    op.drop_index("ix_reviews_cycle_org_state", table_name="reviews")
    op.drop_table("reviews")
    op.drop_index(
        op.f("ix_observation_views_observation_id"), table_name="observation_views"
    )
    op.drop_table("observation_views")
    op.drop_table("processed_events")
    op.drop_index(op.f("ix_observations_org_id"), table_name="observations")
    op.drop_index(op.f("ix_observations_observer_id"), table_name="observations")
    op.drop_index(op.f("ix_observations_observed_id"), table_name="observations")
    op.drop_table("observations")
    op.drop_index("ix_evidence_target", table_name="evidence")
    op.drop_index(op.f("ix_evidence_org_id"), table_name="evidence")
    op.drop_table("evidence")
    op.drop_index(op.f("ix_directory_users_org_id"), table_name="directory_users")
    op.drop_index(
        op.f("ix_directory_users_line_manager_id"), table_name="directory_users"
    )
    op.drop_table("directory_users")
    op.drop_index(
        op.f("ix_directory_organisations_parent_trust_id"),
        table_name="directory_organisations",
    )
    op.drop_table("directory_organisations")
    op.drop_index(op.f("ix_cycles_org_id"), table_name="cycles")
    op.drop_table("cycles")
