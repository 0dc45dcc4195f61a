"""The transactional outbox and its relay, against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import eventlet
import pytest
from kombu import Connection
from plumbing_support import WIDGETS, EventTap, TcpProxy
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from plumbing import topology
from plumbing.database import ServiceSession, make_engine
from plumbing.outbox import OUTBOX, OutboxRelay, outbox_metadata, prune_sent

pytestmark = pytest.mark.filterwarnings(
    # kombu's pool warns when a connection it had is found dead; that is
    # exactly what the broker-outage test arranges.
    "ignore::ResourceWarning"
)


def _write_widget(engine: Engine, name: str, *, commit: bool = True) -> str:
    """Insert a widget and its event in one transaction; return the event id."""
    session = sessionmaker(bind=engine, class_=ServiceSession)()
    try:
        session.execute(WIDGETS.insert().values(name=name))
        envelope = session.emit(
            "auth.widget_created",
            subject_type="widget",
            subject_id=name,
            org_id="org-1",
            data={"name": name},
        )
        if commit:
            session.commit()
        else:
            session.rollback()
        return envelope["event_id"]
    finally:
        session.close()


def _pending(engine: Engine) -> int:
    with engine.connect() as conn:
        query = (
            select(func.count()).select_from(OUTBOX).where(OUTBOX.c.sent_at.is_(None))
        )
        return conn.execute(query).scalar_one()


def _relay(engine: Engine, amqp_uri: str, **kwargs: Any) -> OutboxRelay:
    return OutboxRelay(engine, amqp_uri, service="widgets", **kwargs)


def test_a_committed_change_is_published_once(
    widget_db: tuple[str, Engine], amqp_uri: str, event_tap: EventTap
) -> None:
    """A committed change's event reaches a subscriber and the row is marked sent."""
    _, engine = widget_db
    event_id = _write_widget(engine, "w1")

    _relay(engine, amqp_uri).drain()

    received = event_tap.take(expect=1)
    assert [event["event_id"] for event in received] == [event_id]
    assert received[0]["type"] == "auth.widget_created"
    assert _pending(engine) == 0


def test_many_events_emitted_at_once_are_each_published(
    widget_db: tuple[str, Engine], amqp_uri: str, event_tap: EventTap
) -> None:
    """``emit_many`` writes one outbox row per subject, with its own id and
    the worker's request id, and each is published once."""
    _, engine = widget_db
    session = sessionmaker(bind=engine, class_=ServiceSession)()
    session.info["context_data"] = {"request_id": "req-9"}
    try:
        envelopes = session.emit_many(
            "auth.widget_created",
            [
                {"subject_type": "widget", "subject_id": f"w{n}", "org_id": "org-1"}
                for n in range(50)
            ],
        )
        assert session.emit_many("auth.widget_created", []) == []
        session.commit()
    finally:
        session.close()
    assert len({e["event_id"] for e in envelopes}) == 50

    _relay(engine, amqp_uri).drain()

    received = event_tap.take(expect=50)
    assert sorted(e["subject"]["id"] for e in received) == sorted(
        f"w{n}" for n in range(50)
    )
    assert {e["request_id"] for e in received} == {"req-9"}
    assert _pending(engine) == 0


def test_a_rolled_back_change_publishes_nothing(
    widget_db: tuple[str, Engine], amqp_uri: str, event_tap: EventTap
) -> None:
    """An event emitted in a transaction that rolls back never leaves the service."""
    _, engine = widget_db
    _write_widget(engine, "ghost", commit=False)

    _relay(engine, amqp_uri).drain()

    assert event_tap.take(timeout=0.5) == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(OUTBOX)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(WIDGETS)).scalar_one() == 0


def test_a_change_committed_while_the_broker_is_down_arrives_once_it_is_back(
    widget_db: tuple[str, Engine],
    broker_proxy: tuple[TcpProxy, str],
    event_tap: EventTap,
) -> None:
    """An event committed during a broker outage is delivered, once, afterwards.

    The outage is simulated by cutting the network path: the relay talks to
    RabbitMQ through a TCP proxy that the test closes (refusing new
    connections and resetting open ones) and later opens again. The shared
    RabbitMQ itself keeps running for the other tests.
    """
    _, engine = widget_db
    proxy, proxied_uri = broker_proxy
    relay = _relay(engine, proxied_uri, poll_interval=0.1)
    runner = eventlet.spawn(relay.run)
    try:
        _write_widget(engine, "before")
        assert len(event_tap.take(expect=1)) == 1

        proxy.cut()
        event_id = _write_widget(engine, "during")
        relay.wake()
        eventlet.sleep(1.5)
        assert _pending(engine) == 1
        assert event_tap.take(timeout=0.2) == []

        proxy.restore()
        received = event_tap.take(expect=1, timeout=15)
        eventlet.sleep(0.5)
        received += event_tap.take(timeout=0.2)
    finally:
        relay.stop()
        runner.wait()

    assert [event["event_id"] for event in received] == [event_id]
    assert _pending(engine) == 0


def test_a_relay_restarted_mid_batch_sends_nothing_twice_after_deduplication(
    widget_db: tuple[str, Engine], amqp_uri: str, event_tap: EventTap
) -> None:
    """A relay killed after k confirmed publishes, before its commit, re-sends on
    restart; a consumer de-duplicating by event_id sees each event exactly once."""
    _, engine = widget_db
    total, killed_after = 10, 4
    event_ids = {_write_widget(engine, f"w{i}") for i in range(total)}

    class RelayKilled(Exception):
        pass

    confirmed: list[str] = []

    def kill_after_k(payload: dict[str, Any]) -> None:
        confirmed.append(payload["event_id"])
        if len(confirmed) == killed_after:
            raise RelayKilled

    first = _relay(engine, amqp_uri)
    first.after_publish = kill_after_k
    with pytest.raises(RelayKilled):
        first.publish_pending()
    assert _pending(engine) == total

    _relay(engine, amqp_uri).drain()

    received = event_tap.take(expect=total + killed_after)
    counts = Counter(event["event_id"] for event in received)
    assert len(received) >= total
    assert set(counts) == event_ids
    deduplicated = list(dict.fromkeys(event["event_id"] for event in received))
    assert len(deduplicated) == total
    assert _pending(engine) == 0


