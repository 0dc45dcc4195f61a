"""Fixtures for the plumbing tests: an empty PostgreSQL database, a tiny
test-only model beside the outbox, a TCP proxy in front of RabbitMQ that a
test can cut, and a queue bound to an event exchange to see what was
published.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import psycopg2
import pytest
from plumbing_support import EventTap, TcpProxy, test_metadata
from psycopg2 import sql
from sqlalchemy.engine import Engine

from plumbing import topology
from plumbing.database import make_engine
from plumbing.outbox import outbox_metadata

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL_BASE = "postgresql+psycopg2://postgres@127.0.0.1:5432"


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


@pytest.fixture
def event_tap(amqp_uri: str) -> Iterator[EventTap]:
    """What reaches a subscriber of ``auth.events`` in this test's vhost."""
    topology.declare(amqp_uri)
    tap = EventTap(amqp_uri)
    yield tap
    tap.close()
