"""The transactional outbox and its relay.

Each service database has an ``outbox`` table. A worker inserts its event
there in the same transaction as the change it describes, so an event exists
if and only if the change was committed. The relay, a thread in every
service process, publishes pending rows in id order with publisher confirms
and mandatory routing and marks a row sent only once the broker confirmed it.

Delivery is at least once: a relay that dies after the broker confirmed a
message but before its commit publishes that message again on restart, so
consumers de-duplicate by ``event_id``. On PostgreSQL several relays (several
instances of one service) share the work with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from nameko.amqp.publish import Publisher, UndeliverableMessage
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine

from plumbing import topology
from plumbing.envelope import routing, validate_envelope
from plumbing.errors import ValidationFailed

log = structlog.get_logger()

outbox_metadata = MetaData()

OUTBOX = Table(
    "outbox",
    outbox_metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    # Partial on both dialects: the relay only ever looks for pending rows.
    Index(
        "ix_outbox_pending",
        "id",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
)


def create_outbox_table(op: Any) -> None:
    """Alembic helper: every service's first migration creates the outbox."""
    op.create_table(
        "outbox",
        Column(
            "id",
            BigInteger().with_variant(Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("type", String(100), nullable=False),
        Column("payload", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("sent_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["id"],
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    )


def insert_event(session: Any, envelope: dict[str, Any]) -> None:
    """Add an envelope to the outbox within the session's transaction."""
    insert_events(session, [envelope])


def insert_events(session: Any, envelopes: list[dict[str, Any]]) -> None:
    """Add envelopes to the outbox within the session's transaction, in one
    statement (SQLAlchemy sends many rows as multi-row INSERTs)."""
    if not envelopes:
        return
    now = datetime.now(UTC)
    session.execute(
        OUTBOX.insert(),
        [
            {
                "event_id": envelope["event_id"],
                "type": envelope["type"],
                "payload": envelope,
                "created_at": now,
                "attempts": 0,
            }
            for envelope in envelopes
        ],
    )


# Sent rows are kept this long (for an operator checking what left when),
# then deleted, so that the outbox does not grow without end.
SENT_RETENTION = timedelta(days=7)
PRUNE_INTERVAL = 3600.0


def prune_sent(engine: Engine, older_than: timedelta = SENT_RETENTION) -> int:
    """Delete rows sent more than ``older_than`` ago; return how many."""
    cutoff = datetime.now(UTC) - older_than
    with engine.begin() as conn:
        result = conn.execute(
            OUTBOX.delete().where(
                OUTBOX.c.sent_at.is_not(None), OUTBOX.c.sent_at < cutoff
            )
        )
    return result.rowcount or 0


class OutboxRelay:
    """Publishes pending outbox rows; one per service process."""

    def __init__(
        self,
        engine: Engine,
        amqp_uri: str,
        *,
        service: str,
        batch_size: int = 200,
        poll_interval: float = 0.5,
    ) -> None:
        self.engine = engine
        self.amqp_uri = amqp_uri
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._declared = False
        self._batch_failed = False
        # Hook for tests: called after each confirmed publish, before commit.
        self.after_publish: Any = None
        self.publisher = Publisher(
            amqp_uri,
            serializer="json",
            delivery_mode=2,
            mandatory=True,
            use_confirms=True,
            retry=False,
        )

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def run(self) -> None:
        """Loop until stopped: publish what is pending, then wait to be woken."""
        backoff = self.poll_interval
        next_prune = time.monotonic()
        while not self._stopped.is_set():
            self._wake.clear()
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_INTERVAL
                try:
                    prune_sent(self.engine)
                except Exception as error:  # noqa: BLE001 (pruning can wait an hour)
                    log.warning("outbox_prune_failed", error=repr(error))
            try:
                sent = self.publish_pending()
            except Exception as error:  # noqa: BLE001 (the relay must outlive any fault)
                log.warning("outbox_relay_failed", error=repr(error))
                self._batch_failed = True
            if self._batch_failed:
                # The broker (or the database) is failing: back off rather than
                # retrying every poll interval.
                backoff = min(backoff * 2, 5.0)
                self._stopped.wait(backoff)
                continue
            backoff = self.poll_interval
            if sent >= self.batch_size:
                continue
            self._wake.wait(self.poll_interval)

    def _declare(self) -> None:
        if not self._declared:
            topology.declare(self.amqp_uri)
            self._declared = True

    def publish_pending(self) -> int:
        """Publish one batch of pending events; return how many were confirmed."""
        self._batch_failed = False
        self._declare()
        sent = 0
        with self.engine.begin() as conn:
            query = (
                select(OUTBOX.c.id, OUTBOX.c.type, OUTBOX.c.payload)
                .where(OUTBOX.c.sent_at.is_(None))
                .order_by(OUTBOX.c.id)
                .limit(self.batch_size)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            for row in rows:
                try:
                    self._publish(row.type, row.payload)
                except ValidationFailed as error:
                    # A row that can never be published must not hold back the
                    # others; it stays pending, counted and logged.
                    self._count_attempt(conn, row.id)
                    log.error(
                        "outbox_event_invalid", event_type=row.type, fields=error.fields
                    )
                    continue
                except Exception as error:  # noqa: BLE001 (any broker fault, e.g. ConnectionForced)
                    # Keep what was confirmed; the rest stays pending. Broker
                    # faults are not all OSError or kombu's OperationalError
                    # (amqp raises ConnectionForced when RabbitMQ shuts down),
                    # and letting one escape would roll back confirmed rows.
                    self._count_attempt(conn, row.id)
                    log.warning(
                        "outbox_publish_failed", event_type=row.type, error=repr(error)
                    )
                    self._declared = False
                    self._batch_failed = not isinstance(error, UndeliverableMessage)
                    break
                if self.after_publish is not None:
                    self.after_publish(row.payload)
                conn.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id == row.id)
                    .values(sent_at=datetime.now(UTC))
                )
                sent += 1
        return sent

    @staticmethod
    def _count_attempt(conn: Any, row_id: int) -> None:
        conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == row_id)
            .values(attempts=OUTBOX.c.attempts + 1)
        )

    def pending_count(self) -> int:
        """How many events wait to be published."""
        with self.engine.connect() as conn:
            query = select(func.count()).where(OUTBOX.c.sent_at.is_(None))
            return conn.execute(query).scalar_one()

    def _publish(self, event_type: str, payload: dict[str, Any]) -> None:
        validate_envelope(payload)
        exchange_name, routing_key = routing(event_type)
        source = exchange_name.split(".", 1)[0]
        headers = {"nameko.request_id": payload.get("request_id") or ""}
        self.publisher.publish(
            payload,
            exchange=topology.exchange(source),
            routing_key=routing_key,
            headers=headers,
            message_id=payload["event_id"],
        )

    def drain(self, timeout: float = 10.0) -> None:
        """Publish until nothing is pending (for tools and tests).

        Raises TimeoutError if events are still pending when time is up, for
        example because the broker cannot be reached.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.publish_pending()
            except Exception as error:  # noqa: BLE001 (retried until the deadline)
                log.warning("outbox_relay_failed", error=repr(error))
            if self.pending_count() == 0:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError("outbox still has pending events")
            time.sleep(0.1)
