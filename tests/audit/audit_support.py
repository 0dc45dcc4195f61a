"""Helpers for the audit tests: the audit service as a separate process, a
fast publisher of envelopes, and read-outs of what the log stored.

The cuttable TCP proxy is the plumbing tests' own (``tests/plumbing/
plumbing_support.py``), loaded from its file: it forwards a loopback port to
RabbitMQ or PostgreSQL and is cut and restored by the test, so the shared
broker and database are never stopped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kombu import Connection, Producer
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from plumbing import topology
from plumbing.envelope import make_event, routing
from services.audit import crypto, queries
from services.audit.models import LogEntry

ROOT = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location(
    "audit_plumbing_support", ROOT / "tests" / "plumbing" / "plumbing_support.py"
)
assert _spec is not None and _spec.loader is not None
_support = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_support)
TcpProxy = _support.TcpProxy


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class AuditProcess:
    """``nameko run services.audit.service`` in its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AuditProcess:
        nameko = Path(sys.executable).with_name("nameko")
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open by the child)
        self.proc = subprocess.Popen(
            [
                str(nameko),
                "run",
                "--config",
                str(ROOT / "config.yml"),
                "services.audit.service",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_consuming(self, timeout: float = 30) -> None:
        def consuming() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"audit exited: {self.tail()}")
            return "audit_ingest_consuming" in self.log_path.read_text(errors="replace")

        wait_until(consuming, timeout, "the audit service to consume")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        deadline = time.monotonic() + 15
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            while self.proc.poll() is None:
                time.sleep(0.05)

    def tail(self, lines: int = 30) -> str:
        text_ = (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )
        return "\n".join(text_.splitlines()[-lines:])


def audit_env(
    *, amqp_uri: str, db_url: str, key_file: Path, data_dir: Path, **extra: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AMQP_URI": amqp_uri,
            "AUDIT_DATABASE_URL": db_url,
            "AUDIT_SIGNING_KEY_FILE": str(key_file),
            "AUDIT_DB_ROLE": "audit_writer",
            "DATA_DIR": str(data_dir),
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def sample_event(n: int = 0, org_id: str = "school-a", **kwargs: Any) -> dict[str, Any]:
    fields = {
        "subject_type": "user",
        "subject_id": f"u{n % 97}",
        "org_id": org_id,
        "actor": {"user_id": "admin-1", "ip": "127.0.0.1", "user_agent": "pytest"},
        "changes": {"active": {"before": True, "after": False}},
        "data": {"n": n},
    }
    fields.update(kwargs)
    type_ = fields.pop("type", "auth.user_updated")
    return make_event(type_, **fields)


class Publisher:
    """Publishes envelopes as the outbox relay does (exchange ``<source>.events``,
    routing key after the dot, message_id = event_id, persistent).

    Publishing is pipelined without per-message confirms; ``close()`` closes
    the channel, and RabbitMQ answers the close only after it has routed every
    message sent before it, so each counted message was enqueued.
    """

    def __init__(self, amqp_uri: str) -> None:
        topology.declare(amqp_uri)
        self.conn = Connection(amqp_uri)
        self.channel = self.conn.channel()
        self.producer = Producer(self.channel, serializer="json")
        self.published: list[str] = []

    def publish(self, envelope: dict[str, Any]) -> None:
        exchange, routing_key = routing(envelope["type"])
        self.producer.publish(
            envelope,
            exchange=topology.exchange(exchange.split(".")[0]),
            routing_key=routing_key,
            message_id=envelope["event_id"],
            delivery_mode=2,
        )
        self.published.append(envelope["event_id"])

    def publish_raw(self, body: bytes, routing_key: str = "broken") -> None:
        self.producer.publish(
            body,
            exchange=topology.exchange("auth"),
            routing_key=routing_key,
            content_type="application/json",
            content_encoding="binary",
            delivery_mode=2,
            message_id=str(uuid.uuid4()),
        )

    def close(self) -> None:
        self.channel.close()
        self.conn.release()


def stored_event_ids(db_url: str, types: tuple[str, ...] | None = None) -> list[str]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            query = select(LogEntry.event_id)
            if types:
                query = query.where(LogEntry.type.in_(types))
            return list(conn.execute(query).scalars())
    finally:
        engine.dispose()


def scalar(db_url: str, sql: str) -> Any:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def verify_database(db_url: str, key_file: Path) -> dict[str, Any]:
    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            public = crypto.load_signing_key(key_file).public_key()
            return queries.verify_stored_chain(session, public)
    finally:
        engine.dispose()


def queue_depth(amqp_uri: str, name: str) -> int:
    with Connection(amqp_uri) as conn:
        _, count, _ = conn.channel().queue_declare(name, passive=True)
        return int(count)


def assert_all_stored_once(db_url: str, published: list[str], key_file: Path) -> None:
    """stored == published, no duplicates, and the chain verifies."""
    stored = stored_event_ids(db_url)
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert set(stored) >= set(published)
    missing = set(published) - set(stored)
    assert not missing, f"{len(missing)} published events were not stored"
    result = verify_database(db_url, key_file)
    assert result["ok"], json.dumps(result)[:2000]
