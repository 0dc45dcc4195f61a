"""Throw-away resources for one bench run: a RabbitMQ vhost and a PostgreSQL
database, each removed again when the run ends (also on error or Ctrl-C)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg2
import requests
from psycopg2 import sql

RABBIT_HOST = os.environ.get("BENCH_RABBIT_HOST", "127.0.0.1")
RABBIT_API = os.environ.get("BENCH_RABBIT_API", f"http://{RABBIT_HOST}:15672/api")
RABBIT_USER = os.environ.get("BENCH_RABBIT_USER", "guest")
RABBIT_PASSWORD = os.environ.get("BENCH_RABBIT_PASSWORD", "guest")
POSTGRES_DSN = os.environ.get(
    "BENCH_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
POSTGRES_URL_BASE = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432"
)


def run_tag() -> str:
    return uuid.uuid4().hex[:10]


@contextmanager
def rabbit_vhost(tag: str) -> Iterator[str]:
    """A fresh vhost through the management API; yields its AMQP URI.

    Without the management API the default vhost is used, and the bench's
    own queues are still fresh (random names, auto-deleted).
    """
    name = f"bench_{tag}"
    auth = (RABBIT_USER, RABBIT_PASSWORD)
    base = f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{RABBIT_HOST}:5672"
    try:
        response = requests.put(f"{RABBIT_API}/vhosts/{name}", auth=auth, timeout=10)
        response.raise_for_status()
    except requests.RequestException:
        yield f"{base}/"
        return
    try:
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        requests.put(
            f"{RABBIT_API}/permissions/{name}/{RABBIT_USER}",
            json=permissions,
            auth=auth,
            timeout=10,
        ).raise_for_status()
        yield f"{base}/{quote(name, safe='')}"
    finally:
        requests.delete(f"{RABBIT_API}/vhosts/{name}", auth=auth, timeout=30)


def _admin(statement: sql.Composable) -> None:
    connection = psycopg2.connect(POSTGRES_DSN)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@contextmanager
def postgres_database(prefix: str, tag: str) -> Iterator[str]:
    """A fresh, empty database ``<prefix>_<tag>``; yields its SQLAlchemy URL."""
    name = f"{prefix}_{tag}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{POSTGRES_URL_BASE}/{name}"
    finally:
        _admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


@contextmanager
def raise_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so that cleanup runs as on Ctrl-C."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
