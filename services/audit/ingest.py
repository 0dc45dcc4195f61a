"""The ingestion loop: pulls events from the audit queue in batches and
appends each batch to the chain in one transaction.

Why not a nameko ``consume`` entrypoint: it hands one message to one worker,
and each worker would then take the chain-head lock for a single entry. A
loop of our own, run as a managed thread of the service container, drains up
to ``batch_size`` messages (the channel's prefetch keeps them coming), stores
them with one bulk insert under one lock, and only then acknowledges them
(``basic.ack`` with ``multiple``). While one batch commits, the next is
received and validated (see :meth:`Ingestor._pipeline`). The rules it keeps:

- a message is acknowledged only after its entry (or its dead-letter record)
  is committed; nothing is acknowledged while the database is unreachable,
  the batch is retried with back-off and the broker keeps redelivering to us
  or, if our connection drops, to another instance;
- a message that is not JSON or fails ``validate_envelope`` is published
  (with publisher confirms) to the durable queue ``audit.dead_letters``,
  counted in the ``dead_letters`` table and acknowledged, so it never blocks
  the queue; an envelope the database refuses (say, a NUL character) is
  found by retrying the batch one message at a time, and dead-lettered;
- storing is idempotent by ``event_id`` (see :mod:`services.audit.store`).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import eventlet
import psycopg2
import structlog
from kombu import Connection, Consumer, Producer, Queue
from sqlalchemy.exc import DataError

from plumbing import topology
from plumbing.envelope import validate_envelope
from plumbing.errors import ValidationFailed
from services.audit.store import ChainStore, DeadLetterRecord

log = structlog.get_logger()

DEAD_LETTER_QUEUE = "audit.dead_letters"


def dead_letter_queue() -> Queue:
    return Queue(DEAD_LETTER_QUEUE, durable=True)


def _message_at_fault(error: BaseException) -> bool:
    """True when the envelope itself cannot be stored (a value PostgreSQL
    refuses, a number with no canonical form). Every other error (connection
    lost, database refusing connections, a missing grant) is retried: it is
    not the message's fault and must not cost the message its place."""
    return isinstance(
        error, DataError | psycopg2.DataError | ValueError | KeyError | TypeError
    )


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    database_retries: int = 0
    broker_reconnects: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "batches": self.batches,
            "database_retries": self.database_retries,
            "broker_reconnects": self.broker_reconnects,
            "last_error": self.last_error,
        }


