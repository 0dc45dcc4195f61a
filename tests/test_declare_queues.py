"""The set-up step declares every queue a service consumes from, so events
published before a service first starts wait for it."""

from __future__ import annotations

import json
from typing import Any

from kombu import Connection

from scripts import declare_queues


def test_every_consumed_queue_is_declared_with_its_bindings(
    rabbit_config: dict[str, Any],
) -> None:
    declared = declare_queues.declare_all(rabbit_config["AMQP_URI"])

    assert "notify.incoming" in declared
    assert "evt-auth-user_created--reviews.handle_user_created" in declared
    with Connection(rabbit_config["AMQP_URI"]) as conn:
        producer = conn.Producer(serializer="json")
        # Nothing runs yet, and the event still waits in notify's queue.
        producer.publish(
            {"hello": 1}, exchange="training.events", routing_key="booking_requested"
        )
        message = conn.default_channel.basic_get("notify.incoming", no_ack=True)
        assert message is not None
        assert json.loads(message.body) == {"hello": 1}
