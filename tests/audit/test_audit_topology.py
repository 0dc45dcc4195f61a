"""Every event type any service can emit reaches the audit queue: its
exchange is one the audit queue is bound to, and a published event of each
type lands there (with no audit service running yet)."""

from __future__ import annotations

import importlib
import json
import re

from audit_support import ROOT, Publisher, sample_event
from kombu import Connection

from plumbing import topology
from plumbing.envelope import TYPE_PATTERN, routing


def emitted_event_types() -> set[str]:
    """Every ``<service>.<past_tense>`` constant of every services/*/events.py."""
    found = set()
    for path in sorted((ROOT / "services").glob("*/events.py")):
        module = importlib.import_module(f"services.{path.parent.name}.events")
        for name, value in vars(module).items():
            if (
                name.isupper()
                and isinstance(value, str)
                and re.match(TYPE_PATTERN, value)
            ):
                found.add(value)
    return found


def test_every_event_source_is_bound_to_the_audit_queue() -> None:
    """Each event type's exchange is among the audit queue's bindings."""
    types = emitted_event_types()
    assert "auth.login_failed" in types and "audit.log_read" in types
    bound = {b.exchange.name for b in topology.audit_queue().bindings}
    for event_type in types:
        exchange, _ = routing(event_type)
        assert exchange in bound, event_type
        assert event_type.split(".")[0] in topology.EVENT_SOURCES


def test_an_event_of_every_type_lands_in_the_audit_queue(amqp: str) -> None:
    """Published before any audit service runs, each type is kept in the queue."""
    types = sorted(emitted_event_types())
    publisher = Publisher(amqp)
    for event_type in types:
        publisher.publish(sample_event(0, type=event_type))
    publisher.close()
    seen = []
    with Connection(amqp) as conn:
        queue = topology.audit_queue()(conn.channel())
        while (message := queue.get(no_ack=True)) is not None:
            seen.append(json.loads(message.body)["type"])
    assert sorted(seen) == types