def test_an_unroutable_event_stays_pending(
    widget_db: tuple[str, Engine], amqp_uri: str
) -> None:
    """With mandatory publishing, an event no queue would receive is not marked
    sent: here the relay skips declaring the audit queue and the exchange has
    no queue bound."""
    _, engine = widget_db
    with Connection(amqp_uri) as conn:
        topology.exchange("auth")(conn.channel()).declare()
    _write_widget(engine, "nobody-listens")
    relay = _relay(engine, amqp_uri)
    relay._declared = True  # the audit queue would make everything routable

    assert relay.publish_pending() == 0

    with engine.connect() as conn:
        row = conn.execute(select(OUTBOX.c.sent_at, OUTBOX.c.attempts)).one()
    assert row.sent_at is None
    assert row.attempts == 1


def test_two_relays_on_one_database_publish_each_row_once(
    widget_db: tuple[str, Engine], amqp_uri: str, event_tap: EventTap
) -> None:
    """Two relays (two instances of a service) share the outbox with SKIP LOCKED
    and between them publish every row exactly once."""
    url, engine = widget_db
    total = 40
    event_ids = {_write_widget(engine, f"w{i}") for i in range(total)}
    published: Counter[str] = Counter()

    def relay_named(name: str) -> OutboxRelay:
        relay = _relay(engine, amqp_uri, batch_size=5, poll_interval=0.05)

        def after_publish(_payload: dict[str, Any]) -> None:
            published[name] += 1
            eventlet.sleep(0.001)  # let the other relay take its turn

        relay.after_publish = after_publish
        return relay

    relays = [relay_named("a"), relay_named("b")]
    runners = [eventlet.spawn(relay.run) for relay in relays]
    deadline = time.monotonic() + 15
    while _pending(engine) and time.monotonic() < deadline:
        eventlet.sleep(0.05)
    for relay, runner in zip(relays, runners, strict=True):
        relay.stop()
        runner.wait()

    received = event_tap.take(expect=total)
    counts = Counter(event["event_id"] for event in received)
    assert set(counts) == event_ids
    assert set(counts.values()) == {1}
    assert published["a"] > 0 and published["b"] > 0
    assert _pending(engine) == 0


def test_drain_reports_events_it_could_not_publish(
    widget_db: tuple[str, Engine], broker_proxy: tuple[TcpProxy, str]
) -> None:
    """drain() raises rather than returning quietly while events stay pending."""
    _, engine = widget_db
    proxy, proxied_uri = broker_proxy
    proxy.cut()
    _write_widget(engine, "stuck")

    with pytest.raises(TimeoutError):
        _relay(engine, proxied_uri).drain(timeout=0.5)

    assert _pending(engine) == 1


def test_an_invalid_row_does_not_hold_back_the_rest(
    widget_db: tuple[str, Engine], amqp_uri: str, event_tap: EventTap
) -> None:
    """A row whose envelope fails validation stays pending; later rows go out."""
    _, engine = widget_db
    with engine.begin() as conn:
        conn.execute(
            OUTBOX.insert().values(
                event_id="not-a-uuid",
                type="auth.widget_created",
                payload={"event_id": "not-a-uuid"},
                created_at=datetime.now(UTC),
                attempts=0,
            )
        )
    good = _write_widget(engine, "fine")

    _relay(engine, amqp_uri).publish_pending()

    assert [event["event_id"] for event in event_tap.take(expect=1)] == [good]
    with engine.connect() as conn:
        stuck = conn.execute(
            select(OUTBOX.c.event_id, OUTBOX.c.attempts).where(
                OUTBOX.c.sent_at.is_(None)
            )
        ).all()
    assert [(row.event_id, row.attempts) for row in stuck] == [("not-a-uuid", 1)]


def test_the_pending_index_is_partial_on_sqlite(tmp_path: Path) -> None:
    """On SQLite too the pending-rows index covers only unsent rows."""
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    outbox_metadata.create_all(engine)

    with engine.connect() as conn:
        ddl = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'ix_outbox_pending'")
        ).scalar_one()
    engine.dispose()

    assert "WHERE sent_at IS NULL" in ddl


def test_sent_rows_are_pruned_after_the_retention_and_pending_ones_never(
    widget_db: tuple[str, Engine], amqp_uri: str, event_tap: EventTap
) -> None:
    """Pruning deletes old sent rows only; unsent and recent rows stay."""
    _, engine = widget_db
    _write_widget(engine, "old")
    _relay(engine, amqp_uri).drain()
    _write_widget(engine, "recent")
    _relay(engine, amqp_uri).drain()
    _write_widget(engine, "pending")
    with engine.begin() as conn:
        conn.execute(
            OUTBOX.update()
            .where(OUTBOX.c.payload["subject"]["id"].as_string() == "old")
            .values(sent_at=datetime(2020, 1, 1, tzinfo=UTC))
        )

    deleted = prune_sent(engine)

    with engine.connect() as conn:
        left = conn.execute(
            select(OUTBOX.c.payload["subject"]["id"].as_string()).order_by(OUTBOX.c.id)
        ).scalars()
        assert list(left) == ["recent", "pending"]
    assert deleted == 1
