"""Password-reset requests per source address, for throttling them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reset_requests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reset_requests_ip_at", "reset_requests", ["ip", "at"])


def downgrade() -> None:
    op.drop_index("ix_reset_requests_ip_at", "reset_requests")
    op.drop_table("reset_requests")
