"""Fixtures of the notify tests: a migrated PostgreSQL database per test, a
domain-level session on it, contacts fed with the auth events a real auth
service sends (Oak Trust with Elm school, standalone Yew), fakes of the
training and reviews answers, and a real SMTP server (``scripts.mail_sink``,
aiosmtpd) in its own process, whose received messages the tests read."""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from plumbing.database import ServiceSession
from plumbing.envelope import make_event
from plumbing.errors import NotFound
from plumbing.identity import Identity
from services.notify import handlers
from services.notify.settings import Settings
from tests.service_support import service_session

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2030, 1, 6, 9, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def notify_db_url(make_database: Callable[[str], str]) -> str:
    return make_database("notify")


@pytest.fixture
def db(notify_db_url: str) -> Iterator[ServiceSession]:
    with service_session(notify_db_url) as session:
        yield session


class MailSink:
    """``scripts.mail_sink`` in a subprocess: a real SMTP server."""

    def __init__(self, folder: Path, port: int, *extra: str) -> None:
        self.folder = folder
        self.port = port
        self.refuse_file = folder.parent / f"refuse-{port}"
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scripts.mail_sink",
                "--port",
                str(self.port),
                "--dir",
                str(self.folder),
                "--refuse-file",
                str(self.refuse_file),
                *self.extra,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the mail sink did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def refuse(self, on: bool = True) -> None:
        """While on, every message is answered 451 (try again later)."""
        if on:
            self.refuse_file.touch()
        else:
            self.refuse_file.unlink(missing_ok=True)

    def messages(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in sorted(self.folder.glob("*.eml"))
        ]

    def wait_for(self, count: int, timeout: float = 15) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages())} messages arrived, not {count}")


