"""Indexes on the dates the retention run deletes by, so that a run that
finds nothing old is a few index look-ups.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = (
    ("processed_events", "processed_at"),
    ("notifications", "created_at"),
    ("emails", "created_at"),
    ("digests", "created_at"),
)


def upgrade() -> None:
    for table, column in INDEXES:
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    for table, column in INDEXES:
        op.drop_index(f"ix_{table}_{column}", table_name=table)
