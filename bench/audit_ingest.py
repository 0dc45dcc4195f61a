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

Two modes, printed side by side:

- **live**: the consumer runs while the four publishers publish; the rate is
  events divided by the seconds from the first publish to the last message
  acknowledged (raw) or stored (audit). On a small machine the publishers
  share the CPU with the consumer, so this caps both figures.
- **backlog**: the four publishers first fill the queue with the events while
  no consumer runs; then the consumer starts (raw, then audit, each on its
  own identical backlog in its own vhost) and the rate is events divided by
  the seconds from the moment it subscribed to the last message acknowledged
  or stored. This measures consumption alone.

Each threshold of the issue is printed with PASS or FAIL, and ``main``
writes every figure to ``bench/results/audit_ingest.json``. With
``--profile`` (py-spy installed by hand, see :mod:`bench.profiling`), the
audit process is sampled while it drains its backlog. Everything runs on
loopback, every loop is bounded, and the vhosts and databases are removed at
the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from kombu import Connection, Consumer, Producer

from bench import cpu, profiling
from bench.resources import (
    postgres_database,
    rabbit_vhost,
    raise_on_sigterm,
    run_tag,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
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


def _raw_consume(
    amqp_uri: str, total: int, ready: Event, started: Any, done: Any, used: Any
) -> None:
    """Receive and acknowledge ``total`` messages; record (wall clock) when
    the consumer subscribed and when the last message was acknowledged, and
    the CPU seconds it used in between (it has exited before its parent could
    read them from ``/proc``)."""
    from plumbing import topology

    received = 0
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        channel.basic_qos(0, PREFETCH, False)

        def on_message(message: Any) -> None:
            nonlocal received
            message.ack()
            received += 1

        started.value, cpu_before = time.time(), time.process_time()
        with Consumer(channel, [topology.audit_queue()], on_message=on_message):
            ready.set()
            deadline = time.monotonic() + 300
            while received < total and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    continue
    done.value, used.value = time.time(), time.process_time() - cpu_before


@dataclass
class Rate:
    events: int
    seconds: float
    publish_seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _start_raw_consumer(amqp_uri: str, total: int) -> tuple[BaseProcess, Any, Any, Any]:
    """The started consumer process and its shared values: when it started,
    when it was done, and its CPU seconds."""
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    started, done, used = (context.Value("d", 0.0) for _ in range(3))
    consumer = context.Process(
        target=_raw_consume,
        args=(amqp_uri, total, ready, started, done, used),
        daemon=True,
    )
    consumer.start()
    if not ready.wait(30):
        raise RuntimeError("the raw consumer did not subscribe")
    return consumer, started, done, used


def measure_raw(amqp_uri: str, total: int) -> Rate:
    """Live: the raw consumer subscribed, then the publishers publish."""
    from plumbing import topology

    topology.declare(amqp_uri)
    consumer, _, done, _ = _start_raw_consumer(amqp_uri, total)
    wall_offset = time.time() - time.monotonic()
    start, published = _publish_all(amqp_uri, total)
    consumer.join(timeout=300)
    return Rate(total, done.value - wall_offset - start, published - start)


def fill_backlog(amqp_uri: str, total: int) -> float:
    """With no consumer, publish ``total`` events into the audit queue and
    wait until the broker counts them all; returns the publishing seconds."""
    from plumbing import topology

    topology.declare(amqp_uri)
    start, published = _publish_all(amqp_uri, total)
    deadline = time.monotonic() + 60
    while queue_depth(amqp_uri) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {queue_depth(amqp_uri)} of {total} queued")
        time.sleep(0.05)
    return published - start


def measure_raw_backlog(amqp_uri: str, total: int) -> tuple[Rate, dict[str, float]]:
    """Backlog: the raw consumer drains ``total`` queued events; the rate and
    the CPU seconds used meanwhile (see :func:`bench.cpu.accounting`)."""
    publish_seconds = fill_backlog(amqp_uri, total)
    consumer, started, done, cpu_used = _start_raw_consumer(amqp_uri, total)
    with cpu.accounting({}) as used:
        consumer.join(timeout=300)
    used["consumer"] = round(cpu_used.value, 3)
    used["others"] = round(max(0.0, used["others"] - used["consumer"]), 3)
    return Rate(total, done.value - started.value, publish_seconds), used


def _cpu_figures(used: dict[str, float], events: int) -> dict[str, Any]:
    """CPU seconds of the consumer, the broker, the database and everything
    else on the machine during a drain, and the consumer's CPU per event."""
    return {
        "wall_s": used["wall"],
        "consumer_s": used["consumer"],
        "rabbitmq_s": used["rabbitmq"],
        "postgres_s": used["postgres"],
        "others_s": used["others"],
        "consumer_us_per_event": round(used["consumer"] / events * 1e6, 1),
    }


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
                    "services.audit.service:AuditService",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while self.consuming_since() is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"audit did not start: {self.log.read_text()[-2000:]}"
                )
            time.sleep(0.05)

    def consuming_since(self) -> float | None:
        """Wall-clock time of the log line saying the loop subscribed."""
        for line in self.log.read_text(errors="replace").splitlines():
            if "audit_ingest_consuming" not in line:
                continue
            try:
                stamp = json.loads(line)["timestamp"]
                return datetime.fromisoformat(stamp).timestamp()
            except (ValueError, KeyError):
                return time.time()
        return None

    def stored(self) -> int:
        import psycopg2

        dsn = self.db_url.replace("postgresql+psycopg2://", "postgresql://")
        with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT seq FROM chain_head")
            row = cursor.fetchone()
            if row is None:
                raise RuntimeError("the audit database has no chain head")
            return int(row[0])

    def wait_stored(self, count: int, timeout: float = 300) -> float:
        """Poll until ``count`` entries are stored; the monotonic time then."""
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


