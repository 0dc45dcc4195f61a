"""Operator commands for the audit service: ``python -m services.audit.cli``.

    generate-key PATH        write a new Ed25519 signing key (PEM, mode 0600)
    public-key [PATH]        print the public key of the signing key
    dead-letters [--limit N] list dead-lettered messages and their count
    export [--from N] [--to N] > file.jsonl
                             the whole log (operator view, nothing redacted)
    verify                   check the stored chain and its checkpoints

The database is ``AUDIT_DATABASE_URL`` (or the laptop SQLite file) and the
signing key ``AUDIT_SIGNING_KEY_FILE``, as for the service itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from plumbing import config
from plumbing.database import make_engine
from services.audit import crypto, export, queries
from services.audit.models import LogEntry


def _session() -> Session:
    return Session(make_engine(config.database_url("audit")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.audit.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate-key", help="write a new signing key")
    generate.add_argument("path", type=Path)
    public = commands.add_parser("public-key", help="print the public key")
    public.add_argument("path", type=Path, nargs="?")
    dead = commands.add_parser("dead-letters", help="list dead-lettered messages")
    dead.add_argument("--limit", type=int, default=50)
    dump = commands.add_parser("export", help="export the whole log as JSON Lines")
    dump.add_argument("--from", dest="from_seq", type=int, default=1)
    dump.add_argument("--to", dest="to_seq", type=int)
    commands.add_parser("verify", help="check the stored chain")
    args = parser.parse_args(argv)

    if args.command == "generate-key":
        key = crypto.generate_signing_key(args.path)
        print(f"wrote {args.path} (key id {crypto.key_id(key)})")
        return 0
    if args.command == "public-key":
        print(crypto.public_key_pem(crypto.load_signing_key(args.path)), end="")
        return 0
    with _session() as session:
        if args.command == "dead-letters":
            page = queries.list_dead_letters(session, None, args.limit)
            print(f"{page['total']} dead-lettered message(s)")
            for item in page["items"]:
                print(json.dumps(item, sort_keys=True))
            return 0
        if args.command == "verify":
            public_key = crypto.load_signing_key().public_key()
            result = queries.verify_stored_chain(session, public_key)
            print(json.dumps(result, indent=2))
            return 0 if result["ok"] else 1
        return _export(session, args.from_seq, args.to_seq)
    return 2


def _export(session: Session, from_seq: int, to_seq: int | None) -> int:
    key = crypto.load_signing_key()
    orgs: set[str | None] = set(
        session.execute(select(LogEntry.org_id).distinct()).scalars()
    )
    cursor = None
    while True:
        page = export.export_page(
            session,
            key,
            orgs,
            {
                "from_seq": from_seq,
                "to_seq": to_seq,
                "format": "jsonl",
                "cursor": cursor,
                "limit": 5000,
            },
        )
        sys.stdout.write(page["chunk"])
        cursor = page["next_cursor"]
        if cursor is None:
            return 0


if __name__ == "__main__":
    sys.exit(main())
