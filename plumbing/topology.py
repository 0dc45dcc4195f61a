"""Exchanges and durable queues that must exist before anything publishes.

Every event source publishes to a durable topic exchange ``<source>.events``.
The audit service's queue is declared, and bound to every one of them for
all routing keys, by every publisher when it starts, so that an event
published before the audit service first runs is kept and mandatory
publishing never finds its event unroutable.
"""

from __future__ import annotations

from kombu import Connection, Exchange, Queue, binding

# Sources of events: the services, plus ``authz`` (access denials reported by
# the gateway and the services).
EVENT_SOURCES = ("auth", "training", "reviews", "notify", "audit", "authz")

AUDIT_QUEUE = "audit.all_events"


def exchange(source: str) -> Exchange:
    return Exchange(f"{source}.events", type="topic", durable=True)


def audit_queue() -> Queue:
    bindings = [binding(exchange(source), routing_key="#") for source in EVENT_SOURCES]
    return Queue(AUDIT_QUEUE, bindings=bindings, durable=True)


def declare(amqp_uri: str) -> None:
    """Declare every event exchange and the audit queue with its bindings."""
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        for source in EVENT_SOURCES:
            exchange(source)(channel).declare()
        audit_queue()(channel).declare()
