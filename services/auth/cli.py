"""``cpd-admin``: the operator's tool. It works on the auth database directly,
through the same domain code as the service; its events wait in the outbox
until a running auth service's relay publishes them.

It runs outside nameko, so it cannot call the notify service: the admins it
creates get no invitation email and no invitation code (give them the
password set here; they may change it, or ask for a reset, once signed in).

    cpd-admin migrate
    cpd-admin create-org --kind trust --name "Oak Trust"
    cpd-admin create-org --kind school --name "Elm Primary" --trust <trust id>
    cpd-admin create-admin --org <id> --username ann --email ann@example.org \\
        --given-name Ann --family-name Smith [--password-file FILE]
    cpd-admin list-orgs
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from plumbing import config, migrations
from plumbing.database import ServiceSession, make_engine
from plumbing.errors import PlatformError
from services.auth import organisations, users
from services.auth.dependencies import utc_now

ACTOR = {"user_id": None, "ip": None, "user_agent": None, "service": "cpd-admin"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cpd-admin", description="Operator tasks on the auth database."
    )
    parser.add_argument(
        "--database-url", help="default: AUTH_DATABASE_URL or the SQLite file"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="bring the auth database to the latest schema")

    org = commands.add_parser("create-org", help="create a trust or a school")
    org.add_argument("--kind", choices=("trust", "school"), required=True)
    org.add_argument("--name", required=True)
    org.add_argument("--trust", help="id of the trust a school belongs to")
    org.add_argument("--timezone", default="Europe/London")

    admin = commands.add_parser(
        "create-admin", help="create an organisation's first admin"
    )
    admin.add_argument("--org", required=True, help="organisation id")
    admin.add_argument("--username", required=True)
    admin.add_argument("--email", required=True)
    admin.add_argument("--given-name", required=True)
    admin.add_argument("--family-name", required=True)
    admin.add_argument(
        "--password-file", type=Path, help="read the password from this file"
    )

    commands.add_parser("list-orgs", help="list every trust and school")
    return parser


def _session(engine: Engine) -> ServiceSession:
    factory = sessionmaker(bind=engine, class_=ServiceSession, expire_on_commit=False)
    return factory()


def _password(path: Path | None) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise SystemExit("The passwords differ.")
    return first


def main(argv: Sequence[str] | None = None) -> int:
    """Run one operator command; the exit status is 0 on success."""
    args = _parser().parse_args(argv)
    url = args.database_url or config.database_url("auth")
    if args.command == "migrate":
        migrations.upgrade("auth", url)
        print("auth database is up to date")
        return 0

    engine = make_engine(url)
    db = _session(engine)
    try:
        return _run(db, args)
    except PlatformError as error:
        print(f"error: {error.detail}", file=sys.stderr)
        for field, problems in error.fields.items():
            print(f"  {field}: {problems}", file=sys.stderr)
        return 1
    finally:
        db.close()
        engine.dispose()


def _run(db: ServiceSession, args: argparse.Namespace) -> int:
    if args.command == "create-org":
        org = organisations.create_organisation(
            db,
            {
                "kind": args.kind,
                "name": args.name,
                "parent_trust_id": args.trust,
                "timezone": args.timezone,
            },
            now=utc_now(),
            actor=ACTOR,
        )
        print(org.id)
    elif args.command == "create-admin":
        user = users.create_admin(
            db,
            org_id=args.org,
            username=args.username,
            email=args.email,
            given_name=args.given_name,
            family_name=args.family_name,
            password=_password(args.password_file),
            now=utc_now(),
            actor=ACTOR,
        )
        print(f"{user.id} {user.username} {user.roles[0].role}")
    elif args.command == "list-orgs":
        for org in organisations.list_all(db):
            trust = org.parent_trust_id or "-"
            print(f"{org.id}\t{org.kind}\t{trust}\t{org.timezone}\t{org.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
