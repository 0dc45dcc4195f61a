"""nameko dependency providers of the audit service.

- :class:`AuditDatabase`: the plumbing database provider, which on PostgreSQL
  can run every connection as a restricted role (``AUDIT_DB_ROLE``, e.g.
  ``audit_writer``: INSERT and SELECT only on the log).
- :class:`Ingestion`: runs the ingestion loop and the periodic checkpoint
  signer as managed threads; workers get it as ``self.ingestion`` for the
  signing key and the loop's counters.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any, overload

import structlog
from nameko.extensions import DependencyProvider
from sqlalchemy import event
from sqlalchemy.engine import Engine

from plumbing import config
from plumbing.database import Database, make_engine
from services.audit import crypto
from services.audit.ingest import Ingestor
from services.audit.store import ChainStore

log = structlog.get_logger()

CHECKPOINT_INTERVAL = 300.0


@overload
def _setting(container: Any, key: str) -> str | None: ...
@overload
def _setting(container: Any, key: str, default: str) -> str: ...
def _setting(container: Any, key: str, default: str | None = None) -> str | None:
    return container.config.get(key) or os.environ.get(key) or default


def restrict_role(engine: Engine, role: str | None) -> None:
    """Run every new connection as ``role`` (``SET ROLE``) on PostgreSQL."""
    if not role or engine.dialect.name != "postgresql":
        return
    quoted = engine.dialect.identifier_preparer.quote(role)

    @event.listens_for(engine, "connect")
    def _set_role(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f"SET ROLE {quoted}")
        cursor.close()
        dbapi_conn.commit()


class AuditDatabase(Database):
    """``self.db`` for RPC workers, as the restricted role when one is set."""

    def setup(self) -> None:
        super().setup()
        restrict_role(self.engine, _setting(self.container, "AUDIT_DB_ROLE"))


class Ingestion(DependencyProvider):
    """Consumes the audit queue into the chain and signs periodic checkpoints."""

    def setup(self) -> None:
        container = self.container
        url = _setting(container, "AUDIT_DATABASE_URL") or config.database_url("audit")
        self.engine = make_engine(url, pool_size=2, max_overflow=2)
        restrict_role(self.engine, _setting(container, "AUDIT_DB_ROLE"))
        self.signing_key = crypto.load_signing_key()
        self.checkpoint_interval = float(
            _setting(container, "AUDIT_CHECKPOINT_INTERVAL", str(CHECKPOINT_INTERVAL))
        )
        self.store = ChainStore(self.engine, self.signing_key)
        amqp_uri = _setting(container, "AMQP_URI") or config.amqp_uri()
        self.ingestor = Ingestor(
            amqp_uri,
            self.store,
            batch_size=int(_setting(container, "AUDIT_BATCH_SIZE", "500")),
            prefetch=int(_setting(container, "AUDIT_PREFETCH", "1000")),
        )
        self._stopped = threading.Event()

    def start(self) -> None:
        self.container.spawn_managed_thread(self.ingestor.run)
        self.container.spawn_managed_thread(self._checkpoint_loop)

    def stop(self) -> None:
        self._stopped.set()
        self.ingestor.stop()

    def kill(self) -> None:
        self.stop()

    def _checkpoint_loop(self) -> None:
        """Sign a checkpoint at the head once the last is ``interval`` old."""
        interval = self.checkpoint_interval
        tick = max(0.5, min(30.0, interval / 10))
        while not self._stopped.wait(tick):
            try:
                seq = self.store.checkpoint(max_age=timedelta(seconds=interval))
            except Exception as error:  # noqa: BLE001 (retried on the next tick)
                log.warning("audit_checkpoint_failed", error=type(error).__name__)
                continue
            if seq is not None:
                log.info("audit_checkpoint_signed", seq=seq)

    def get_dependency(self, worker_ctx: Any) -> Ingestion:
        return self
