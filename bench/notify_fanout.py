"""The notify fan-out benchmark: ``python -m bench.notify_fanout``.

A trust-wide review cycle for N staff makes the reviews service emit N
``reviews.review_created`` events; the notify service handles them one by
one, each with a ``notification_context`` RPC back to reviews, an in-app
notification and an email. How long until the last person is told?

One run seeds a trust of 20 schools and N staff (``--staff``, 5,000) in a
fresh reviews database (the seeding of :mod:`bench.reviews_report`) and the
same people as contacts in a fresh notify database (auth's
``organisation_created``/``user_created`` envelopes applied by notify's own
domain code), declares every queue on a fresh vhost, and starts
``nameko run`` processes: reviews, K notify instances (``--instances``,
``1,2``: one configuration after the other, each on fresh databases and a
fresh vhost) and ``scripts.mail_sink`` as the SMTP server. Then, as a trust
admin, it opens the cycle over RPC and times, from the RPC's start and from
its return:

- every ``review_created`` event published (a tap queue bound beside
  notify's counts them);
- every in-app notification stored, and every email ``sent`` (polled in
  notify's database every 0.1 s);
- each person's notification time and each email's arrival at the sink,
  as percentiles;

and, in the same configuration, once notify is stopped, the baselines on
the same reviews process and vhost: N sequential ``notification_context``
RPCs from one client (what notify asks per event), the same with as many in
flight as a notify process has workers, and a raw kombu consumer that only
acknowledges the same N events from the tap queue. Notify's rates are
printed as ratios to them. Every wait is bounded; the vhost, the databases,
the processes and the temporary folder are removed at the end, also on an
error or Ctrl-C. Figures go to ``bench/results/notify_fanout.json``.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402 (after monkey_patch)
import collections  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import psycopg2  # noqa: E402
from kombu import Connection, Consumer, Queue  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from bench import cpu  # noqa: E402
from bench.resources import (  # noqa: E402
    postgres_database,
    rabbit_vhost,
    raise_on_sigterm,
    run_tag,
)
from bench.reviews_report import CYCLE, seed_directory  # noqa: E402
from bench.stats import percentile  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
TAP_QUEUE = "bench.notify_fanout.review_created"
POLL_SECONDS = 0.1
DEFAULT_WORKERS = 32  # config.yml's max_workers when MAX_WORKERS is unset


class BenchFailed(RuntimeError):
    """A wait ran out or a process died: the run measured nothing."""


# -- seeding ------------------------------------------------------------------


def _dsn(db_url: str) -> str:
    return db_url.replace("postgresql+psycopg2://", "postgresql://")


def _session_factory(db_url: str) -> tuple[Any, Any]:
    from plumbing.database import ServiceSession, make_engine

    engine = make_engine(db_url)
    factory = sessionmaker(bind=engine, class_=ServiceSession, expire_on_commit=False)
    return engine, factory


def seed_reviews(db_url: str, schools: int, staff: int) -> dict[str, Any]:
    """The reviews directory (see :func:`bench.reviews_report.seed_directory`)."""
    engine, factory = _session_factory(db_url)
    try:
        with factory() as db:
            trust, school_ids, people, admin = seed_directory(db, schools, staff)
    finally:
        engine.dispose()
    return {"trust": trust, "schools": school_ids, "people": people, "admin": admin}


def auth_envelopes(directory: dict[str, Any]) -> list[dict[str, Any]]:
    """The auth events that would have told notify of the trust, its schools
    and its people, as auth publishes them (cf. tests/notify/conftest.py)."""
    from plumbing.envelope import make_event

    def event(kind: str, subject: str, subject_id: str, after: dict[str, Any]):
        return make_event(
            kind,
            subject_type=subject,
            subject_id=subject_id,
            org_id=after.get("org_id", subject_id),
            changes={key: {"before": None, "after": v} for key, v in after.items()},
            actor={"user_id": None},
        )

    trust = directory["trust"]
    found = [
        event(
            "auth.organisation_created",
            "organisation",
            trust,
            {"kind": "trust", "name": "Bench Trust"},
        )
    ]
    for index, school in enumerate(directory["schools"]):
        found.append(
            event(
                "auth.organisation_created",
                "organisation",
                school,
                {
                    "kind": "school",
                    "name": f"School {index:02}",
                    "parent_trust_id": trust,
                },
            )
        )
    for index, person in enumerate(directory["people"]):
        found.append(
            event(
                "auth.user_created",
                "user",
                person["id"],
                {
                    "username": f"staff{index}",
                    "given_name": person["given_name"],
                    "family_name": person["family_name"],
                    "email": f"staff{index}@bench.example",
                    "org_id": person["org_id"],
                    "line_manager_id": person["line_manager_id"],
                    "active": True,
                    "roles": [],
                },
            )
        )
    return found


def seed_notify(db_url: str, directory: dict[str, Any]) -> int:
    """Notify's copy of contacts, from auth's envelopes through notify's own
    ``handlers.apply_side_effects`` (what handling them does to contacts;
    the in-app ``account_created`` notices they would also make are left out,
    so that every notification counted is the bench's). Answers the count."""
    from datetime import UTC, datetime

    from services.notify import handlers

    envelopes = auth_envelopes(directory)
    engine, factory = _session_factory(db_url)
    try:
        with factory() as db:
            for n, envelope in enumerate(envelopes, 1):
                handlers.apply_side_effects(db, envelope, now=datetime.now(UTC))
                if n % 1000 == 0:
                    db.commit()
            db.commit()
    finally:
        engine.dispose()
    return len(envelopes)


# -- processes ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Processes:
    """The mail sink, reviews and K notify instances, each its own process
    group with its own log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str]) -> None:
        with open(self.workdir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise BenchFailed(
                    f"{name} exited with {proc.returncode}:\n{self.log(name)[-2000:]}"
                )

    def pids(self, prefix: str = "") -> dict[str, int]:
        return {n: p.pid for n, p in self.procs.items() if n.startswith(prefix)}

    def stop(self, names: list[str] | None = None) -> None:
        chosen = [n for n in (names or list(self.procs)) if n in self.procs]
        for name in chosen:
            if self.procs[name].poll() is None:
                os.killpg(self.procs[name].pid, signal.SIGTERM)
        for name in chosen:
            proc = self.procs[name]
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def _consumers(channel: Any, queue: str) -> int:
    try:
        _, _, consumers = channel.queue_declare(queue, passive=True)
    except Exception:  # noqa: BLE001 (not declared yet: nobody consumes)
        return 0
    return int(consumers)


def wait_ready(
    procs: Processes, amqp_uri: str, smtp_port: int, instances: int, timeout: float
) -> None:
    """Until the sink accepts connections, reviews answers ``ping`` and every
    notify instance consumes its queue; else BenchFailed."""
    from nameko.standalone.rpc import ServiceRpcProxy

    deadline = time.monotonic() + timeout
    waiting = "the mail sink"
    while True:
        procs.check_alive()
        if time.monotonic() > deadline:
            raise BenchFailed(f"not ready after {timeout:.0f} s: waiting for {waiting}")
        try:
            socket.create_connection(("127.0.0.1", smtp_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    with Connection(amqp_uri) as conn:
        while True:
            procs.check_alive()
            channel = conn.channel()
            reviews = _consumers(channel, "rpc-reviews")
            notify = _consumers(channel, "notify.incoming")
            channel.close()
            if reviews >= 1 and notify >= instances:
                break
            waiting = f"consumers: reviews rpc {reviews}, notify {notify}/{instances}"
            if time.monotonic() > deadline:
                raise BenchFailed(
                    f"not ready after {timeout:.0f} s: waiting for {waiting}"
                )
            time.sleep(0.2)
    config = {"AMQP_URI": amqp_uri, "serializer": "json"}
    with ServiceRpcProxy("reviews", config, timeout=30) as proxy:
        proxy.ping()


# -- the fan-out --------------------------------------------------------------


def _progress(cursor: Any) -> tuple[int, int]:
    cursor.execute(
        "SELECT (SELECT count(*) FROM notifications WHERE kind = 'review_created'),"
        " (SELECT count(*) FROM emails"
        "  WHERE kind = 'review_created' AND status = 'sent')"
    )
    stored, sent = cursor.fetchone()
    return int(stored), int(sent)


def _depth(channel: Any, queue: str) -> int:
    _, messages, _ = channel.queue_declare(queue, passive=True)
    return int(messages)


def watch(
    procs: Processes,
    cursor: Any,
    channel: Any,
    total: int,
    timeout: float,
    stall: float,
) -> tuple[dict[str, float], list[tuple[float, int, int, int]]]:
    """Poll until every event is published, every notification stored and
    every email sent; the wall-clock time each was first seen complete, and
    every sample ``(time, published, stored, sent)``. BenchFailed after
    ``timeout`` s, or ``stall`` s with no progress."""
    seen: dict[str, float] = {}
    samples: list[tuple[float, int, int, int]] = []
    started = last_change = time.monotonic()
    last: tuple[int, ...] = ()
    while True:
        published = _depth(channel, TAP_QUEUE)
        stored, sent = _progress(cursor)
        now_wall, now = time.time(), time.monotonic()
        samples.append((now_wall, published, stored, sent))
        for name, count in (
            ("published", published),
            ("stored", stored),
            ("sent", sent),
        ):
            if count >= total and name not in seen:
                seen[name] = now_wall
        if len(seen) == 3:
            return seen, samples
        state = f"{published}/{total} published, {stored} stored, {sent} sent"
        if (published, stored, sent) != last:
            last, last_change = (published, stored, sent), now
        elif now - last_change > stall:
            raise BenchFailed(f"no progress for {stall:.0f} s: {state}")
        if now - started > timeout:
            raise BenchFailed(f"not done after {timeout:.0f} s: {state}")
        procs.check_alive()
        time.sleep(POLL_SECONDS)


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.50), 2),
        "p90": round(percentile(values, 0.90), 2),
        "max": round(max(values), 2) if values else 0.0,
    }


def _reached(
    samples: list[tuple[float, int, int, int]], column: int, total: int, opened: float
) -> dict[str, float | None]:
    """Seconds from ``opened`` until the polled count first reached half,
    90 % and all of ``total`` (to the 0.1 s of the polling)."""
    found = {}
    for label, percent in (("p50", 50), ("p90", 90), ("max", 100)):
        need = max(1, -(-total * percent // 100))
        first = next((s[0] for s in samples if s[column] >= need), None)
        found[label] = round(first - opened, 2) if first is not None else None
    return found


def outcome(cursor: Any, mail_dir: Path, opened: float) -> dict[str, Any]:
    """What notify stored and the sink received, and how late, from the open
    RPC's start: counts that show loss or duplication, and per-person times
    (a notification's ``created_at`` is when its handler began, before its
    RPC and its commit; an email's time is when the sink wrote it)."""
    cursor.execute(
        "SELECT count(*), count(DISTINCT user_id),"
        " array_agg(extract(epoch FROM created_at))"
        " FROM notifications WHERE kind = 'review_created'"
    )
    notes, note_people, note_times = cursor.fetchone()
    cursor.execute(
        "SELECT status, count(*) FROM emails WHERE kind = 'review_created'"
        " GROUP BY status"
    )
    statuses = dict(cursor.fetchall())
    cursor.execute("SELECT count(*) FROM processed_events")
    processed = cursor.fetchone()[0]
    cursor.execute("SELECT count(*) FROM failed_events")
    failed_events = cursor.fetchone()[0]
    files = [p for p in mail_dir.glob("*.eml")]
    recipients = {p.name.split("-", 1)[1] for p in files}
    mail_times = [p.stat().st_mtime - opened for p in files]
    return {
        "notifications": int(notes),
        "notified_people": int(note_people),
        "emails_by_status": {k: int(v) for k, v in statuses.items()},
        "processed_events": int(processed),
        "failed_events": int(failed_events),
        "sink_messages": len(files),
        "sink_recipients": len(recipients),
        "handler_began_s": _spread([float(t) - opened for t in note_times or ()]),
        "emailed_s": _spread(mail_times),
    }


def _log_counts(text: str) -> dict[str, int]:
    """Warnings and errors in a service's JSON log, by event name."""
    counts: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "Traceback" in line or "Error" in line:
                counts["unparsed error line"] += 1
            continue
        if isinstance(entry, dict) and entry.get("level") in (
            "warning",
            "error",
            "critical",
        ):
            counts[str(entry.get("event"))] += 1
    return dict(counts)


# -- baselines ----------------------------------------------------------------


def rpc_baseline(
    amqp_uri: str, review_ids: list[str], in_flight: int, timeout: float
) -> dict[str, float]:
    """``notification_context`` for every review, as notify asks it (on
    notify's own account), from one client with ``in_flight`` calls out."""
    from nameko.standalone.rpc import ServiceRpcProxy

    from plumbing.identity import service_identity

    config = {"AMQP_URI": amqp_uri, "serializer": "json"}
    context = {"identity": service_identity("notify").to_json()}
    deadline = time.monotonic() + timeout
    with ServiceRpcProxy("reviews", config, context_data=context, timeout=30) as proxy:
        for review_id in review_ids[:20]:  # warm-up: connections, plans
            proxy.notification_context(review_id=review_id)
        started = time.perf_counter()
        pending: collections.deque[Any] = collections.deque()
        for review_id in review_ids:
            if time.monotonic() > deadline:
                raise BenchFailed(f"the RPC baseline took over {timeout:.0f} s")
            pending.append(proxy.notification_context.call_async(review_id=review_id))
            if len(pending) >= in_flight:
                pending.popleft().result()
        while pending:
            pending.popleft().result()
        seconds = time.perf_counter() - started
    return {
        "calls": len(review_ids),
        "in_flight": in_flight,
        "seconds": round(seconds, 3),
        "rate": round(len(review_ids) / seconds, 1),
    }


def ack_baseline(
    amqp_uri: str, total: int, prefetch: int, timeout: float
) -> dict[str, float]:
    """A kombu consumer that only acknowledges the N events waiting in the
    tap queue (prefetch as a notify process's workers)."""
    received = 0

    def on_message(_body: Any, message: Any) -> None:
        nonlocal received
        message.ack()
        received += 1

    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        channel.basic_qos(0, prefetch, False)
        queue = Queue(TAP_QUEUE, no_declare=True)
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        with Consumer(channel, [queue], callbacks=[on_message], accept=["json"]):
            while received < total:
                if time.monotonic() > deadline:
                    raise BenchFailed(
                        f"the raw consumer had {received}/{total} after {timeout:.0f} s"
                    )
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    continue
        seconds = time.perf_counter() - started
    return {
        "events": total,
        "prefetch": prefetch,
        "seconds": round(seconds, 3),
        "rate": round(total / seconds, 1),
    }


# -- one configuration --------------------------------------------------------


def _env(
    amqp_uri: str,
    reviews_url: str,
    notify_url: str,
    workdir: Path,
    smtp_port: int,
    overrides: dict[str, str],
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AMQP_URI=amqp_uri,
        REVIEWS_DATABASE_URL=reviews_url,
        NOTIFY_DATABASE_URL=notify_url,
        DATA_DIR=str(workdir),
        LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
        NOTIFY_SMTP_HOST="127.0.0.1",
        NOTIFY_SMTP_PORT=str(smtp_port),
        NOTIFY_SMTP_TLS="none",
        # Reminders, digests and retention stay out of the way of the run.
        NOTIFY_TIMER_SECONDS="3600",
    )
    env.update(overrides)
    return env


def run_configuration(
    staff: int,
    schools: int,
    instances: int,
    overrides: dict[str, str],
    timeout: float,
    stall: float,
) -> dict[str, Any]:
    """Seed, start, open the cycle, wait for the last person to be told, then
    the baselines; everything removed on the way out."""
    from nameko.standalone.rpc import ServiceRpcProxy

    from plumbing import migrations
    from scripts.declare_queues import declare_all
    from scripts.processes import PROCESS_MODULES, mail_sink_command, nameko_command

    tag = run_tag()
    with ExitStack() as stack:
        reviews_url = stack.enter_context(postgres_database("bench_nf_reviews", tag))
        notify_url = stack.enter_context(postgres_database("bench_nf_notify", tag))
        amqp_uri = stack.enter_context(rabbit_vhost(f"notify_fanout_{tag}"))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        migrations.upgrade("reviews", reviews_url)
        migrations.upgrade("notify", notify_url)
        seed_started = time.perf_counter()
        directory = seed_reviews(reviews_url, schools, staff)
        total = len(directory["people"])
        seed_notify(notify_url, directory)
        seed_seconds = time.perf_counter() - seed_started
        declare_all(amqp_uri)
        with Connection(amqp_uri) as conn:
            from plumbing import topology

            Queue(
                TAP_QUEUE,
                exchange=topology.exchange("reviews"),
                routing_key="review_created",
                durable=True,
            )(conn.channel()).declare()

        smtp_port = _free_port()
        mail_dir = workdir / "mail"
        env = _env(amqp_uri, reviews_url, notify_url, workdir, smtp_port, overrides)
        procs = Processes(workdir, env)
        stack.callback(procs.stop)
        procs.start("mailsink", mail_sink_command(mail_dir, smtp_port))
        procs.start("reviews", nameko_command(PROCESS_MODULES["reviews"]))
        for n in range(1, instances + 1):
            procs.start(f"notify{n}", nameko_command(PROCESS_MODULES["notify"]))
        wait_ready(procs, amqp_uri, smtp_port, instances, timeout=90)

        config = {"AMQP_URI": amqp_uri, "serializer": "json"}
        admin = {"identity": directory["admin"].to_json()}
        connection = psycopg2.connect(_dsn(notify_url))
        connection.autocommit = True
        stack.callback(connection.close)
        cursor = connection.cursor()
        watched = Connection(amqp_uri)
        stack.callback(watched.release)
        channel = watched.channel()
        load_before = [round(x, 2) for x in os.getloadavg()]
        with (
            cpu.accounting({**procs.pids(), "bench": os.getpid()}) as used,
            ServiceRpcProxy("reviews", config, context_data=admin, timeout=300) as rpc,
        ):
            opened = time.time()
            cycle = rpc.open_cycle(dict(CYCLE, org_id=directory["trust"]))
            returned = time.time()
            seen, samples = watch(procs, cursor, channel, total, timeout, stall)
        time.sleep(1.0)  # anything sent twice or late shows up meanwhile
        result = outcome(cursor, mail_dir, opened)
        result["told_in_app_s"] = _reached(samples, 2, total, opened)
        result["email_sent_status_s"] = _reached(samples, 3, total, opened)
        result["published_after_wait"] = _depth(channel, TAP_QUEUE)
        logs = {n: _log_counts(procs.log(n)) for n in procs.pids("notify")}
        logs["reviews"] = _log_counts(procs.log("reviews"))
        procs.stop([n for n in procs.pids("notify")])

        review_ids = [
            row[0]
            for row in _query(
                reviews_url,
                "SELECT id FROM reviews WHERE cycle_id = %s ORDER BY id",
                (cycle["id"],),
            )
        ]
        workers = int(overrides.get("MAX_WORKERS", DEFAULT_WORKERS))
        rpc_one = rpc_baseline(amqp_uri, review_ids, 1, timeout)
        rpc_many = rpc_baseline(amqp_uri, review_ids, workers, timeout)
        acked = ack_baseline(amqp_uri, total, workers, timeout)

    stored_s = seen["stored"] - returned
    sent_s = seen["sent"] - returned
    handled_rate = total / stored_s if stored_s > 0 else 0.0
    email_rate = total / sent_s if sent_s > 0 else 0.0
    return {
        "instances": instances,
        "staff": total,
        "schools": len(directory["schools"]),
        "max_workers": workers,
        "seed_seconds": round(seed_seconds, 2),
        "load_average_before": load_before,
        "open_cycle_rpc_s": round(returned - opened, 3),
        "all_published_s": {
            "from_return": round(seen["published"] - returned, 2),
            "from_start": round(seen["published"] - opened, 2),
        },
        "all_stored_s": {
            "from_return": round(stored_s, 2),
            "from_start": round(seen["stored"] - opened, 2),
        },
        "all_sent_s": {
            "from_return": round(sent_s, 2),
            "from_start": round(seen["sent"] - opened, 2),
        },
        "notify_events_per_s": round(handled_rate, 1),
        "emails_per_s": round(email_rate, 1),
        "baseline_rpc_sequential": rpc_one,
        "baseline_rpc_concurrent": rpc_many,
        "baseline_raw_ack": acked,
        "ratios": {
            "notify_to_rpc_sequential": _ratio(handled_rate, rpc_one["rate"]),
            "notify_to_rpc_concurrent": _ratio(handled_rate, rpc_many["rate"]),
            "notify_to_raw_ack": _ratio(handled_rate, acked["rate"]),
            "emails_to_rpc_sequential": _ratio(email_rate, rpc_one["rate"]),
        },
        "outcome": result,
        "log_warnings": logs,
        "cpu_s": used,
        "cpu_ms_per_event": {
            name: round(seconds / total * 1000, 3)
            for name, seconds in used.items()
            if name not in ("machine_total", "wall")
        },
    }


def _ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 3) if baseline else 0.0


def _query(db_url: str, statement: str, params: tuple[Any, ...]) -> list[tuple]:
    connection = psycopg2.connect(_dsn(db_url))
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall()
    finally:
        connection.close()


def problems(run: dict[str, Any]) -> list[str]:
    """What went wrong in a configuration: people not told, told twice,
    emails not sent, events set aside."""
    found = []
    result, total = run["outcome"], run["staff"]
    if result["notifications"] != total or result["notified_people"] != total:
        found.append(
            f"{result['notifications']} notifications for "
            f"{result['notified_people']} people, expected {total}"
        )
    sent = result["emails_by_status"].get("sent", 0)
    if sent != total or len(result["emails_by_status"]) != 1:
        found.append(f"emails by status {result['emails_by_status']}, expected {total}")
    if result["sink_messages"] != total or result["sink_recipients"] != total:
        found.append(
            f"the sink received {result['sink_messages']} messages for "
            f"{result['sink_recipients']} recipients, expected {total}"
        )
    if result["failed_events"]:
        found.append(f"{result['failed_events']} events set aside")
    return found


# -- the whole run ------------------------------------------------------------


def measure(
    staff: int = 5000,
    schools: int = 20,
    instances: tuple[int, ...] = (1, 2),
    overrides: dict[str, str] | None = None,
    timeout: float = 900.0,
    stall: float = 120.0,
) -> dict[str, Any]:
    """Each notify instance count on its own fresh platform, one after the
    other; every figure with its baselines from the same configuration."""
    overrides = dict(overrides or {})
    schools = max(1, min(schools, staff))
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs = [
        run_configuration(staff, schools, count, overrides, timeout, stall)
        for count in instances
    ]
    for run in runs:
        run["problems"] = problems(run)
    return {
        "cores": os.cpu_count(),
        "staff": staff,
        "overrides": overrides,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 1000:
        return f"{value:,.0f}"
    return str(value)


# (label, path into a configuration's figures); a path of "notify*" sums
# every notify instance.
ROWS: list[tuple[str, tuple[str | int, ...]]] = [
    ("open the cycle (RPC, s)", ("open_cycle_rpc_s",)),
    (
        "all events published, s after the RPC returned",
        ("all_published_s", "from_return"),
    ),
    (
        "all in-app notifications stored, s after return",
        ("all_stored_s", "from_return"),
    ),
    ("  ... s after the RPC started", ("all_stored_s", "from_start")),
    ("all emails sent, s after return", ("all_sent_s", "from_return")),
    ("  ... s after the RPC started", ("all_sent_s", "from_start")),
    ("notify events/s (N / s to all stored)", ("notify_events_per_s",)),
    ("emails/s (N / s to all sent)", ("emails_per_s",)),
    (
        "baseline: notification_context RPCs/s, 1 client",
        ("baseline_rpc_sequential", "rate"),
    ),
    ("baseline: the same, MAX_WORKERS in flight", ("baseline_rpc_concurrent", "rate")),
    ("baseline: raw consumer acks/s, same N events", ("baseline_raw_ack", "rate")),
    ("ratio notify / RPCs, 1 client", ("ratios", "notify_to_rpc_sequential")),
    ("ratio notify / RPCs in flight", ("ratios", "notify_to_rpc_concurrent")),
    ("ratio notify / raw acks", ("ratios", "notify_to_raw_ack")),
    ("ratio emails / RPCs, 1 client", ("ratios", "emails_to_rpc_sequential")),
    (
        "people told in app (polled), s from start: half",
        ("outcome", "told_in_app_s", "p50"),
    ),
    ("  90 %", ("outcome", "told_in_app_s", "p90")),
    ("  all", ("outcome", "told_in_app_s", "max")),
    ("emails at the sink, s from start: half", ("outcome", "emailed_s", "p50")),
    ("  90 %", ("outcome", "emailed_s", "p90")),
    ("  all", ("outcome", "emailed_s", "max")),
    ("CPU ms/event: reviews", ("cpu_ms_per_event", "reviews")),
    ("CPU ms/event: notify (all instances)", ("cpu_ms_per_event", "notify*")),
    ("CPU ms/event: mail sink", ("cpu_ms_per_event", "mailsink")),
    ("CPU ms/event: postgres", ("cpu_ms_per_event", "postgres")),
    ("CPU ms/event: rabbitmq", ("cpu_ms_per_event", "rabbitmq")),
    ("CPU ms/event: this bench (polling)", ("cpu_ms_per_event", "bench")),
    ("CPU ms/event: rest of the machine", ("cpu_ms_per_event", "others")),
    ("load average (1 min) before", ("load_average_before", 0)),
]


def _pick(figures: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if key == "notify*":
            return round(
                sum(v for k, v in figures.items() if k.startswith("notify")), 3
            )
        try:
            figures = figures[key]
        except (KeyError, IndexError, TypeError):
            return None
    return figures


def report(result: dict[str, Any]) -> str:
    """One column per notify instance count, one row per figure."""
    runs = result["runs"]
    first = runs[0]
    width = 52
    lines = [
        f"Notify fan-out: a trust-wide cycle for {first['staff']} staff in "
        f"{first['schools']} schools, {result['cores']} cores, MAX_WORKERS "
        f"{first['max_workers']}"
        + (f", set {result['overrides']}" if result["overrides"] else ""),
        f"{'':{width}}"
        + "".join(f"{str(r['instances']) + ' notify':>12}" for r in runs),
    ]
    for label, path in ROWS:
        cells = "".join(f"{_cell(_pick(run, path)):>12}" for run in runs)
        lines.append(f"{label:{width}}{cells}")
    for run in runs:
        counts = run["outcome"]
        lines.append(
            f"{run['instances']} notify: {counts['notifications']} notifications, "
            f"emails {counts['emails_by_status']}, sink {counts['sink_messages']}; "
            f"log warnings {run['log_warnings']}"
        )
        for problem in run["problems"]:
            lines.append(f"  PROBLEM {problem}")
    lines.append(
        f"load average before {result['load_average_before']}, "
        f"after {result['load_average_after']} (the machine is shared)"
    )
    return "\n".join(lines)


def _overrides(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE, not {pair!r}")
        found[key] = value
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.notify_fanout",
        description="How long until the last of N staff is told of a "
        "trust-wide review cycle: notify's fan-out beside its baselines.",
    )
    parser.add_argument("--staff", type=int, default=5000, help="default: 5000")
    parser.add_argument("--schools", type=int, default=20, help="default: 20")
    parser.add_argument(
        "--instances",
        default="1,2",
        help="notify instance counts to measure, one after the other (default: 1,2)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the service processes, e.g. MAX_WORKERS=64",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds the fan-out (and each baseline) may take (default: 900)",
    )
    parser.add_argument(
        "--stall",
        type=float,
        default=120.0,
        help="give up after this many seconds without progress (default: 120)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "notify_fanout.json")
    args = parser.parse_args(argv)
    try:
        counts = tuple(int(n) for n in args.instances.split(",") if n.strip())
        overrides = _overrides(args.set)
    except (ValueError, argparse.ArgumentTypeError) as error:
        parser.error(str(error))
    if not counts or min(counts) < 1 or args.staff < 1:
        parser.error("--staff and every --instances count must be at least 1")
    try:
        with raise_on_sigterm():
            result = measure(
                args.staff, args.schools, counts, overrides, args.timeout, args.stall
            )
    except KeyboardInterrupt:
        print("interrupted; the run's processes, vhost and databases were removed")
        return 130
    except BenchFailed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    return 1 if any(run["problems"] for run in result["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
