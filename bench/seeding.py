"""Users for the bench, created with the auth service's own domain code.

Runs as ``python -m bench.seeding <count>`` in a child process with the
platform's environment, so that it writes to the bench's database exactly as
the auth service would (same models, same password hashing), and prints the
credentials as JSON.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scripts.processes import ROOT


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def seed(env: dict[str, str], count: int) -> list[Credentials]:
    """Create an organisation and ``count`` users in the database of ``env``."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.seeding", str(count)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{completed.stderr[-3000:]}")
    return [Credentials(**item) for item in json.loads(completed.stdout)]


def main(count: int) -> None:
    """A school, its first admin, and ``count`` staff users with random
    passwords; prints the staff users' credentials as JSON."""
    from sqlalchemy.orm import sessionmaker

    from plumbing import config
    from plumbing.database import ServiceSession, make_engine
    from plumbing.identity import Identity
    from services.auth import organisations, users

    engine = make_engine(config.database_url("auth"))
    session_factory = sessionmaker(
        bind=engine, class_=ServiceSession, expire_on_commit=False
    )
    now = datetime.now(UTC)
    credentials = []
    with session_factory() as db:
        school = organisations.create_organisation(
            db, {"kind": "school", "name": "Bench School"}, now=now
        )
        admin = users.create_admin(
            db,
            org_id=school.id,
            username="bench_admin",
            email="bench_admin@bench.example",
            given_name="Bench",
            family_name="Admin",
            password=secrets.token_urlsafe(18),
            now=now,
        )
        caller = Identity(
            user_id=admin.id, org_id=school.id, scopes={"school_admin": [school.id]}
        )
        for index in range(count):
            username, password = f"bench_user_{index}", secrets.token_urlsafe(18)
            data = {
                "username": username,
                "given_name": "Bench",
                "family_name": f"User {index}",
                "email": f"{username}@bench.example",
                "org_id": school.id,
                "password": password,
            }
            users.create_user(db, caller, data, now=now, notify=_NoMail())
            credentials.append({"username": username, "password": password})
    engine.dispose()
    print(json.dumps(credentials))


class _NoMail:
    """Bench users are made with passwords and told nothing: no notify runs
    while the database is seeded."""

    def send_password_reset(self, *_args: object) -> dict[str, None]:
        return {"email_id": None}

    def send_invitations(self, invitations: list[dict[str, Any]]) -> dict[str, Any]:
        return {"queued": len(invitations)}


if __name__ == "__main__":
    main(int(sys.argv[1]))
