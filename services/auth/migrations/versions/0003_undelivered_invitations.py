"""Invitations that notify could not take, kept to be sent again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "undelivered_invitations",
        sa.Column(
            "user_id", sa.String(36), sa.ForeignKey("users.id"), primary_key=True
        ),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_undelivered_invitations_next_attempt_at",
        "undelivered_invitations",
        ["next_attempt_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_undelivered_invitations_next_attempt_at", "undelivered_invitations"
    )
    op.drop_table("undelivered_invitations")
