"""The database provider: one engine per service process, one session per
worker, and the transactional outbox on that same session.

A worker writes its change and calls ``self.db.emit(...)``; both land in one
transaction when it commits. After the commit the outbox relay is woken and
publishes the pending events (see :mod:`plumbing.outbox`).
"""

from __future__ import annotations

import weakref
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy import Table, create_engine, event
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from plumbing import config
from plumbing.envelope import make_event
from plumbing.identity import REQUEST_ID_KEY, Identity
from plumbing.outbox import OutboxRelay, insert_event, insert_events

# psycopg2's TRANSACTION_STATUS_IDLE: connected, no transaction open.
_PG_IDLE = 0


def table_of(model: type[DeclarativeBase]) -> Table:
    """The :class:`Table` of a declarative model, for Core statements
    (SQLAlchemy types ``__table__`` as any ``FromClause``)."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


def rows_matched(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``Session.execute`` is typed as
    returning a plain ``Result``; for such a statement it is a ``CursorResult``."""
    if not isinstance(result, CursorResult):
        raise TypeError("Not the result of an UPDATE or DELETE")
    return result.rowcount


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with settings that suit a service with many green workers."""
    # A database error's message would otherwise carry the statement's
    # values (names, emails, free text), and nameko logs a failed worker's
    # exception: keep personal data out of the logs.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    pool_size, max_overflow = config.db_pool()
    kwargs.setdefault("pool_size", pool_size)
    kwargs.setdefault("max_overflow", max_overflow)
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.driver == "psycopg2":

        @event.listens_for(engine, "checkin")
        def _end_autocommit(dbapi_conn: Any, _record: Any) -> None:
            # ServiceSession.read_without_transaction may have turned it on.
            if dbapi_conn is not None and dbapi_conn.autocommit:
                dbapi_conn.autocommit = False

    return engine


class ServiceSession(Session):
    """A session that can also record events in the outbox of its transaction."""

    def read_without_transaction(self) -> None:
        """Run this worker's statements outside a transaction (autocommit).

        For a read of one statement, whose consistency a transaction cannot
        improve: it saves the ``BEGIN`` before the statement and the
        ``ROLLBACK`` when the session closes, two round trips to the database
        on the hottest reads. Call it before the first statement; a worker
        that then writes must not use it. Only on PostgreSQL (psycopg2),
        where switching autocommit is local to the client; elsewhere, and on
        a connection already in a transaction, the read runs in one as usual.
        The pool turns autocommit off again when the connection comes back
        (see :func:`make_engine`).
        """
        connection = self.connection()
        if connection.dialect.driver != "psycopg2":
            return
        dbapi_connection = connection.connection.dbapi_connection
        if (
            dbapi_connection is not None
            and dbapi_connection.info.transaction_status == _PG_IDLE
        ):
            dbapi_connection.autocommit = True

    def emit(
        self,
        type: str,
        *,
        subject_type: str,
        subject_id: Any,
        org_id: str | None,
        changes: dict[str, dict[str, Any]] | None = None,
        data: dict[str, Any] | None = None,
        actor: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add an event to this transaction's outbox; it is published after commit.

        The actor and request id come from the worker's context unless given.
        """
        envelope = self._envelope(
            type,
            subject_type=subject_type,
            subject_id=subject_id,
            org_id=org_id,
            changes=changes,
            data=data,
            actor=actor,
        )
        insert_event(self, envelope)
        self.info["emitted"] = True
        return envelope

    def emit_many(
        self, type: str, events: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """:meth:`emit` for many subjects at once, each ``events`` item holding
        ``emit``'s keyword arguments, in one multi-row INSERT: a trust-wide
        review cycle emits thousands."""
        envelopes = [self._envelope(type, **event) for event in events]
        insert_events(self, envelopes)
        if envelopes:
            self.info["emitted"] = True
        return envelopes

    def _envelope(
        self,
        type: str,
        *,
        subject_type: str,
        subject_id: Any,
        org_id: str | None,
        changes: dict[str, dict[str, Any]] | None = None,
        data: dict[str, Any] | None = None,
        actor: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        context = self.info.get("context_data") or {}
        if actor is None:
            identity = Identity.from_context(context)
            actor = {
                "user_id": identity.user_id if identity else None,
                "ip": identity.ip if identity else None,
                "user_agent": identity.user_agent if identity else None,
            }
        return make_event(
            type,
            subject_type=subject_type,
            subject_id=str(subject_id),
            org_id=org_id,
            actor=actor,
            changes=changes,
            data=data,
            request_id=context.get(REQUEST_ID_KEY),
        )


class Database(DependencyProvider):
    """Gives each worker ``self.db``, a :class:`ServiceSession`.

    The URL comes from the container config key ``<SERVICE>_DATABASE_URL``,
    else the environment variable of that name, else a SQLite file. With
    ``relay=True`` the provider also runs the outbox relay of this process.

    ``pre_ping=False`` drops the ``SELECT 1`` that tests each pooled
    connection before a worker uses it: one round trip per request on a busy
    request path. The trade-off: after PostgreSQL restarts, the first
    statement on a stale connection fails (that one worker errors) instead
    of being retried on a new connection; SQLAlchemy then sees the
    disconnect and discards every connection of the pool opened before it,
    so the requests after it get fresh ones. ``pool_recycle`` also replaces
    connections older than half an hour, before anything between here and
    the database drops them for idleness.
    """

    def __init__(self, service: str, relay: bool = True, pre_ping: bool = True) -> None:
        self.service = service
        self.relay_enabled = relay
        self.pre_ping = pre_ping
        self.relay: OutboxRelay | None = None
        self.sessions: weakref.WeakKeyDictionary[Any, ServiceSession] = (
            weakref.WeakKeyDictionary()
        )

    def setup(self) -> None:
        key = f"{self.service.upper()}_DATABASE_URL"
        url = self.container.config.get(key) or config.database_url(self.service)
        if self.pre_ping:
            self.engine = make_engine(url)
        else:
            self.engine = make_engine(url, pool_pre_ping=False, pool_recycle=1800)
        self.session_factory = sessionmaker(
            bind=self.engine, class_=ServiceSession, expire_on_commit=False
        )
        event.listen(self.session_factory, "after_commit", self._after_commit)
        if self.relay_enabled:
            amqp_uri = self.container.config.get("AMQP_URI") or config.amqp_uri()
            self.relay = OutboxRelay(self.engine, amqp_uri, service=self.service)

    def start(self) -> None:
        if self.relay is not None:
            self.container.spawn_managed_thread(self.relay.run)

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()

    def kill(self) -> None:
        self.stop()

    def _after_commit(self, session: Session) -> None:
        if session.info.pop("emitted", False) and self.relay is not None:
            self.relay.wake()

    def get_dependency(self, worker_ctx: Any) -> ServiceSession:
        session = self.session_factory()
        session.info["context_data"] = worker_ctx.context_data
        self.sessions[worker_ctx] = session
        return session

    def worker_teardown(self, worker_ctx: Any) -> None:
        session = self.sessions.pop(worker_ctx, None)
        if session is not None:
            session.close()
