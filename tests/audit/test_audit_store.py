"""The chain store on PostgreSQL, in-process: what the database refuses is
the message's fault (dead-lettered, the rest of the batch stored), and values
that need quoting or escaping arrive unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from audit_support import sample_event, scalar
from sqlalchemy import create_engine

from services.audit import crypto
from services.audit.ingest import Ingestor
from services.audit.store import ChainStore


def test_envelopes_the_database_refuses_are_dead_lettered_alone(
    audit_db: str, key_file: Path, amqp: str
) -> None:
    """A NUL character and an over-long org_id fail the batch; retried one by
    one, those two are dead-lettered and the others stored, gaplessly."""
    engine = create_engine(audit_db)
    store = ChainStore(engine, crypto.load_signing_key(key_file))
    ingestor = Ingestor(amqp, store)
    good = [sample_event(n) for n in range(4)]
    nul = sample_event(10, actor={"user_id": "a\x00b"})
    long_org = sample_event(11, org_id="o" * 65)
    try:
        assert ingestor._store([good[0], nul, good[1], long_org, *good[2:]], [])
    finally:
        ingestor._close_dead_connection()
        engine.dispose()
    assert ingestor.stats.stored == 4
    assert scalar(audit_db, "SELECT count(*) FROM dead_letters") == 2
    assert scalar(audit_db, "SELECT max(seq) - count(*) FROM audit_log") == 0


def test_values_that_need_escaping_arrive_unchanged(
    audit_db: str, key_file: Path
) -> None:
    """Backslashes, quotes, tabs, newlines, a literal \\N and non-ASCII text
    in any column are stored as given (the canonical entry and the filter
    columns alike), and the entry still hashes to its stored hash."""
    engine = create_engine(audit_db)
    store = ChainStore(engine, crypto.load_signing_key(key_file))
    awkward = "back\\slash\ttab\nnew\rline \\N \"quote\" 'single' % é \u2028"
    event = sample_event(
        1,
        subject_id=awkward,
        actor={"user_id": awkward[:64], "ip": "\\N", "user_agent": awkward},
    )
    try:
        assert store.append([event]).appended == 1
    finally:
        engine.dispose()
    assert scalar(audit_db, "SELECT actor_user_id FROM audit_log") == awkward[:64]
    assert scalar(audit_db, "SELECT actor_ip FROM audit_log") == "\\N"
    assert scalar(audit_db, "SELECT subject_id FROM audit_log") == awkward
    entry = scalar(audit_db, "SELECT entry FROM audit_log")
    assert json.loads(entry)["event"]["actor"]["user_agent"] == awkward
    assert (
        scalar(audit_db, "SELECT hash FROM audit_log")
        == hashlib.sha256(entry.encode("utf-8")).hexdigest()
    )
