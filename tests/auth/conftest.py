"""Fixtures of the auth tests: a migrated PostgreSQL database per test, a
domain-level session on it, a seeded trust with two schools, and the auth
service in a nameko container on a fresh RabbitMQ vhost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plumbing.database import ServiceSession
from plumbing.identity import Identity
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