def measure_live(events: int, burst: int) -> dict[str, Any]:
    """Live mode: rates while publishing, then the burst drain of the audit."""
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


def measure_backlog(events: int, profile_dir: Path | None = None) -> dict[str, Any]:
    """Backlog mode: raw, then audit, each drains its own queue of ``events``."""
    tag = run_tag()
    with rabbit_vhost(f"audit_rawq_{tag}") as raw_uri:
        raw, raw_cpu = measure_raw_backlog(raw_uri, events)
    profiles: list[Path] = []
    with (
        rabbit_vhost(f"audit_svcq_{tag}") as audit_uri,
        postgres_database("bench_auditq", tag) as db_url,
        tempfile.TemporaryDirectory() as workdir,
    ):
        publish_seconds = fill_backlog(audit_uri, events)
        expected = events / 1500 + 2  # py-spy needs its duration up front
        run = AuditRun(audit_uri, db_url, Path(workdir))
        try:
            with (
                cpu.accounting({"consumer": run.proc.pid}) as audit_cpu,
                profiling.sampling(
                    {"audit": run.proc.pid}, "audit-backlog", expected, profile_dir
                ) as profiles,
            ):
                run.wait_stored(events)
                drained = time.time()
            started = run.consuming_since() or drained
            left = queue_depth(audit_uri)
        finally:
            run.stop()
    audit = Rate(events, drained - started, publish_seconds)
    result: dict[str, Any] = {
        "events": events,
        "raw_publish_seconds": round(raw.publish_seconds, 2),
        "raw_drain_seconds": round(raw.seconds, 2),
        "raw_rate": round(raw.rate, 1),
        "audit_publish_seconds": round(audit.publish_seconds, 2),
        "audit_drain_seconds": round(audit.seconds, 2),
        "audit_rate": round(audit.rate, 1),
        "audit_queue_left": left,
        "ratio": round(audit.rate / raw.rate, 3) if raw.rate else 0.0,
        "raw_cpu": _cpu_figures(raw_cpu, events),
        "audit_cpu": _cpu_figures(audit_cpu, events),
    }
    if profiles:
        result["profile"] = [
            str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            for path in profiles
        ]
    return result


