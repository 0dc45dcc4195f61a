"""Ingestion by the audit service running as its own process: every event
stored once, duplicates and bad messages handled, personal values never in
clear, and the service surviving a kill -9, a broker cut, a database outage
and a second instance."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from audit_support import (
    Publisher,
    TcpProxy,
    assert_all_stored_once,
    queue_depth,
    sample_event,
    scalar,
    stored_event_ids,
    wait_until,
)

from services.audit.ingest import DEAD_LETTER_QUEUE


def _publish(amqp: str, count: int, start: int = 0) -> list[str]:
    publisher = Publisher(amqp)
    for n in range(start, start + count):
        publisher.publish(sample_event(n))
    publisher.close()
    return publisher.published


def _wait_stored(db_url: str, count: int, timeout: float) -> None:
    wait_until(
        lambda: scalar(db_url, "SELECT count(*) FROM audit_log") >= count,
        timeout,
        f"{count} stored entries",
    )


def test_duplicates_are_one_entry_and_bad_messages_are_dead_lettered(
    start_audit, amqp: str, audit_db: str, key_file: Path
) -> None:
    """The same event five times is one entry; unparseable and invalid messages
    go to the dead-letter queue, are counted, and do not block the events after."""
    start_audit()
    publisher = Publisher(amqp)
    twice = sample_event(1)
    for _ in range(5):
        publisher.publish(twice)
    publisher.publish_raw(b"{not json")
    invalid = sample_event(2)
    invalid["type"] = "Not A Type"
    publisher.publish_raw(json.dumps(invalid).encode())
    after = [sample_event(n) for n in range(3, 13)]
    for event in after:
        publisher.publish(event)
    publisher.close()

    _wait_stored(audit_db, 11, 20)
    wait_until(lambda: queue_depth(amqp, DEAD_LETTER_QUEUE) == 2, 10, "dead letters")
    time.sleep(0.5)
    assert sorted(stored_event_ids(audit_db)) == sorted(
        {twice["event_id"], *(e["event_id"] for e in after)}
    )
    assert scalar(audit_db, "SELECT count(*) FROM dead_letters") == 2
    reasons = scalar(
        audit_db, "SELECT string_agg(reason, ',' ORDER BY reason) FROM dead_letters"
    )
    assert reasons == "invalid_envelope,unparseable"
    assert queue_depth(amqp, "audit.all_events") == 0
    assert_all_stored_once(audit_db, publisher.published, key_file)


def test_dead_letters_are_listed_by_the_cli(
    start_audit, amqp: str, audit_db: str, key_file: Path
) -> None:
    """Operators see the dead-letter count and reasons from the command line."""
    start_audit()
    publisher = Publisher(amqp)
    publisher.publish_raw(b"\xff\xfe")
    publisher.close()
    wait_until(
        lambda: scalar(audit_db, "SELECT count(*) FROM dead_letters"), 15, "dead letter"
    )
    done = subprocess.run(
        [".venv/bin/python", "-m", "services.audit.cli", "dead-letters"],
        env={"AUDIT_DATABASE_URL": audit_db, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "1 dead-lettered message(s)" in done.stdout
    assert "unparseable" in done.stdout


def test_personal_values_never_reach_the_log_table_in_clear(
    start_audit, amqp: str, audit_db: str, key_file: Path
) -> None:
    """A dump of audit_log holds no seeded name, email or comment, yet the
    chain verifies."""
    start_audit()
    seeded = [
        "Philippa Quenby-Struthers",
        "p.quenby@school-a.example",
        "Lovely lesson on fractions",
    ]
    publisher = Publisher(amqp)
    publisher.publish(
        sample_event(
            1,
            type="auth.user_created",
            changes={
                "given_name": {"before": None, "after": "Philippa"},
                "family_name": {"before": None, "after": "Quenby-Struthers"},
                "email": {"before": None, "after": seeded[1]},
            },
            data={"name": seeded[0]},
        )
    )
    publisher.publish(
        sample_event(
            2,
            type="reviews.observation_recorded",
            subject_type="observation",
            subject_id="obs-1",
            data={"user_id": "u1", "comment": seeded[2]},
        )
    )
    publisher.close()
    _wait_stored(audit_db, 2, 20)
    dump = subprocess.run(
        [
            "pg_dump",
            "--data-only",
            "--table=audit_log",
            urlparse(audit_db)._replace(scheme="postgresql").geturl(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dump.returncode == 0, dump.stderr
    assert "auth.user_created" in dump.stdout
    for value in [*seeded, "Philippa", "Quenby"]:
        assert value not in dump.stdout
    assert_all_stored_once(audit_db, publisher.published, key_file)


def test_kill_minus_nine_during_a_burst_loses_nothing(
    start_audit, amqp: str, audit_db: str, key_file: Path
) -> None:
    """10,000 events; the audit process is killed with SIGKILL mid-burst and
    started again: every event stored exactly once, chain verifies."""
    first = start_audit()
    published: list[str] = []
    publisher = threading.Thread(
        target=lambda: published.extend(_publish(amqp, 10_000))
    )
    publisher.start()
    wait_until(
        lambda: scalar(audit_db, "SELECT count(*) FROM audit_log") > 500, 60, "progress"
    )
    first.kill()
    publisher.join(120)
    assert len(published) == 10_000
    start_audit()
    _wait_stored(audit_db, 10_000, 90)
    time.sleep(0.5)
    assert_all_stored_once(audit_db, published, key_file)
    assert scalar(audit_db, "SELECT count(*) FROM checkpoints") >= 10


def test_two_instances_make_one_gapless_chain(
    start_audit, amqp: str, audit_db: str, key_file: Path
) -> None:
    """Two audit processes on one queue and one database: no gap, no duplicate."""
    start_audit()
    start_audit()
    published = _publish(amqp, 4000)
    _wait_stored(audit_db, 4000, 60)
    time.sleep(0.5)
    assert_all_stored_once(audit_db, published, key_file)
    assert scalar(audit_db, "SELECT max(seq) FROM audit_log") == 4000


def test_broker_connection_cut_mid_flow_loses_nothing(
    start_audit, amqp: str, audit_db: str, key_file: Path
) -> None:
    """The audit service reaches RabbitMQ through a TCP proxy owned by this
    test (the shared broker is never restarted); cutting it twice mid-flow and
    restoring it loses and duplicates nothing."""
    uri = urlparse(amqp)
    proxy = TcpProxy((uri.hostname or "127.0.0.1", uri.port or 5672))
    proxied = uri._replace(
        netloc=f"{uri.username}:{uri.password}@127.0.0.1:{proxy.port}"
    )
    start_audit(amqp_uri=proxied.geturl())
    published = _publish(amqp, 1500)
    for _ in range(2):
        time.sleep(0.3)
        proxy.cut()
        published += _publish(amqp, 1500, start=len(published))
        time.sleep(1.0)
        proxy.restore()
    _wait_stored(audit_db, len(published), 60)
    time.sleep(0.5)
    assert_all_stored_once(audit_db, published, key_file)


def test_database_away_for_thirty_seconds_loses_nothing(
    start_audit, amqp: str, audit_db: str, key_file: Path
) -> None:
    """The audit service reaches PostgreSQL through a TCP proxy owned by this
    test; while it is cut for 30 s events keep arriving, and once it is back
    every one is stored exactly once."""
    uri = urlparse(audit_db)
    proxy = TcpProxy((uri.hostname or "127.0.0.1", uri.port or 5432))
    proxied = uri._replace(netloc=f"{uri.username}@127.0.0.1:{proxy.port}").geturl()
    process = start_audit(db_url=proxied)
    published = _publish(amqp, 1000)
    _wait_stored(audit_db, 500, 30)
    proxy.cut()
    published += _publish(amqp, 2000, start=1000)
    time.sleep(30)
    assert process.proc is not None and process.proc.poll() is None
    assert queue_depth(amqp, "audit.all_events") > 0
    proxy.restore()
    _wait_stored(audit_db, len(published), 60)
    time.sleep(0.5)
    assert_all_stored_once(audit_db, published, key_file)
