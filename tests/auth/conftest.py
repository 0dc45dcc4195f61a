"""Fixtures of the auth tests: a migrated PostgreSQL database per test, a
domain-level session on it, a seeded trust with two schools, the auth
service in a nameko container on a fresh RabbitMQ vhost, and a stand-in for
the notify service (in process, or running in a container beside auth)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plumbing.database import ServiceSession
from plumbing.errors import ServiceUnavailable
from plumbing.identity import CallerIdentity, Identity
from plumbing.rpc import rpc
from services.auth import organisations, passwords, roles, users
from services.auth.models import User
from tests.service_support import rpc_connector, service_session

PASSWORD = "correct horse battery staple"
# PyJWT warns (an error under our pytest settings) for HMAC keys under 32 bytes.
SECRET = "test-secret-of-at-least-thirty-two-bytes"
T0 = datetime(2030, 1, 6, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fast_bcrypt(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Cost 4 keeps the suite fast; cost 12 is checked by its own test."""
    monkeypatch.setenv("ALLOW_WEAK_BCRYPT", "1")
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def auth_db_url(make_database: Callable[[str], str]) -> str:
    return make_database("auth")


@pytest.fixture
def db(auth_db_url: str) -> Iterator[ServiceSession]:
    """A session on this test's auth database, as the service's workers get."""
    with service_session(auth_db_url) as session:
        yield session


def identity_of(
    db: ServiceSession, user: User, session_id: str | None = None, **extra: Any
) -> Identity:
    """The identity the gateway would send for this user."""
    db.refresh(user)
    return Identity(
        user_id=user.id,
        org_id=user.org_id,
        scopes=roles.scopes_for(db, user.roles),
        session_id=session_id,
        **extra,
    )


@dataclass
class World:
    """Oak Trust with Elm and Ash schools, a standalone Yew school, and users."""

    trust: Any
    elm: Any
    ash: Any
    yew: Any
    trust_admin: User
    elm_admin: User
    ash_admin: User
    elm_manager: User
    elm_teacher: User
    ash_teacher: User
    elm_lead: User


def _user(
    db: ServiceSession, org: Any, username: str, role: str, **values: Any
) -> User:
    user = users.insert_user(
        db,
        {
            "username": username,
            "given_name": username.capitalize(),
            "family_name": "Tester",
            "email": f"{username}@example.org",
            "org_id": org.id,
            "line_manager_id": values.get("line_manager_id"),
        },
        [{"role": role, "org_id": org.id}],
        password_hash=passwords.hash_password(PASSWORD),
        now=T0,
    )
    db.commit()
    return user


@pytest.fixture
def world(db: ServiceSession) -> World:
    def org(kind: str, name: str, trust: Any = None) -> Any:
        data = {"kind": kind, "name": name, "parent_trust_id": trust}
        return organisations.create_organisation(db, data, now=T0)

    trust = org("trust", "Oak Trust")
    elm = org("school", "Elm Primary", trust.id)
    ash = org("school", "Ash Academy", trust.id)
    yew = org("school", "Yew School")
    manager = _user(db, elm, "margo", "line_manager")
    return World(
        trust=trust,
        elm=elm,
        ash=ash,
        yew=yew,
        trust_admin=_user(db, trust, "tess", "trust_admin"),
        elm_admin=_user(db, elm, "eve", "school_admin"),
        ash_admin=_user(db, ash, "adam", "school_admin"),
        elm_manager=manager,
        elm_teacher=_user(db, elm, "tom", "staff", line_manager_id=manager.id),
        ash_teacher=_user(db, ash, "amy", "staff"),
        elm_lead=_user(db, elm, "lena", "cpd_lead"),
    )


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth_config(rabbit_config: dict[str, Any], auth_db_url: str, tmp_path: Any):
    return {
        **rabbit_config,
        "AUTH_DATABASE_URL": auth_db_url,
        "JWT_SECRET": SECRET,
        "DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture
def auth_container(container_factory: Any, auth_config: dict[str, Any]) -> Any:
    """The auth service, running; not started until the test calls start()."""
    from services.auth.service import AuthService

    return container_factory(AuthService, auth_config)


@pytest.fixture
def auth_rpc(auth_config: dict[str, Any]) -> Callable[..., Any]:
    """``with auth_rpc(identity) as auth: auth.get_user(...)``"""
    return rpc_connector("auth", auth_config, timeout=15)


class NotifyRecord:
    """What the notify stand-ins were asked: ``resets`` holds the arguments of
    each ``send_password_reset``, ``batches`` the list of each
    ``send_invitations``, ``callers`` the identity each call carried."""

    def __init__(self) -> None:
        self.resets: list[dict[str, Any]] = []
        self.batches: list[list[dict[str, Any]]] = []
        self.callers: list[Identity | None] = []
        self.refuse_resets = False

    @property
    def code(self) -> str:
        """The code of the last reset email."""
        return self.resets[-1]["code"]

    @property
    def invitations(self) -> list[dict[str, Any]]:
        return [item for batch in self.batches for item in batch]

    def invitation_of(self, user_id: str) -> dict[str, Any]:
        found = [
            item for item in self.invitations if item["recipient"]["user_id"] == user_id
        ]
        return found[-1]

    def password_reset(
        self, recipient: dict[str, Any], code: str, expires_at: str
    ) -> dict[str, Any]:
        self.resets.append(
            {"recipient": recipient, "code": code, "expires_at": expires_at}
        )
        if self.refuse_resets:
            return {"email_id": None}
        return {"email_id": f"email-{len(self.resets)}"}

    def invite(self, invitations: list[dict[str, Any]]) -> dict[str, Any]:
        self.batches.append(invitations)
        return {"queued": len(invitations)}


class NotifyStub(NotifyRecord):
    """In process, for the domain functions' ``notify``; ``down`` makes it
    raise as ``ServiceRpc`` does when no notify instance runs."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ServiceUnavailable("The notify service is not running")

    def send_password_reset(
        self, recipient: dict[str, Any], code: str, expires_at: str
    ) -> dict[str, Any]:
        self._check()
        return self.password_reset(recipient, code, expires_at)

    def send_invitations(self, invitations: list[dict[str, Any]]) -> dict[str, Any]:
        self._check()
        return self.invite(invitations)


@pytest.fixture
def notify() -> NotifyStub:
    return NotifyStub()


@pytest.fixture
def fake_notify(container_factory: Any, rabbit_config: dict[str, Any]) -> NotifyRecord:
    """A running service named ``notify`` on this test's vhost, with the two
    RPCs auth calls; it records each call and the identity it came with."""
    record = NotifyRecord()

    class FakeNotify:
        name = "notify"
        caller = CallerIdentity()

        @rpc
        def send_password_reset(
            self, recipient: dict[str, Any], code: str, expires_at: str
        ) -> dict[str, Any]:
            record.callers.append(self.caller)
            return record.password_reset(recipient, code, expires_at)

        @rpc
        def send_invitations(self, invitations: list[dict[str, Any]]) -> dict[str, Any]:
            record.callers.append(self.caller)
            return record.invite(invitations)

    container_factory(FakeNotify, rabbit_config).start()
    return record
