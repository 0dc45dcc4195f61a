"""What notify does when handling an event fails.

A fault that passes (training, reviews, the database or the broker away or
slow) sends the event back to the queue however often it happens: it waits
for them. Any other error (a bug, an answer of an unexpected shape) is
retried a few times, then the event is kept whole in ``failed_events`` with
its error, an ``notify.event_failed`` event is emitted, and the message is
acknowledged, so that one bad event does not loop for ever beside the
others. An operator lists and replays them with ``python -m
services.notify.cli``.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy.exc import DBAPIError, OperationalError

from plumbing.database import ServiceSession
from plumbing.errors import ServiceTimeout, ServiceUnavailable
from services.notify import events
from services.notify.handlers import ContactNotYetKnown
from services.notify.models import FailedEvent

# Unexpected errors an event may meet before it is set aside.
MAX_ATTEMPTS = 5
# Event ids remembered per process.
REMEMBERED = 10_000


def is_transient(error: BaseException) -> bool:
    """A fault that passes: a service, the database or the network away, or
    a recipient whose ``auth.user_created`` is still on its way."""
    if isinstance(
        error,
        ServiceUnavailable | ServiceTimeout | OperationalError | ContactNotYetKnown,
    ):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OSError)


class Attempts:
    """Unexpected failures per event id in this process (a bounded count;
    another instance keeps its own, so an event may get a few more tries)."""

    def __init__(self) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()

    def add(self, event_id: str) -> int:
        count = self._counts.pop(event_id, 0) + 1
        self._counts[event_id] = count
        while len(self._counts) > REMEMBERED:
            self._counts.popitem(last=False)
        return count

    def forget(self, event_id: str) -> None:
        self._counts.pop(event_id, None)


class FailureCounter(DependencyProvider):
    """Gives ``self.attempts``: the process's :class:`Attempts`."""

    def setup(self) -> None:
        self.attempts = Attempts()

    def get_dependency(self, worker_ctx: Any) -> Attempts:
        return self.attempts


def set_aside(
    db: ServiceSession,
    envelope: dict[str, Any],
    error: BaseException,
    attempts: int,
    *,
    now: datetime,
) -> None:
    """Keep the event in ``failed_events`` and say so; commits."""
    db.rollback()
    text = f"{type(error).__name__}: {error}"[:500]
    found = db.get(FailedEvent, envelope["event_id"])
    if found is None:
        found = FailedEvent(event_id=envelope["event_id"])
        db.add(found)
    found.type = envelope["type"]
    found.payload = _plain(envelope)
    found.error = text
    found.attempts = attempts
    found.failed_at = now
    found.replayed_at = None
    db.emit(
        events.EVENT_FAILED,
        subject_type="event",
        subject_id=envelope["event_id"],
        org_id=envelope.get("org_id"),
        data={"event_type": envelope["type"], "error": type(error).__name__},
        actor={"user_id": None},
    )
    db.commit()


def _plain(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope as JSON values (validation made ``occurred_at`` a datetime)."""
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in envelope.items()
    }
