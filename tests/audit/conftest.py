"""Fixtures of the audit tests: a migrated audit database, a signing key in a
temporary folder, a RabbitMQ vhost per test (nameko's ``rabbit_config``), and
the audit service started as separate processes with ``nameko run``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_support import AuditProcess, audit_env

from services.audit import crypto


@pytest.fixture
def audit_db(make_database: Callable[[str], str]) -> str:
    return make_database("audit")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit_signing_key.pem"
    crypto.generate_signing_key(path)
    return path


@pytest.fixture
def amqp(rabbit_config: dict[str, Any]) -> str:
    return rabbit_config["AMQP_URI"]


@pytest.fixture
def start_audit(
    tmp_path: Path, audit_db: str, key_file: Path, amqp: str
) -> Iterator[Callable[..., AuditProcess]]:
    """Factory: start one more audit process (``amqp_uri``/``db_url`` override
    the test's own, e.g. to go through a proxy)."""
    started: list[AuditProcess] = []

    def start(
        amqp_uri: str | None = None, db_url: str | None = None, **extra: str
    ) -> AuditProcess:
        env = audit_env(
            amqp_uri=amqp_uri or amqp,
            db_url=db_url or audit_db,
            key_file=key_file,
            data_dir=tmp_path / "data",
            **extra,
        )
        process = AuditProcess(env, tmp_path / f"audit-{len(started)}.log")
        started.append(process.start())
        process.wait_consuming()
        return process

    yield start
    for process in started:
        process.kill()