@pytest.fixture
def mail_sink(tmp_path: Path) -> Iterator[MailSink]:
    sink = MailSink(tmp_path / "mail", free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def settings(mail_sink: MailSink) -> Settings:
    return Settings(
        smtp_port=mail_sink.port,
        smtp_timeout=5,
        retry_seconds=0.2,
        retry_max_seconds=1,
        max_attempts=3,
        mail_poll_seconds=0.05,
        app_url="https://cpd.example.org",
    )


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def body_html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()


def attachments(message: EmailMessage) -> list[tuple[str, str, str]]:
    """``(filename, content type, text)`` of each attachment."""
    found = []
    for part in message.iter_attachments():
        content = part.get_content()
        if isinstance(content, bytes):
            content = content.decode()
        found.append((part.get_filename(), part.get_content_type(), content))
    return found


# -- people ------------------------------------------------------------------


def auth_event(
    event_type: str,
    subject_type: str,
    subject_id: str,
    after: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    org_id: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """An envelope as the auth service publishes it."""
    after = after or {}
    return make_event(
        event_type,
        subject_type=subject_type,
        subject_id=subject_id,
        org_id=org_id or after.get("org_id", subject_id),
        changes={key: {"before": None, "after": value} for key, value in after.items()},
        data=data,
        actor={"user_id": actor},
    )


@dataclass
class Person:
    id: str
    org_id: str
    given_name: str
    email: str
    identity: Identity


@dataclass
class World:
    trust: str
    elm: str
    yew: str
    people: dict[str, Person] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Person:
        try:
            return self.__dict__["people"][name]
        except KeyError:
            raise AttributeError(name) from None


def user_events(world: World) -> list[dict[str, Any]]:
    """The auth events that made the organisations and people of ``world``."""
    found = [
        auth_event(
            "auth.organisation_created",
            "organisation",
            world.trust,
            {"kind": "trust", "name": "Oak Trust"},
            org_id=world.trust,
        ),
        auth_event(
            "auth.organisation_created",
            "organisation",
            world.elm,
            {"kind": "school", "name": "Elm Primary", "parent_trust_id": world.trust},
            org_id=world.elm,
        ),
        auth_event(
            "auth.organisation_created",
            "organisation",
            world.yew,
            {"kind": "school", "name": "Yew Academy"},
            org_id=world.yew,
        ),
    ]
    for person in world.people.values():
        roles = [
            {"role": role, "org_id": org}
            for role, orgs in person.identity.scopes.items()
            for org in orgs
        ]
        manager = world.people["margo"].id if person.given_name == "Tom" else None
        found.append(
            auth_event(
                "auth.user_created",
                "user",
                person.id,
                {
                    "username": person.given_name.lower(),
                    "given_name": person.given_name,
                    "family_name": "Smith",
                    "email": person.email,
                    "org_id": person.org_id,
                    "line_manager_id": manager,
                    "active": True,
                    "roles": roles,
                },
            )
        )
    return found


def make_world() -> World:
    ids = {name: str(uuid.uuid4()) for name in ("trust", "elm", "yew")}
    world = World(trust=ids["trust"], elm=ids["elm"], yew=ids["yew"])

    def person(name: str, org: str, scopes: dict[str, list[str]]) -> None:
        user_id = str(uuid.uuid4())
        world.people[name.lower()] = Person(
            id=user_id,
            org_id=org,
            given_name=name,
            email=f"{name.lower()}@example.org",
            identity=Identity(user_id=user_id, org_id=org, scopes=scopes),
        )

    person("Tom", world.elm, {"staff": [world.elm]})
    person("Margo", world.elm, {"staff": [world.elm], "line_manager": [world.elm]})
    person("Cleo", world.elm, {"staff": [world.elm], "cpd_lead": [world.elm]})
    person("Ada", world.elm, {"staff": [world.elm], "school_admin": [world.elm]})
    person("Yves", world.yew, {"staff": [world.yew], "school_admin": [world.yew]})
    return world


class FakeTraining:
    """Answers as the training service's notify RPCs would."""

    def __init__(self) -> None:
        self.bookings: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.external: dict[str, dict[str, Any]] = {}
        self.sessions: list[dict[str, Any]] = []
        self.down = False
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _check(self, name: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((name, kwargs))
        if self.down:
            from plumbing.errors import ServiceUnavailable

            raise ServiceUnavailable("The training service is not running")

    def notification_context(
        self,
        booking_id: str | None = None,
        event_id: str | None = None,
        external_request_id: str | None = None,
    ) -> dict[str, Any]:
        self._check(
            "notification_context", {"booking_id": booking_id, "event_id": event_id}
        )
        if external_request_id is not None:
            if external_request_id not in self.external:
                raise NotFound("No such external request")
            return self.external[external_request_id]
        if booking_id is not None:
            if booking_id not in self.bookings:
                raise NotFound("No such booking")
            return self.bookings[booking_id]
        if event_id not in self.events:
            raise NotFound("No such event")
        return self.events[event_id]

    def sessions_starting(
        self, start: str, end: str, offset: int = 0, limit: int = 500
    ) -> dict[str, Any]:
        self._check("sessions_starting", {"start": start, "end": end})
        begin, finish = datetime.fromisoformat(start), datetime.fromisoformat(end)
        items = [
            s
            for s in self.sessions
            if begin <= datetime.fromisoformat(s["starts_at"]) < finish
        ]
        return {"items": items[offset : offset + limit], "total": len(items)}


class FakeReviews:
    def __init__(self) -> None:
        self.reviews: dict[str, dict[str, Any]] = {}
        self.observations: dict[str, dict[str, Any]] = {}
        self.due: list[dict[str, Any]] = []
        self.down = False

    def notification_context(
        self, review_id: str | None = None, observation_id: str | None = None
    ) -> dict[str, Any]:
        if self.down:
            from plumbing.errors import ServiceUnavailable

            raise ServiceUnavailable("The reviews service is not running")
        if review_id is not None:
            if review_id not in self.reviews:
                raise NotFound("No such review")
            return {"review": self.reviews[review_id]}
        if observation_id not in self.observations:
            raise NotFound("No such observation")
        return {"observation": self.observations[observation_id]}

    def milestones_due(
        self, today: str, days: int, offset: int = 0, limit: int = 500
    ) -> dict[str, Any]:
        if self.down:
            from plumbing.errors import ServiceUnavailable

            raise ServiceUnavailable("The reviews service is not running")
        items = self.due
        return {"items": items[offset : offset + limit], "total": len(items)}


def event_info(
    world: World, title: str = "Phonics in depth", start: datetime | None = None
) -> dict[str, Any]:
    start = start or T0 + timedelta(days=7)
    return {
        "id": str(uuid.uuid4()),
        "org_id": world.elm,
        "org_name": "Elm Primary",
        "timezone": "Europe/London",
        "title": title,
        "facilitator": "Fran",
        "status": "scheduled",
        "sessions": [
            {
                "id": str(uuid.uuid4()),
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=3)).isoformat(),
                "venue": "Main hall",
                "online_link": None,
            }
        ],
    }


ICS_REQUEST = (
    "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nUID:booking-1@cpd\r\nEND:VCALENDAR\r\n"
)
ICS_CANCEL = (
    "BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nUID:booking-1@cpd\r\nEND:VCALENDAR\r\n"
)


def booking_context(
    world: World,
    event: dict[str, Any],
    status: str,
    *,
    user: str = "tom",
    deciders: list[str] | None = None,
    lead_org: str | None = None,
    ics: str | None = None,
) -> dict[str, Any]:
    person = world.people[user]
    return {
        "booking": {
            "id": str(uuid.uuid4()),
            "status": status,
            "user_id": person.id,
            "org_id": person.org_id,
            "waitlist_position": None,
            "reason": None,
        },
        "event": event,
        "deciders": {"user_ids": deciders or [], "cpd_lead_org_id": lead_org},
        "ics": ics,
    }


def booking_event(
    event_type: str,
    context: dict[str, Any],
    *,
    before: str | None = None,
    actor: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    booking = context["booking"]
    return make_event(
        event_type,
        subject_type="booking",
        subject_id=booking["id"],
        org_id=booking["org_id"],
        changes={"status": {"before": before, "after": booking["status"]}},
        data={
            "event_id": context["event"]["id"],
            "user_id": booking["user_id"],
            **data,
        },
        actor={"user_id": actor},
    )


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def training() -> FakeTraining:
    return FakeTraining()


@pytest.fixture
def reviews() -> FakeReviews:
    return FakeReviews()


@pytest.fixture
def handle(
    db: ServiceSession, settings: Settings, training: FakeTraining, reviews: FakeReviews
) -> Callable[..., Any]:
    """``handle(envelope, now=T0)``: the domain handler, with the fakes."""

    def run(envelope: dict[str, Any], now: datetime = T0) -> int | None:
        return handlers.handle(
            db, envelope, now=now, settings=settings, training=training, reviews=reviews
        )

    return run


@pytest.fixture
def known(world: World, handle: Callable[..., Any]) -> World:
    """``world`` with every organisation and person known to notify."""
    for envelope in user_events(world):
        handle(envelope)
    return world
