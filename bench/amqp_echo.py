"""The raw AMQP RPC baseline: a kombu echo consumer and a pipelined client.

The consumer runs in its own process and answers every request on the
request's ``reply_to`` queue with the same body and correlation id, acking
each request after replying (as a nameko RPC worker does). The client keeps a
fixed number of calls in flight, matching replies by correlation id, so the
figure is what one client process gets from RabbitMQ on this machine with no
framework in the way.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Any

from kombu import Connection, Consumer, Producer, Queue

from bench import cpu
from bench.stats import Throughput

PAYLOAD = {"args": ["ping"], "kwargs": {"note": "x" * 64}}
SERVER_PREFETCH = 32


def _request_queue(name: str) -> Queue:
    # auto_delete: the queue goes away with its consumer, leaving nothing behind.
    return Queue(name, durable=False, auto_delete=True)


def serve(amqp_uri: str, queue_name: str, ready: Event, stop: Event) -> None:
    """Echo every request back to its ``reply_to`` until ``stop`` is set."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        channel.basic_qos(0, SERVER_PREFETCH, False)
        producer = Producer(channel, serializer="json")

        def on_request(body: Any, message: Any) -> None:
            producer.publish(
                body,
                exchange="",
                routing_key=message.properties["reply_to"],
                correlation_id=message.properties["correlation_id"],
                delivery_mode=1,
            )
            message.ack()

        consumer = Consumer(
            channel, [_request_queue(queue_name)], callbacks=[on_request]
        )
        with consumer:
            ready.set()
            while not stop.is_set():
                try:
                    connection.drain_events(timeout=0.2)
                except TimeoutError:
                    continue


@contextmanager
def echo_server(amqp_uri: str, queue_name: str) -> Iterator[BaseProcess]:
    """Run :func:`serve` in a separate process; stop it on leaving, whatever happens."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    process = context.Process(
        target=serve,
        args=(amqp_uri, queue_name, ready, stop),
        name="bench-amqp-echo",
        daemon=True,
    )
    process.start()
    try:
        if not ready.wait(timeout=30):
            raise RuntimeError("the AMQP echo consumer did not start within 30 s")
        yield process
    finally:
        stop.set()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


def run_client(
    amqp_uri: str,
    queue_name: str,
    calls: int,
    in_flight: int = 10,
    max_seconds: float = 30.0,
) -> Throughput:
    """Make ``calls`` echo calls with ``in_flight`` outstanding; stop early at
    ``max_seconds``. Returns the calls answered and the time they took."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        producer = Producer(channel, serializer="json")
        reply_name = f"bench.reply.{uuid.uuid4().hex}"
        reply_queue = Queue(reply_name, exclusive=True, auto_delete=True)
        pending: set[str] = set()
        counts = {"sent": 0, "answered": 0, "errors": 0}

        def send() -> None:
            correlation_id = uuid.uuid4().hex
            pending.add(correlation_id)
            counts["sent"] += 1
            producer.publish(
                PAYLOAD,
                exchange="",
                routing_key=queue_name,
                reply_to=reply_name,
                correlation_id=correlation_id,
                delivery_mode=1,
            )

        def on_reply(body: Any, message: Any) -> None:
            correlation_id = message.properties.get("correlation_id")
            if correlation_id not in pending or body != PAYLOAD:
                counts["errors"] += 1
                return
            pending.discard(correlation_id)
            counts["answered"] += 1
            if counts["sent"] < calls:
                send()

        consumer = Consumer(channel, [reply_queue], callbacks=[on_reply], no_ack=True)
        with consumer:
            _request_queue(queue_name)(channel).declare()
            started = time.perf_counter()
            deadline = started + max_seconds
            for _ in range(min(in_flight, calls)):
                send()
            while counts["answered"] < calls:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    connection.drain_events(timeout=min(remaining, 1.0))
                except TimeoutError:
                    continue
            elapsed = time.perf_counter() - started
    return Throughput(
        operations=counts["answered"], errors=counts["errors"], seconds=elapsed
    )


def measure(
    amqp_uri: str, calls: int = 5000, in_flight: int = 10, max_seconds: float = 15.0
) -> Throughput:
    """Start an echo consumer on a fresh queue, warm up, then time ``calls`` calls."""
    queue_name = f"bench.echo.{uuid.uuid4().hex}"
    with echo_server(amqp_uri, queue_name) as server:
        run_client(amqp_uri, queue_name, calls=min(200, calls), in_flight=in_flight)
        pids = {"client": os.getpid(), "echo": server.pid or 0}
        with cpu.accounting(pids) as used:
            result = run_client(
                amqp_uri,
                queue_name,
                calls=calls,
                in_flight=in_flight,
                max_seconds=max_seconds,
            )
        result.cpu = used
        return result


if __name__ == "__main__":
    result = measure(os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"))
    print(f"{result.rate:.0f} calls/s ({result.operations} in {result.seconds:.2f} s)")
