"""The log cannot be changed through the database: triggers refuse UPDATE,
DELETE and TRUNCATE for every role, and the service's role may only insert
and select."""

from __future__ import annotations

import psycopg2
import pytest
from audit_support import sample_event
from sqlalchemy import create_engine

from services.audit import crypto
from services.audit.store import ChainStore

STATEMENTS = {
    "update": "UPDATE {table} SET hash = hash",
    "delete": "DELETE FROM {table}",
    "truncate": "TRUNCATE {table}",
}


@pytest.fixture
def filled_db(audit_db: str, key_file) -> str:
    """A log with a few entries and a checkpoint."""
    store = ChainStore(create_engine(audit_db), crypto.load_signing_key(key_file))
    store.append([sample_event(n) for n in range(3)])
    assert store.checkpoint() == 3
    store.engine.dispose()
    return audit_db


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://")


@pytest.mark.parametrize("table", ["audit_log", "checkpoints"])
@pytest.mark.parametrize("role", ["owner", "audit_writer"])
@pytest.mark.parametrize("statement", sorted(STATEMENTS))
def test_changing_the_log_is_refused_for_owner_and_writer(
    filled_db: str, table: str, role: str, statement: str
) -> None:
    """UPDATE, DELETE and TRUNCATE fail on the log and checkpoints, whoever asks."""
    conn = psycopg2.connect(_dsn(filled_db))
    try:
        with conn.cursor() as cursor:
            if role == "audit_writer":
                cursor.execute("SET ROLE audit_writer")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute(STATEMENTS[statement].format(table=table))
        conn.rollback()
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            assert cursor.fetchone()[0] > 0
    finally:
        conn.close()


def test_writer_role_may_insert_and_select_only(filled_db: str) -> None:
    """audit_writer reads and appends; it cannot alter or disable the triggers."""
    conn = psycopg2.connect(_dsn(filled_db))
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET ROLE audit_writer")
            cursor.execute("SELECT count(*) FROM audit_log")
            assert cursor.fetchone()[0] == 3
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute("DROP TABLE audit_log")
    finally:
        conn.close()


def test_the_service_role_appends_through_the_store(audit_db: str, key_file) -> None:
    """The store works when every connection runs as audit_writer."""
    from services.audit.dependencies import restrict_role

    engine = create_engine(audit_db)
    restrict_role(engine, "audit_writer")
    store = ChainStore(engine, crypto.load_signing_key(key_file))
    result = store.append([sample_event(n) for n in range(5)])
    assert result.appended == 5
    assert store.head()[0] == 5
    engine.dispose()
