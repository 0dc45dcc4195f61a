"""Fixtures of the training tests: a migrated PostgreSQL database per test,
a domain-level session on it, a seeded trust with schools and staff, a clock
the tests move by hand, and the training service in nameko containers on a
fresh RabbitMQ vhost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from plumbing.database import ServiceSession
from plumbing.identity import Identity
from services.training import catalogue
from services.training.models import Organisation, Staff
from tests.service_support import rpc_connector, service_session

# A Monday in term time; events in the tests start a week later.
T0 = datetime(2030, 1, 6, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def training_db_url(make_database: Callable[[str], str]) -> str:
    return make_database("training")


@pytest.fixture
def db(training_db_url: str) -> Iterator[ServiceSession]:
    """A session on this test's training database, as the workers get."""
    with service_session(training_db_url) as session:
        yield session


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


@dataclass
class Person:
    user_id: str
    org_id: str
    identity: Identity


@dataclass
class World:
    """Oak Trust with Elm and Ash schools, a standalone Yew school, and staff.

    Elm: Margo (line manager) manages Tom and Tara; Lena is Elm's CPD lead;
    Eve Elm's admin. Ash: Amy (no line manager). Oak: Olga, the trust's CPD
    lead. Yew: Yves, its CPD lead.
    """

    trust: str
    elm: str
    ash: str
    yew: str
    manager: Person
    tom: Person
    tara: Person
    lead: Person
    admin: Person
    amy: Person
    trust_lead: Person
    yew_lead: Person


def add_org(db: ServiceSession, org_id: str, trust: str | None = None, **values: Any):
    kind = "trust" if org_id.startswith("trust") else "school"
    db.add(
        Organisation(
            id=org_id,
            kind=kind,
            name=org_id.title(),
            parent_trust_id=trust,
            timezone=values.pop("timezone", "Europe/London"),
            cover_daily_rate=values.pop("cover_daily_rate", Decimal("200")),
            **values,
        )
    )
    db.commit()


def add_person(
    db: ServiceSession,
    user_id: str,
    org_id: str,
    roles: dict[str, list[str]],
    manager: str | None = None,
    **values: Any,
) -> Person:
    db.add(
        Staff(
            user_id=user_id,
            org_id=org_id,
            line_manager_id=manager,
            display_name=user_id.title(),
            active=True,
            job_role=values.pop("job_role", "teacher"),
            **values,
        )
    )
    db.commit()
    return Person(user_id, org_id, Identity(user_id, org_id, scopes=roles))


@pytest.fixture
def world(db: ServiceSession) -> World:
    trust, elm, ash, yew = "trust-oak", "school-elm", "school-ash", "school-yew"
    add_org(db, trust)
    add_org(db, elm, trust)
    add_org(db, ash, trust)
    add_org(db, yew)
    both = [trust, elm, ash]
    return World(
        trust=trust,
        elm=elm,
        ash=ash,
        yew=yew,
        manager=add_person(db, "margo", elm, {"staff": [elm], "line_manager": [elm]}),
        tom=add_person(db, "tom", elm, {"staff": [elm]}, manager="margo"),
        tara=add_person(db, "tara", elm, {"staff": [elm]}, manager="margo"),
        lead=add_person(db, "lena", elm, {"cpd_lead": [elm]}, job_role="leader"),
        admin=add_person(db, "eve", elm, {"school_admin": [elm]}, job_role="admin"),
        amy=add_person(db, "amy", ash, {"staff": [ash]}),
        trust_lead=add_person(db, "olga", trust, {"cpd_lead": both}),
        yew_lead=add_person(db, "yves", yew, {"cpd_lead": [yew]}),
    )


def sessions_from(start: datetime, *hours: tuple[int, int]) -> list[dict[str, Any]]:
    """Sessions on consecutive days from ``start``: (offset_hours, length)."""
    return [
        {
            "starts_at": (start + timedelta(hours=offset)).isoformat(),
            "ends_at": (start + timedelta(hours=offset + length)).isoformat(),
            "venue": "Elm hall",
        }
        for offset, length in hours
    ]


def scheduled_event(
    db: ServiceSession,
    lead: Person,
    catalogue_org: str,
    *,
    now: datetime = T0,
    capacity: int = 2,
    fee: str = "50",
    hours: str = "6",
    sessions: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A published course with one scheduled event a week from ``now``."""
    caller = lead.identity
    course = catalogue.create_course(
        db,
        caller,
        {
            "org_id": catalogue_org,
            "title": "Behaviour",
            "cpd_hours": hours,
            "fee": fee,
        },
        now=now,
    )
    catalogue.set_course_status(db, caller, course["id"], "published", now=now)
    start = now + 7 * DAY
    event = catalogue.create_event(
        db,
        caller,
        {
            "course_id": course["id"],
            "capacity": capacity,
            "facilitator": "Fran",
            "sessions": sessions or sessions_from(start, (0, 3)),
            **extra,
        },
        now=now,
    )
    return catalogue.schedule_event(db, caller, event["id"], now=now)


@pytest.fixture
def training_config(rabbit_config: dict[str, Any], training_db_url: str):
    return {**rabbit_config, "TRAINING_DATABASE_URL": training_db_url}


@pytest.fixture
def training_rpc(training_config: dict[str, Any]) -> Callable[..., Any]:
    """``with training_rpc(identity) as training: training.get_event(...)``"""
    return rpc_connector("training", training_config, timeout=30)
