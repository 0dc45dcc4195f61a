"""Organisations, users, roles, sessions, reset codes, login attempts, outbox.

Revision ID: 0001
Revises:
Create Date: 2024-12-03
"""

import sqlalchemy as sa
from alembic import op

from plumbing.outbox import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "parent_trust_id",
            sa.String(36),
            sa.ForeignKey("organisations.id"),
            nullable=True,
        ),
        sa.Column("timezone", sa.String(64), nullable=False),
        _timestamp("created_at"),
        sa.CheckConstraint("kind IN ('trust', 'school')", name="ck_org_kind"),
    )
    op.create_index(
        "ix_organisations_parent_trust_id", "organisations", ["parent_trust_id"]
    )

    op.create_table(
        "users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "org_id", sa.String(36), sa.ForeignKey("organisations.id"), nullable=False
        ),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("given_name", sa.String(100), nullable=False),
        sa.Column("family_name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "line_manager_id", sa.String(36), sa.ForeignKey("users.id"), nullable=True
        ),
        sa.Column("password_hash", sa.String(100), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        _timestamp("locked_until", nullable=True),
        _timestamp("password_changed_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
    )
    op.create_index("ix_users_org_id", "users", ["org_id"])
    op.create_index("ix_users_email", "users", ["email"])
    op.create_index("ix_users_line_manager_id", "users", ["line_manager_id"])

    op.create_table(
        "role_grants",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column(
            "org_id", sa.String(36), sa.ForeignKey("organisations.id"), nullable=False
        ),
        sa.UniqueConstraint("user_id", "role", "org_id"),
    )
    op.create_index("ix_role_grants_user_id", "role_grants", ["user_id"])
    op.create_index("ix_role_grants_org_id", "role_grants", ["org_id"])

    op.create_table(
        "sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        _timestamp("created_at"),
        _timestamp("last_used_at"),
        _timestamp("absolute_expires_at"),
        _timestamp("revoked_at", nullable=True),
        sa.Column("revoke_reason", sa.String(64), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_index("ix_sessions_revoked_at", "sessions", ["revoked_at"])

    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column(
            "session_id", sa.String(36), sa.ForeignKey("sessions.id"), nullable=False
        ),
        _timestamp("created_at"),
        _timestamp("used_at", nullable=True),
    )
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])

    op.create_table(
        "password_reset_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        _timestamp("used_at", nullable=True),
    )
    op.create_index(
        "ix_password_reset_codes_user_id", "password_reset_codes", ["user_id"]
    )

    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ip", sa.String(64), nullable=False),
        _timestamp("at"),
        sa.Column("success", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_login_attempts_ip_at", "login_attempts", ["ip", "at"])

    create_outbox_table(op)


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("login_attempts")
    op.drop_table("password_reset_codes")
    op.drop_table("refresh_tokens")
    op.drop_table("sessions")
    op.drop_table("role_grants")
    op.drop_table("users")
    op.drop_table("organisations")
