"""The append-only audit log, its chain head, checkpoints, subject keys,
dead letters and the outbox.

On PostgreSQL: triggers refuse UPDATE, DELETE and TRUNCATE on ``audit_log``
and ``checkpoints`` for every role, the owner included, and the role
``audit_writer`` (created if missing, NOLOGIN: a deployment grants it to the
service's login role) may only INSERT and SELECT on them.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op

from plumbing.outbox import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
APPEND_ONLY = ("audit_log", "checkpoints")
WRITER_ROLE = "audit_writer"


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", BigId, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("org_id", sa.String(64)),
        sa.Column("actor_user_id", sa.String(64)),
        sa.Column("actor_ip", sa.String(64)),
        sa.Column("subject_type", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_type_seq", "audit_log", ["type", "seq"])
    op.create_index("ix_audit_log_org_seq", "audit_log", ["org_id", "seq"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject_type", "subject_id"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor_user_id"])

    op.create_table(
        "chain_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", BigId, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.execute(f"INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '{'0' * 64}')")

    op.create_table(
        "checkpoints",
        sa.Column("seq", BigId, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("signed_at", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_table(
        "subject_keys",
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False, unique=True),
        sa.Column("key", sa.LargeBinary),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True)),
        sa.Column("erased_by", sa.String(64)),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("message_id", sa.String(200)),
        sa.Column("exchange", sa.String(200)),
        sa.Column("routing_key", sa.String(200)),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
    )
    create_outbox_table(op)

    if op.get_bind().dialect.name == "postgresql":
        _append_only_triggers()
        _writer_role()


def _append_only_triggers() -> None:
    op.execute(
        """
        CREATE FUNCTION audit_refuse_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the audit log is append-only: % on % is refused',
                TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )


def _writer_role() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                CREATE ROLE {WRITER_ROLE} NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- made by a concurrent migration of another database
        END
        $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {WRITER_ROLE}")
    op.execute(f"GRANT SELECT, INSERT ON audit_log, checkpoints TO {WRITER_ROLE}")
    op.execute(f"GRANT SELECT, INSERT ON dead_letters TO {WRITER_ROLE}")
    op.execute(f"GRANT SELECT, UPDATE ON chain_head TO {WRITER_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON subject_keys TO {WRITER_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON outbox TO {WRITER_ROLE}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {WRITER_ROLE}")


def downgrade() -> None:
    raise NotImplementedError("the audit log is never dropped by a migration")
