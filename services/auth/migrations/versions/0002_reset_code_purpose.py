"""Reset codes say what they were made for: a reset, or an invitation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing codes were all asked for by their users. The server default
    # stays, so that an instance still running the previous code (during a
    # rolling upgrade) keeps inserting reset codes.
    with op.batch_alter_table("password_reset_codes") as batch:
        batch.add_column(
            sa.Column("purpose", sa.String(16), nullable=False, server_default="reset")
        )
        batch.create_check_constraint(
            "ck_reset_code_purpose", "purpose IN ('reset', 'invitation')"
        )


def downgrade() -> None:
    with op.batch_alter_table("password_reset_codes") as batch:
        batch.drop_constraint("ck_reset_code_purpose", type_="check")
        batch.drop_column("purpose")