def verdicts(live: dict[str, Any] | None, backlog: dict[str, Any] | None) -> list:
    """Each threshold of the issue against each measured mode, PASS or FAIL."""
    found = []
    for mode, figures in (("live", live), ("backlog", backlog)):
        if not figures:
            continue
        found.append(
            {
                "mode": mode,
                "check": "audit events/s >= 2000",
                "value": figures["audit_rate"],
                "pass": figures["audit_rate"] >= 2000,
            }
        )
        found.append(
            {
                "mode": mode,
                "check": "audit/raw ratio >= 0.5",
                "value": figures["ratio"],
                "pass": figures["ratio"] >= 0.5,
            }
        )
    if live:
        found.append(
            {
                "mode": "live",
                "check": f"burst of {live['burst_events']}: queue empty <= 10 s "
                "after the last publish",
                "value": live["burst_drained_after_last_publish_s"],
                "pass": live["burst_drained_after_last_publish_s"] <= 10,
            }
        )
    if backlog:
        seconds = 10_000 / backlog["audit_rate"] if backlog["audit_rate"] else None
        found.append(
            {
                "mode": "backlog",
                "check": "10,000 queued events drained <= 10 s (at the backlog rate)",
                "value": round(seconds, 2) if seconds is not None else None,
                "pass": seconds is not None and seconds <= 10,
            }
        )
    return found


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each number the median over the runs (nested figures likewise)."""
    found: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            middle = statistics.median(run[key] for run in runs)
            whole = isinstance(value, int) and float(middle).is_integer()
            found[key] = int(middle) if whole else round(middle, 3)
        elif isinstance(value, dict):
            found[key] = _median([run[key] for run in runs])
        else:
            found[key] = value
    return found


def measure(
    events: int = 20_000,
    burst: int = 10_000,
    modes: tuple[str, ...] = ("live", "backlog"),
    profile_dir: Path | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """Run the chosen modes ``repeat`` times, one after the other; every run's
    figures, their medians, and the verdicts on the medians."""
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for _ in range(repeat):
        if "live" in modes:
            runs["live"].append(measure_live(events, burst))
        if "backlog" in modes:
            runs["backlog"].append(measure_backlog(events, profile_dir))
    live = _median(runs["live"]) if "live" in modes else None
    backlog = _median(runs["backlog"]) if "backlog" in modes else None
    return {
        "cores": os.cpu_count(),
        "publishers": PUBLISHERS,
        "prefetch": PREFETCH,
        "repeat": repeat,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "live": live,
        "backlog": backlog,
        "runs": runs,
        "verdicts": verdicts(live, backlog),
    }


def _row(label: str, live: Any, backlog: Any) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float) and value >= 100:
            return f"{value:,.0f}"
        return str(value)

    return f"{label:36}{cell(live):>14}{cell(backlog):>14}"


def report(result: dict[str, Any]) -> str:
    """The figures as a table, both modes side by side, then the verdicts."""
    live, backlog = result["live"] or {}, result["backlog"] or {}
    lines = [
        f"Audit ingestion, {result['cores']} cores, {result['publishers']} "
        f"publishers, prefetch {result['prefetch']}, "
        f"{live.get('events') or backlog.get('events')} events per run",
        f"{'':36}{'live':>14}{'backlog':>14}",
        _row(
            "publishing (s), raw run",
            live.get("raw_publish_seconds"),
            backlog.get("raw_publish_seconds"),
        ),
        _row(
            "publishing (s), audit run",
            live.get("audit_publish_seconds"),
            backlog.get("audit_publish_seconds"),
        ),
        _row("drain (s), raw", None, backlog.get("raw_drain_seconds")),
        _row("drain (s), audit", None, backlog.get("audit_drain_seconds")),
        _row("raw consumer events/s", live.get("raw_rate"), backlog.get("raw_rate")),
        _row(
            "audit service events/s", live.get("audit_rate"), backlog.get("audit_rate")
        ),
        _row("ratio audit/raw", live.get("ratio"), backlog.get("ratio")),
    ]
    audit_cpu, raw_cpu = backlog.get("audit_cpu") or {}, backlog.get("raw_cpu") or {}
    if audit_cpu:
        lines.append(
            _row("CPU us/event, raw consumer", None, raw_cpu["consumer_us_per_event"])
        )
        lines.append(
            _row(
                "CPU us/event, audit service", None, audit_cpu["consumer_us_per_event"]
            )
        )
        lines.append(
            f"during the audit drain (s): audit {audit_cpu['consumer_s']}, "
            f"postgres {audit_cpu['postgres_s']}, rabbitmq {audit_cpu['rabbitmq_s']}, "
            f"rest of the machine {audit_cpu['others_s']}, wall {audit_cpu['wall_s']}"
        )
    if result["repeat"] > 1:
        lines.append(f"medians of {result['repeat']} runs; audit events/s per run:")
        for mode, runs in result["runs"].items():
            rates = ", ".join(f"{run['audit_rate']:,.0f}" for run in runs)
            ratios = ", ".join(f"{run['ratio']:.3f}" for run in runs)
            lines.append(f"  {mode}: {rates} (ratios {ratios})")
    if live:
        lines.append(
            f"live burst of {live['burst_events']}: published in "
            f"{live['burst_publish_seconds']} s, queue empty and all stored "
            f"{live['burst_drained_after_last_publish_s']} s after the last publish "
            f"({live['burst_total_s']} s from the first)"
        )
    lines.append("")
    for verdict in result["verdicts"]:
        mark = "PASS" if verdict["pass"] else "FAIL"
        lines.append(
            f"{mark}  {verdict['mode']:8}{verdict['check']}: {verdict['value']}"
        )
    lines.append(
        f"load average before {result['load_average_before']}, "
        f"after {result['load_average_after']} (the machine is shared)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_ingest")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--mode", choices=("both", "live", "backlog"), default="both")
    parser.add_argument(
        "--profile", action="store_true", help="sample the audit backlog drain"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "audit_ingest.json")
    parser.add_argument("--repeat", type=int, default=1, help="report medians")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    modes = ("live", "backlog") if args.mode == "both" else (args.mode,)
    with raise_on_sigterm():
        result = measure(
            args.events,
            args.burst,
            modes,
            RESULTS_DIR if args.profile else None,
            max(1, args.repeat),
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
