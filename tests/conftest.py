"""Fixtures shared by the whole suite.

Every test that needs a database gets its own PostgreSQL database, copied
from a template that was migrated once per run; every test that needs
RabbitMQ gets its own vhost from nameko's pytest plugin (``rabbit_config``).
"""

from __future__ import annotations

# nameko 2.14's pytest plugin no longer monkey-patches; do it here, first,
# before anything opens a socket. eventlet warns about its own deprecation on
# import, which the strict warning filter would turn into an error.
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import eventlet

eventlet.monkey_patch()

import os  # noqa: E402 (after monkey_patch)
import uuid  # noqa: E402 (after monkey_patch)
from collections.abc import Callable, Iterator  # noqa: E402 (after monkey_patch)

import psycopg2  # noqa: E402 (after monkey_patch)
import pytest  # noqa: E402 (after monkey_patch)
from psycopg2 import sql  # noqa: E402 (after monkey_patch)

from plumbing import migrations  # noqa: E402 (after monkey_patch)

ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_BASE = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432"
)
RUN_TAG = uuid.uuid4().hex[:8]


def _admin_execute(statement: sql.Composable) -> None:
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


def _drop(name: str) -> None:
    _admin_execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


@pytest.fixture(scope="session")
def database_templates() -> Iterator[Callable[[str], str]]:
    """Per service, a template database migrated to head once per run."""
    made: dict[str, str] = {}

    def template(service: str) -> str:
        if service not in made:
            name = f"cpd_tmpl_{service}_{RUN_TAG}"
            _drop(name)
            _admin_execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            migrations.upgrade(service, f"{PG_URL_BASE}/{name}")
            made[service] = name
        return made[service]

    yield template
    for name in made.values():
        _drop(name)


def copy_database(template: str, service: str) -> tuple[str, str]:
    """A new database copied from ``template``; returns its name and URL."""
    name = f"cpd_t_{service}_{uuid.uuid4().hex[:12]}"
    _admin_execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    )
    return name, f"{PG_URL_BASE}/{name}"


def drop_database(name: str) -> None:
    _drop(name)


@pytest.fixture
def make_database(
    database_templates: Callable[[str], str],
) -> Iterator[Callable[[str], str]]:
    """Factory: a fresh, migrated database of one service; returns its URL."""
    created: list[str] = []

    def make(service: str) -> str:
        name, url = copy_database(database_templates(service), service)
        created.append(name)
        return url

    yield make
    for name in created:
        _drop(name)
