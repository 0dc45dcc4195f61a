"""Fixtures for the plumbing tests: an empty PostgreSQL database, a tiny
test-only model beside the outbox, a TCP proxy in front of RabbitMQ that a
test can cut, and a queue bound to an event exchange to see what was
published.
"""

from __future__ import annotations

# nameko runs on eventlet; the pytest plugin of nameko 2.14 no longer
# patches, so the plumbing tests do it before anything opens a socket.
# eventlet warns about its own deprecation on import (a plain Warning whose
# message starts with a newline, which the pyproject filters do not match).
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import eventlet

eventlet.monkey_patch()

import socket  # noqa: E402 (after the monkey patch, on purpose)
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

import psycopg2  # noqa: E402
import pytest  # noqa: E402
from kombu import Connection, Queue  # noqa: E402
from psycopg2 import sql  # noqa: E402
from sqlalchemy import Column, Integer, MetaData, String, Table  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from plumbing import topology  # noqa: E402
from plumbing.database import make_engine  # noqa: E402
from plumbing.outbox import outbox_metadata  # noqa: E402

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL_BASE = "postgresql+psycopg2://postgres@127.0.0.1:5432"

# The test-only model: a widget with a name, written beside its event.
test_metadata = MetaData()
WIDGETS = Table(
    "widgets",
    test_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False),
)


def _admin(statement: sql.Composable) -> None:
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


@pytest.fixture
def make_empty_database() -> Iterator[Callable[[], str]]:
    """Factory: a new empty PostgreSQL database, dropped after the test."""
    created: list[str] = []

    def make() -> str:
        name = f"cpd_t_plumbing_{uuid.uuid4().hex[:12]}"
        _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return f"{PG_URL_BASE}/{name}"

    yield make
    for name in created:
        _admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


@pytest.fixture
def widget_db(make_empty_database: Callable[[], str]) -> Iterator[tuple[str, Engine]]:
    """A database with the test-only ``widgets`` table and the outbox."""
    url = make_empty_database()
    engine = make_engine(url)
    test_metadata.create_all(engine)
    outbox_metadata.create_all(engine)
    yield url, engine
    engine.dispose()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the broker until cut.

    ``cut()`` stops listening and resets every open connection, so clients
    see the broker as gone; ``restore()`` listens again on the same port.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: socket.socket | None = None
        self.conns: set[socket.socket] = set()
        self.accepted = 0
        self.restore()

    def restore(self) -> None:
        server = eventlet.listen(("127.0.0.1", self.port), reuse_addr=True)
        self.port = server.getsockname()[1]
        self.server = server
        eventlet.spawn(self._accept, server)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if self.server is not server:
                client.close()
                return
            try:
                upstream = eventlet.connect(self.target)
            except OSError:
                client.close()
                continue
            self.accepted += 1
            self.conns.update((client, upstream))
            eventlet.spawn(self._pipe, client, upstream)
            eventlet.spawn(self._pipe, upstream, client)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        self.conns.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for sock in list(self.conns):
            self._close(sock)
        eventlet.sleep(0.05)


@pytest.fixture
def broker_proxy(amqp_uri: str) -> Iterator[tuple[TcpProxy, str]]:
    """A cuttable TCP proxy to RabbitMQ, and the AMQP URI that goes through it."""
    parts = urlparse(amqp_uri)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    proxied = parts._replace(
        netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    ).geturl()
    yield proxy, proxied
    proxy.cut()


class EventTap:
    """A queue bound to one event exchange, read without a consumer thread."""

    def __init__(self, amqp_uri: str, source: str = "auth") -> None:
        self.conn = Connection(amqp_uri)
        self.queue = Queue(
            f"test.tap.{uuid.uuid4().hex[:8]}",
            exchange=topology.exchange(source),
            routing_key="#",
            auto_delete=False,
        )(self.conn.channel())
        self.queue.exchange.declare()
        self.queue.declare()

    def take(self, expect: int = 0, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Every message now in the queue, waiting until ``expect`` are there."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.queue.get(no_ack=True)
            if message is not None:
                found.append(message.decode())
                continue
            if len(found) >= expect or time.monotonic() > deadline:
                return found
            eventlet.sleep(0.05)

    def close(self) -> None:
        self.conn.release()


@pytest.fixture
def event_tap(amqp_uri: str) -> Iterator[EventTap]:
    """What reaches a subscriber of ``auth.events`` in this test's vhost."""
    topology.declare(amqp_uri)
    tap = EventTap(amqp_uri)
    yield tap
    tap.close()
