"""Declare every service's durable event queues before anything publishes.

RabbitMQ drops an event published to an exchange with no queue bound for its
routing key, even though it confirms the publish. A nameko event handler's
queue only exists once its service has started, so without this step the
demo seed's (or any early) ``auth.user_created`` events would never reach
training or reviews if they started later. ``python -m scripts.migrate``
runs this after the database migrations; it is idempotent.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Protocol

from kombu import Connection, Queue
from nameko.events import BROADCAST, SINGLETON, EventHandler
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.messaging import Consumer
from nameko.standalone.events import get_event_exchange

from plumbing import config, topology
from scripts.processes import PROCESS_MODULES


class ServiceClass(Protocol):
    """A nameko service class: its ``name`` names its queues."""

    name: str


def _service_classes() -> list[type[ServiceClass]]:
    classes = []
    for target in PROCESS_MODULES.values():
        module_path, class_name = target.split(":")
        classes.append(getattr(importlib.import_module(module_path), class_name))
    return classes


def handler_queues(service_cls: type[ServiceClass]) -> list[Queue]:
    """The durable queues nameko declares for ``service_cls``'s event handlers
    (the same names, bindings and flags) and its ``consume`` entrypoints
    (their own queues), leaving out per-instance broadcast queues, which only
    matter while their instance runs."""
    queues = []
    for method_name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            # An EventHandler is a Consumer too, whose queue is made at setup.
            if not isinstance(entrypoint, EventHandler):
                if isinstance(entrypoint, Consumer):
                    queues.append(entrypoint.queue)
                continue
            if entrypoint.handler_type is BROADCAST:
                continue
            if entrypoint.handler_type is SINGLETON:
                name = f"evt-{entrypoint.source_service}-{entrypoint.event_type}"
            else:
                name = (
                    f"evt-{entrypoint.source_service}-{entrypoint.event_type}"
                    f"--{service_cls.name}.{method_name}"
                )
            queues.append(
                Queue(
                    name,
                    exchange=get_event_exchange(entrypoint.source_service, {}),
                    routing_key=entrypoint.event_type,
                    durable=True,
                    auto_delete=entrypoint.reliable_delivery is False,
                    exclusive=False,
                )
            )
    return queues


def declare_all(amqp_uri: str | None = None) -> list[str]:
    """Declare the event exchanges, the audit queue and every handler queue."""
    amqp_uri = amqp_uri or config.amqp_uri()
    topology.declare(amqp_uri)
    declared = []
    with Connection(amqp_uri) as conn:
        channel: Any = conn.channel()
        for service_cls in _service_classes():
            for queue in handler_queues(service_cls):
                queue(channel).declare()
                declared.append(queue.name)
    return declared
