"""Fixtures of the reviews tests: a migrated PostgreSQL database per test, a
domain-level session on it, a staff directory fed with the auth events a real
auth service would send (Oak Trust with Elm and Ash, standalone Yew), and the
reviews service in a nameko container on a fresh RabbitMQ vhost."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from plumbing.database import ServiceSession
from plumbing.envelope import make_event
from plumbing.identity import Identity
from services.reviews import directory
from tests.service_support import rpc_connector, service_session

T0 = datetime(2030, 9, 2, 9, 0, tzinfo=UTC)
CYCLE = {
    "name": "2030-31",
    "starts_on": "2030-09-01",
    "ends_on": "2031-07-31",
    "objectives_due": "2030-10-31",
    "interim_due": "2031-02-28",
    "final_due": "2031-07-15",
}


@pytest.fixture
def reviews_db_url(make_database: Callable[[str], str]) -> str:
    return make_database("reviews")


@pytest.fixture
def db(reviews_db_url: str) -> Iterator[ServiceSession]:
    """A session on this test's reviews database, as the service's workers get."""
    with service_session(reviews_db_url) as session:
        yield session


def auth_event(
    event_type: str,
    subject_type: str,
    subject_id: str,
    after: dict[str, Any],
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """An envelope as the auth service publishes it."""
    envelope = make_event(
        event_type,
        subject_type=subject_type,
        subject_id=subject_id,
        org_id=after.get("org_id", subject_id),
        changes={key: {"before": None, "after": value} for key, value in after.items()},
        actor={"user_id": None},
    )
    if occurred_at is not None:
        envelope["occurred_at"] = occurred_at.isoformat()
    return envelope


@dataclass
class Person:
    id: str
    org_id: str
    identity: Identity


@dataclass
class World:
    """Oak Trust (Elm, Ash), standalone Yew, and their people."""

    trust: str
    elm: str
    ash: str
    yew: str
    trust_admin: Person
    elm_admin: Person
    ash_admin: Person
    yew_admin: Person
    margo: Person  # Elm line manager
    tom: Person  # Elm teacher, managed by Margo
    tina: Person  # Elm teacher, managed by Margo
    amy: Person  # Ash teacher, no line manager
    yan: Person  # Yew teacher


def seed_org(db: ServiceSession, kind: str, name: str, trust: str | None = None) -> str:
    org_id = str(uuid.uuid4())
    values = {"kind": kind, "name": name, "parent_trust_id": trust}
    directory.apply_event(
        db,
        auth_event("auth.organisation_created", "organisation", org_id, values),
        now=T0,
    )
    return org_id


def seed_user(
    db: ServiceSession,
    org_id: str,
    name: str,
    roles: dict[str, list[str]],
    manager: Person | None = None,
) -> Person:
    user_id = str(uuid.uuid4())
    values = {
        "org_id": org_id,
        "given_name": name,
        "family_name": "Tester",
        "line_manager_id": manager.id if manager else None,
        "active": True,
    }
    directory.apply_event(
        db, auth_event("auth.user_created", "user", user_id, values), now=T0
    )
    identity = Identity(user_id=user_id, org_id=org_id, scopes=roles)
    return Person(user_id, org_id, identity)


@pytest.fixture
def world(db: ServiceSession) -> World:
    trust = seed_org(db, "trust", "Oak Trust")
    elm = seed_org(db, "school", "Elm Primary", trust)
    ash = seed_org(db, "school", "Ash Academy", trust)
    yew = seed_org(db, "school", "Yew School")
    everywhere = [trust, elm, ash]
    margo = seed_user(db, elm, "Margo", {"line_manager": [elm], "staff": [elm]})
    return World(
        trust=trust,
        elm=elm,
        ash=ash,
        yew=yew,
        trust_admin=seed_user(db, trust, "Tess", {"trust_admin": everywhere}),
        elm_admin=seed_user(db, elm, "Eve", {"school_admin": [elm]}),
        ash_admin=seed_user(db, ash, "Adam", {"school_admin": [ash]}),
        yew_admin=seed_user(db, yew, "Yves", {"school_admin": [yew]}),
        margo=margo,
        tom=seed_user(db, elm, "Tom", {"staff": [elm]}, manager=margo),
        tina=seed_user(db, elm, "Tina", {"staff": [elm]}, manager=margo),
        amy=seed_user(db, ash, "Amy", {"staff": [ash]}),
        yan=seed_user(db, yew, "Yan", {"staff": [yew]}),
    )


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def set(self, day: date) -> None:
        self.current = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reviews_config(
    rabbit_config: dict[str, Any], reviews_db_url: str, tmp_path: Any
) -> dict[str, Any]:
    return {
        **rabbit_config,
        "REVIEWS_DATABASE_URL": reviews_db_url,
        "DATA_DIR": str(tmp_path / "data"),
        "REVIEWS_EVIDENCE_DIR": str(tmp_path / "evidence"),
    }


@pytest.fixture
def reviews_container(container_factory: Any, reviews_config: dict[str, Any]) -> Any:
    """The reviews service; not started until the test calls start()."""
    from services.reviews.service import ReviewsService

    return container_factory(ReviewsService, reviews_config)


@pytest.fixture
def reviews_rpc(reviews_config: dict[str, Any]) -> Callable[..., Any]:
    """``with reviews_rpc(identity) as reviews: reviews.get_review(...)``"""
    return rpc_connector("reviews", reviews_config, timeout=15)