class Ingestor:
    """Consumes the audit queue until stopped; survives broker and database loss."""

    def __init__(
        self,
        amqp_uri: str,
        store: ChainStore,
        *,
        batch_size: int = 500,
        prefetch: int = 1000,
        linger: float = 0.02,
    ) -> None:
        self.amqp_uri = amqp_uri
        self.store = store
        self.batch_size = batch_size
        self.prefetch = prefetch
        self.linger = linger
        self.stats = IngestStats()
        self._stopped = threading.Event()
        self._done = threading.Event()
        self._buffer: list[Any] = []
        self._dead_connection: Connection | None = None

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._done.wait(timeout)

    def run(self) -> None:
        """Connect, consume, and on any broker fault reconnect with back-off."""
        backoff = 0.2
        try:
            while not self._stopped.is_set():
                try:
                    self._consume()
                    backoff = 0.2
                except Exception as error:  # noqa: BLE001 (the loop must outlive any fault)
                    self.stats.broker_reconnects += 1
                    self.stats.last_error = repr(error)
                    log.warning("audit_ingest_reconnecting", error=repr(error))
                    self._buffer.clear()  # unacked: the broker redelivers them
                    self._close_dead_connection()
                    self._stopped.wait(backoff)
                    backoff = min(backoff * 2, 3.0)
        finally:
            self._close_dead_connection()
            self._done.set()

    def _consume(self) -> None:
        with Connection(self.amqp_uri, heartbeat=0, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            topology.audit_queue()(channel).declare()
            dead_letter_queue()(channel).declare()
            channel.basic_qos(0, self.prefetch, False)
            consumer = Consumer(
                channel, [topology.audit_queue()], on_message=self._on_message
            )
            with consumer:
                log.info("audit_ingest_consuming", queue=topology.AUDIT_QUEUE)
                self._pipeline(conn, channel)

    def _pipeline(self, conn: Connection, channel: Any) -> None:
        """Receive and check the next batch while the previous one commits.

        One append is in flight at a time (a green thread; psycopg2 is green
        under eventlet, so the hub keeps reading the socket meanwhile). It is
        acknowledged when it has committed, before the next one is started,
        so batches reach the chain and are acknowledged in the order received.
        On a broker fault the batch in flight is let finish but not
        acknowledged: the broker redelivers it and the store drops the
        duplicates."""
        pending: tuple[list[Any], Any] | None = None
        try:
            while not self._stopped.is_set():
                self._fill(conn)
                if self._buffer:
                    batch, self._buffer = self._buffer, []
                    valid, dead = self._prepare(batch)
                    self._settle(pending, channel)
                    pending = (batch, eventlet.spawn(self._commit, valid, dead))
                elif pending is not None:
                    self._settle(pending, channel)
                    pending = None
            self._settle(pending, channel)
            pending = None
        finally:
            if pending is not None:
                try:
                    pending[1].wait()
                except Exception as error:  # noqa: BLE001 (the first fault is raised)
                    log.warning("audit_append_abandoned", error=repr(error))

    def _settle(self, pending: tuple[list[Any], Any] | None, channel: Any) -> None:
        """Wait for the batch in flight; acknowledge it if it was committed."""
        if pending is None:
            return
        batch, thread = pending
        if thread.wait():
            channel.basic_ack(batch[-1].delivery_tag, multiple=True)
            self.stats.batches += 1

    def _on_message(self, message: Any) -> None:
        self._buffer.append(message)

    def _fill(self, conn: Connection) -> None:
        """Drain messages until a batch is full or ``linger`` passed since the first."""
        deadline = None
        while len(self._buffer) < self.batch_size and not self._stopped.is_set():
            if self._buffer and deadline is None:
                deadline = time.monotonic() + self.linger
            timeout = 0.5 if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                return
            try:
                conn.drain_events(timeout=timeout)
            except TimeoutError:  # socket.timeout
                if self._buffer:
                    return

    def _prepare(
        self, batch: list[Any]
    ) -> tuple[list[dict[str, Any]], list[DeadLetterRecord]]:
        """Parse and validate a batch: its valid envelopes and dead letters."""
        self.stats.received += len(batch)
        valid: list[dict[str, Any]] = []
        dead: list[DeadLetterRecord] = []
        for message in batch:
            parsed = _parse(message)
            if isinstance(parsed, DeadLetterRecord):
                dead.append(parsed)
            else:
                valid.append(parsed)
        return valid, dead

    def _commit(self, valid: list[dict], dead: list[DeadLetterRecord]) -> bool:
        """Dead-letter, then store; True once committed (False if stopped)."""
        self._dead_letter(dead)
        return self._store(valid, dead)

    def _store(self, valid: list[dict], dead: list[DeadLetterRecord]) -> bool:
        """Append with retries while the database is away; False if stopped."""
        backoff = 0.2
        while True:
            try:
                result = self.store.append(valid, dead)
                break
            except Exception as error:  # noqa: BLE001 (sorted into transient or not below)
                if _message_at_fault(error):
                    if len(valid) <= 1 and not dead:
                        self._refused(valid, error)
                        return True
                    return self._store_one_by_one(valid, dead)
                self.stats.database_retries += 1
                self.stats.last_error = repr(error)
                log.warning("audit_store_retrying", error=type(error).__name__)
                if self._stopped.wait(backoff):
                    return False
                backoff = min(backoff * 2, 2.0)
        self._count(result)
        return True

    def _store_one_by_one(
        self, valid: list[dict], dead: list[DeadLetterRecord]
    ) -> bool:
        if dead and not self._store([], dead):
            return False
        for envelope in valid:
            if not self._store([envelope], []):
                return False
        return True

    def _refused(self, valid: list[dict], error: BaseException) -> None:
        """The database refuses this envelope itself: dead-letter it."""
        for envelope in valid:
            record = DeadLetterRecord(
                reason="refused_by_database",
                detail=type(error).__name__,
                body=json.dumps(envelope).encode("utf-8"),
                message_id=str(envelope.get("event_id")),
            )
            self._dead_letter([record])
            self._store([], [record])

    def _count(self, result: Any) -> None:
        self.stats.stored += result.appended
        self.stats.duplicates += result.duplicates
        self.stats.dead_lettered += result.dead_letters

    def _dead_letter(self, records: list[DeadLetterRecord]) -> None:
        """Publish each record's body to the dead-letter queue, confirmed."""
        if not records:
            return
        if self._dead_connection is None:
            self._dead_connection = Connection(
                self.amqp_uri,
                heartbeat=0,
                connect_timeout=5,
                transport_options={"confirm_publish": True},
            )
        producer = Producer(self._dead_connection.default_channel)
        for record in records:
            producer.publish(
                record.body,
                exchange="",
                routing_key=DEAD_LETTER_QUEUE,
                content_type="application/octet-stream",
                content_encoding="binary",
                delivery_mode=2,
                message_id=record.message_id,
                headers={
                    "x-audit-reason": record.reason,
                    "x-audit-detail": record.detail[:500],
                    "x-original-exchange": record.exchange or "",
                    "x-original-routing-key": record.routing_key or "",
                },
                declare=[dead_letter_queue()],
            )

    def _close_dead_connection(self) -> None:
        if self._dead_connection is not None:
            try:
                self._dead_connection.release()
            except (OSError, socket.error):  # noqa: UP024 (either may be raised)
                pass
            self._dead_connection = None


def _parse(message: Any) -> dict[str, Any] | DeadLetterRecord:
    """The valid envelope of a message, or the dead-letter record saying why not."""
    body = (
        message.body if isinstance(message.body, bytes) else str(message.body).encode()
    )
    info = message.delivery_info or {}
    message_id = (message.properties or {}).get("message_id")

    def dead(reason: str, detail: str) -> DeadLetterRecord:
        return DeadLetterRecord(
            reason=reason,
            detail=detail,
            body=body,
            message_id=message_id,
            exchange=info.get("exchange"),
            routing_key=info.get("routing_key"),
        )

    try:
        envelope = json.loads(body)
    except ValueError:
        return dead("unparseable", "the body is not UTF-8 JSON")
    if not isinstance(envelope, dict):
        return dead("unparseable", "the body is not a JSON object")
    try:
        validate_envelope(envelope)
    except ValidationFailed as error:
        # Field names and marshmallow's messages only: never the values.
        return dead("invalid_envelope", json.dumps(error.fields, default=str))
    return envelope
