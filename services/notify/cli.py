"""Operator commands for the notify service: ``python -m services.notify.cli``.

    failed-events [--limit N]   the events notify set aside, newest first
    replay EVENT_ID [...]       put set-aside events back on notify's queue
    replay --all                every set-aside event not replayed yet

The database is ``NOTIFY_DATABASE_URL`` (or the laptop SQLite file) and the
broker ``AMQP_URI``, as for the service itself. A replayed event is handled
as if it had just arrived (an event already handled is still skipped).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from kombu import Connection
from sqlalchemy import select
from sqlalchemy.orm import Session

from plumbing import config
from plumbing.database import make_engine
from services.notify.dependencies import QUEUE, event_queue
from services.notify.models import FailedEvent


def _session() -> Session:
    return Session(make_engine(config.database_url("notify")))


def list_failed(limit: int) -> list[dict[str, object]]:
    with _session() as db:
        rows = db.scalars(
            select(FailedEvent).order_by(FailedEvent.failed_at.desc()).limit(limit)
        )
        return [
            {
                "event_id": row.event_id,
                "type": row.type,
                "error": row.error,
                "attempts": row.attempts,
                "failed_at": row.failed_at.isoformat(),
                "replayed_at": row.replayed_at.isoformat() if row.replayed_at else None,
            }
            for row in rows
        ]


def replay(event_ids: list[str], everything: bool) -> int:
    """Publish the stored events to notify's queue; mark them replayed."""
    with _session() as db, Connection(config.amqp_uri()) as conn:
        query = select(FailedEvent)
        if everything:
            query = query.where(FailedEvent.replayed_at.is_(None))
        else:
            query = query.where(FailedEvent.event_id.in_(event_ids))
        rows = list(db.scalars(query))
        producer = conn.Producer(serializer="json")
        for row in rows:
            producer.publish(
                row.payload,
                exchange="",
                routing_key=QUEUE,
                declare=[event_queue()],
                delivery_mode=2,
                retry=True,
            )
            row.replayed_at = datetime.now(UTC)
            db.commit()
        return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.notify.cli",
        description="The events notify set aside after repeated errors "
        "(NOTIFY_DATABASE_URL, AMQP_URI as for the service).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    failed = commands.add_parser("failed-events", help="list set-aside events")
    failed.add_argument("--limit", type=int, default=50)
    again = commands.add_parser("replay", help="queue set-aside events again")
    again.add_argument("event_ids", nargs="*")
    again.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "failed-events":
        for row in list_failed(args.limit):
            print(json.dumps(row))
        return 0
    if not args.event_ids and not args.all:
        parser.error("replay needs event ids or --all")
    count = replay(args.event_ids, args.all)
    print(f"replayed {count} event(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
