"""Helpers shared by the service test suites (auth, training, reviews)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from plumbing.database import ServiceSession, make_engine
from plumbing.identity import Identity
from plumbing.outbox import OUTBOX


@contextmanager
def service_session(url: str) -> Iterator[ServiceSession]:
    """A session on a service's database, as that service's workers get."""
    engine = make_engine(url)
    session = sessionmaker(bind=engine, class_=ServiceSession, expire_on_commit=False)()
    try:
        yield session
    finally:
        session.close()
        engine.dispose()


def outbox(db: ServiceSession, event_type: str | None = None) -> list[dict[str, Any]]:
    """The envelopes in the outbox, oldest first, optionally of one type."""
    db.rollback()
    query = select(OUTBOX.c.payload).order_by(OUTBOX.c.id)
    if event_type is not None:
        query = query.where(OUTBOX.c.type == event_type)
    return list(db.scalars(query))


def rpc_connector(
    service: str, config: dict[str, Any], timeout: float = 15
) -> Callable[..., AbstractContextManager[Any]]:
    """``with connect(identity) as proxy: proxy.method(...)`` for one service,
    the identity (if any) travelling in the context as the gateway sends it."""

    @contextmanager
    def connect(identity: Identity | None = None) -> Iterator[Any]:
        context = {"identity": identity.to_json()} if identity else {}
        with ServiceRpcProxy(
            service, config, context_data=context, timeout=timeout
        ) as proxy:
            yield proxy

    return connect
