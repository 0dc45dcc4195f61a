"""Seed a demo trust for ``make run``: ``python -m scripts.seed [--json]``.

One trust with a central team and two schools, and users of every role. Each
password is random, made on the first run and kept in
``DATA_DIR/demo-credentials.json`` (readable by its owner only), so that later
runs print the same credentials without touching the database again.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any

from sqlalchemy.orm import sessionmaker

from plumbing import config
from plumbing.database import ServiceSession, make_engine
from services.auth import organisations, passwords, users
from services.auth.dependencies import utc_now
from services.auth.schemas import UserCreateSchema, load

ACTOR = {"user_id": None, "ip": None, "user_agent": None, "service": "demo-seed"}
TRUST = "Riverside Learning Trust"
SCHOOLS = {"riverside": "Riverside Primary School", "hillcrest": "Hillcrest Academy"}

# (username, given name, family name, roles held at the user's own org,
#  line manager's username)
TRUST_USERS = [
    ("trust.admin", "Tara", "Okafor", ["trust_admin"], None),
    ("trust.auditor", "Ahmed", "Rahman", ["auditor"], None),
]


def _school_users(key: str) -> list[tuple[str, str, str, list[str], str | None]]:
    return [
        (f"{key}.admin", "Sam", "Patel", ["school_admin"], None),
        (f"{key}.cpdlead", "Chloe", "Evans", ["cpd_lead", "staff"], None),
        (f"{key}.manager", "Liam", "Hughes", ["line_manager", "staff"], None),
        (f"{key}.teacher", "Grace", "Morgan", ["staff"], f"{key}.manager"),
        (f"{key}.auditor", "Ivy", "Clarke", ["auditor"], None),
    ]


def _credentials_path() -> Any:
    return config.data_dir() / "demo-credentials.json"


def _session() -> ServiceSession:
    engine = make_engine(config.database_url("auth"))
    return sessionmaker(bind=engine, class_=ServiceSession, expire_on_commit=False)()


def _add_user(
    db: ServiceSession,
    org_id: str,
    spec: tuple[str, str, str, list[str], str | None],
    managers: dict[str, str],
) -> dict[str, str]:
    username, given, family, roles, manager = spec
    password = secrets.token_urlsafe(12)
    values = load(
        UserCreateSchema(),
        {
            "username": username,
            "given_name": given,
            "family_name": family,
            "email": f"{username}@demo.invalid",
            "org_id": org_id,
            "line_manager_id": managers.get(manager or ""),
        },
    )
    del values["roles"], values["password"]
    user = users.insert_user(
        db,
        values,
        [{"role": role, "org_id": org_id} for role in roles],
        password_hash=passwords.hash_password(passwords.check_policy(password)),
        now=utc_now(),
        actor=ACTOR,
    )
    managers[username] = user.id
    return {"username": username, "password": password, "roles": ",".join(roles)}


def seed_demo() -> list[dict[str, str]]:
    """Create the demo trust once; return the demo users' credentials."""
    path = _credentials_path()
    if path.exists():
        return json.loads(path.read_text())

    db = _session()
    try:
        if any(org.name == TRUST for org in organisations.list_all(db)):
            raise SystemExit(
                f"The demo trust exists but {path} is missing: delete the data "
                "folder (or the auth database) to seed again."
            )
        now = utc_now()
        trust = organisations.create_organisation(
            db, {"kind": "trust", "name": TRUST}, now=now, actor=ACTOR
        )
        managers: dict[str, str] = {}
        credentials = [_add_user(db, trust.id, spec, managers) for spec in TRUST_USERS]
        for key, name in SCHOOLS.items():
            school = organisations.create_organisation(
                db,
                {"kind": "school", "name": name, "parent_trust_id": trust.id},
                now=now,
                actor=ACTOR,
            )
            credentials += [
                _add_user(db, school.id, spec, managers) for spec in _school_users(key)
            ]
        db.commit()
    finally:
        db.close()

    path.write_text(json.dumps(credentials, indent=2))
    path.chmod(0o600)
    return credentials


def print_credentials(credentials: list[dict[str, str]]) -> None:
    print("\nDemo users (passwords are random and kept in the data folder):")
    for entry in credentials:
        print(f"  {entry['username']:<22} {entry['password']:<20} {entry['roles']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    credentials = seed_demo()
    if args.json:
        print(json.dumps(credentials))
    else:
        print_credentials(credentials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
