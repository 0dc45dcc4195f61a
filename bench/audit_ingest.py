"""Audit ingestion benchmark: ``python -m bench.audit_ingest``.

Prints, from one run on this machine, side by side:

- a raw consumer: a kombu consumer in its own process that only receives
  and acknowledges each message (prefetch 1,000, like the audit service),
  fed by four publisher processes through the same exchanges into the same
  durable audit queue of a fresh vhost;
- the audit service (``nameko run services.audit.service``, its own process,
  a fresh PostgreSQL database) fed the same way, counted as committed entries;
- their ratio (the issue asks at least 0.5) and the audit rate (at least
  2,000 events/s);
- a burst of 10,000 events: the seconds from the last publish until the
  queue is empty and every event is stored (at most 10 s).

Rates are events divided by the seconds from the first publish to the last
message acknowledged (raw) or stored (audit). Everything runs on loopback,
every loop is bounded, and the vhosts and database are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from kombu import Connection, Consumer, Producer

from bench.resources import postgres_database, rabbit_vhost, run_tag

ROOT = Path(__file__).resolve().parent.parent
PUBLISHERS = 4
PREFETCH = 1000


def _envelopes(worker: int, count: int) -> list[dict[str, Any]]:
    from plumbing.envelope import make_event

    events = []
    for n in range(count):
        personal = n % 2 == 0
        events.append(
            make_event(
                "auth.user_updated" if personal else "auth.login_succeeded",
                subject_type="user",
                subject_id=f"user-{worker}-{n % 200}",
                org_id=f"school-{n % 3}",
                actor={"user_id": f"user-{worker}-{n % 200}", "ip": "127.0.0.1"},
                changes={"given_name": {"before": "Ann", "after": "Anne"}}
                if personal
                else {},
                data={"n": n},
            )
        )
    return events


def _publish(amqp_uri: str, worker: int, count: int, go: Event) -> None:
    """One publisher process: build its envelopes, wait for go, publish them."""
    from plumbing import topology
    from plumbing.envelope import routing

    events = _envelopes(worker, count)
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        producer = Producer(channel, serializer="json")
        go.wait(60)
        for envelope in events:
            exchange, routing_key = routing(envelope["type"])
            producer.publish(
                envelope,
                exchange=topology.exchange(exchange.split(".")[0]),
                routing_key=routing_key,
                message_id=envelope["event_id"],
                delivery_mode=2,
            )
        channel.close()  # answered once the broker has routed every message


def _publish_all(amqp_uri: str, total: int) -> tuple[float, float]:
    """Four publisher processes share ``total`` events; (start, end) times."""
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    share = total // PUBLISHERS
    procs = [
        context.Process(
            target=_publish, args=(amqp_uri, worker, share, go), daemon=True
        )
        for worker in range(PUBLISHERS)
    ]
    for proc in procs:
        proc.start()
    time.sleep(2.0)  # let them build their envelopes
    start = time.monotonic()
    go.set()
    for proc in procs:
        proc.join(timeout=300)
    return start, time.monotonic()


def _raw_consume(amqp_uri: str, total: int, ready: Event, done: Any) -> None:
    from plumbing import topology

    received = 0
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        channel.basic_qos(0, PREFETCH, False)

        def on_message(message: Any) -> None:
            nonlocal received
            message.ack()
            received += 1

        with Consumer(channel, [topology.audit_queue()], on_message=on_message):
            ready.set()
            deadline = time.monotonic() + 300
            while received < total and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    continue
    done.value = time.monotonic()


@dataclass
class Rate:
    events: int
    seconds: float
    publish_seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def measure_raw(amqp_uri: str, total: int) -> Rate:
    from plumbing import topology

    topology.declare(amqp_uri)
    context = multiprocessing.get_context("spawn")
    ready, done = context.Event(), context.Value("d", 0.0)
    consumer = context.Process(
        target=_raw_consume, args=(amqp_uri, total, ready, done), daemon=True
    )
    consumer.start()
    ready.wait(30)
    start, published = _publish_all(amqp_uri, total)
    consumer.join(timeout=300)
    return Rate(total, done.value - start, published - start)


class AuditRun:
    """The audit service as ``nameko run``, on its own database and vhost."""

    def __init__(self, amqp_uri: str, db_url: str, workdir: Path) -> None:
        from plumbing import migrations
        from services.audit import crypto

        migrations.upgrade("audit", db_url)
        key = workdir / "key.pem"
        crypto.generate_signing_key(key)
        self.db_url = db_url
        self.amqp_uri = amqp_uri
        self.log = workdir / "audit.log"
        env = dict(os.environ)
        env.update(
            AMQP_URI=amqp_uri,
            AUDIT_DATABASE_URL=db_url,
            AUDIT_SIGNING_KEY_FILE=str(key),
            DATA_DIR=str(workdir),
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        nameko = Path(sys.executable).with_name("nameko")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(nameko),
                    "run",
                    "--config",
                    str(ROOT / "config.yml"),
                    "services.audit.service",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while "audit_ingest_consuming" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"audit did not start: {self.log.read_text()[-2000:]}"
                )
            time.sleep(0.2)

    def stored(self) -> int:
        import psycopg2

        dsn = self.db_url.replace("postgresql+psycopg2://", "postgresql://")
        with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT seq FROM chain_head")
            return int(cursor.fetchone()[0])

    def wait_stored(self, count: int, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while self.stored() < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.stored()} of {count} stored")
            time.sleep(0.02)
        return time.monotonic()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def queue_depth(amqp_uri: str) -> int:
    from plumbing import topology

    with Connection(amqp_uri) as conn:
        _, count, _ = conn.channel().queue_declare(topology.AUDIT_QUEUE, passive=True)
        return int(count)


def measure(events: int = 20_000, burst: int = 10_000) -> dict[str, Any]:
    tag = run_tag()
    with rabbit_vhost(f"audit_raw_{tag}") as raw_uri:
        raw = measure_raw(raw_uri, events)
    with (
        rabbit_vhost(f"audit_svc_{tag}") as audit_uri,
        postgres_database("bench_audit", tag) as db_url,
        tempfile.TemporaryDirectory() as workdir,
    ):
        run = AuditRun(audit_uri, db_url, Path(workdir))
        try:
            start, published = _publish_all(audit_uri, events)
            stored_at = run.wait_stored(events)
            audit = Rate(events, stored_at - start, published - start)
            time.sleep(1.0)
            start, published = _publish_all(audit_uri, burst)
            stored_at = run.wait_stored(events + burst)
            deadline = time.monotonic() + 60
            while queue_depth(audit_uri) and time.monotonic() < deadline:
                time.sleep(0.02)
            emptied = max(stored_at, time.monotonic())
        finally:
            run.stop()
    return {
        "cores": os.cpu_count(),
        "publishers": PUBLISHERS,
        "events": events,
        "raw_rate": round(raw.rate, 1),
        "raw_publish_seconds": round(raw.publish_seconds, 2),
        "audit_rate": round(audit.rate, 1),
        "audit_publish_seconds": round(audit.publish_seconds, 2),
        "ratio": round(audit.rate / raw.rate, 3) if raw.rate else 0.0,
        "burst_events": burst,
        "burst_publish_seconds": round(published - start, 2),
        "burst_drained_after_last_publish_s": round(emptied - published, 2),
        "burst_total_s": round(emptied - start, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_ingest")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.events, args.burst)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"Audit ingestion, {result['cores']} cores, {PUBLISHERS} publishers, "
        f"{result['events']} events"
    )
    print(f"{'':34}{'raw consumer':>16}{'audit service':>16}")
    print(
        f"{'events/s (first publish to last)':34}{result['raw_rate']:>16,.0f}"
        f"{result['audit_rate']:>16,.0f}"
    )
    print(
        f"{'publishing took (s)':34}{result['raw_publish_seconds']:>16}"
        f"{result['audit_publish_seconds']:>16}"
    )
    print(
        f"ratio audit/raw: {result['ratio']:.2f} (needs >= 0.5); "
        f"audit {result['audit_rate']:,.0f}/s (needs >= 2,000)"
    )
    print(
        f"burst of {result['burst_events']}: published in "
        f"{result['burst_publish_seconds']} s, queue empty and all stored "
        f"{result['burst_drained_after_last_publish_s']} s after the last publish "
        f"({result['burst_total_s']} s from the first; needs <= 10 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
