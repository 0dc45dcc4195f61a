"""Helpers for the plumbing tests: a test-only table, a cuttable TCP proxy in
front of RabbitMQ, and a queue that shows what was published."""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

import eventlet
from kombu import Connection, Queue
from sqlalchemy import Column, Integer, MetaData, String, Table

from plumbing import topology

# The test-only model: a widget with a name, written beside its event.
test_metadata = MetaData()
WIDGETS = Table(
    "widgets",
    test_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(50), nullable=False),
)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the broker until cut.

    ``cut()`` stops listening and resets every open connection, so clients
    see the broker as gone; ``restore()`` listens again on the same port.
    Sockets are only shut down from outside; each is closed by the one
    greenthread that reads it, because eventlet must not see a socket closed
    under a greenthread that waits on it.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: socket.socket | None = None
        self.conns: set[socket.socket] = set()
        self.restore()

    def restore(self) -> None:
        server = eventlet.listen(("127.0.0.1", self.port), reuse_addr=True)
        self.port = server.getsockname()[1]
        self.server = server
        eventlet.spawn(self._accept, server)

    def _accept(self, server: socket.socket) -> None:
        try:
            while self.server is server:
                client, _ = server.accept()
                if self.server is not server:
                    client.close()
                    break
                try:
                    upstream = eventlet.connect(self.target)
                except OSError:
                    client.close()
                    continue
                self.conns.update((client, upstream))
                eventlet.spawn(self._pipe, client, upstream)
                eventlet.spawn(self._pipe, upstream, client)
        except (OSError, EOFError):  # eventlet raises EOFError on a closed socket
            pass
        finally:
            server.close()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                sink.sendall(chunk)
        except (OSError, EOFError):
            pass
        finally:
            _shutdown(sink)
            self.conns.discard(source)
            source.close()

    def cut(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            _shutdown(server)
        for sock in list(self.conns):
            _shutdown(sock)
        deadline = time.monotonic() + 2
        while self.conns and time.monotonic() < deadline:
            eventlet.sleep(0.01)
        eventlet.sleep(0.05)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


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
