"""The training service in nameko containers, over real RabbitMQ and
PostgreSQL: access marks, errors over the wire, the auth event copy, and
two instances racing for places."""

from __future__ import annotations

import inspect
import time
import uuid
from datetime import UTC, datetime

import pytest
from nameko.exceptions import RemoteError
from nameko.rpc import Rpc, rpc
from nameko.standalone.events import event_dispatcher
from sqlalchemy import select
from structlog.testing import capture_logs

from plumbing.envelope import make_event
from plumbing.errors import NotFound, from_remote
from plumbing.identity import Identity
from services.training import events
from services.training.models import ProcessedEvent, Staff
from services.training.service import TrainingService
from tests.service_support import outbox

from .conftest import add_person, scheduled_event


def error_of(caught):
    error = from_remote(caught.value.value)
    assert error is not None, caught.value
    return error


def rpc_methods():
    for name, method in inspect.getmembers(TrainingService, inspect.isfunction):
        entrypoints = getattr(method, "nameko_entrypoints", set())
        if any(isinstance(entrypoint, Rpc) for entrypoint in entrypoints):
            yield name, method


def test_every_rpc_method_is_marked_and_only_ping_and_the_feed_are_open():
    """Each @rpc method is authenticated or anonymous; two are anonymous."""
    marks = {name: getattr(m, "__cpd_access__", None) for name, m in rpc_methods()}
    assert set(marks.values()) == {"authenticated", "anonymous"}
    anonymous = {name for name, mark in marks.items() if mark == "anonymous"}
    assert anonymous == {"ping", "get_calendar_feed"}


def test_calls_without_identity_are_refused_and_errors_keep_their_codes(
    container_factory, training_config, training_rpc, world, db
):
    """No identity: UNAUTHENTICATED; another school's event: NOT_FOUND."""
    container_factory(TrainingService, training_config).start()
    event = scheduled_event(db, world.lead, world.elm, now=datetime.now(UTC))
    with training_rpc() as training:
        assert training.ping()["ok"] is True
        with pytest.raises(RemoteError) as caught:
            training.list_courses()
        assert error_of(caught).code == "UNAUTHENTICATED"
    with training_rpc(world.yew_lead.identity) as training:
        with pytest.raises(RemoteError) as caught:
            training.get_event(event["id"])
    assert (error_of(caught).code, error_of(caught).status) == ("NOT_FOUND", 404)
    assert outbox(db, events.AUTHZ_DENIED)[0]["actor"]["user_id"] == "yves"


def _wait_for(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_auth_user_events_keep_the_line_manager_copy_once_each(
    container_factory, training_config, world, db
):
    """user_created then user_updated (sent twice) set the manager once each."""
    container_factory(TrainingService, training_config).start()
    created = make_event(
        "auth.user_created",
        subject_type="user",
        subject_id="nina",
        org_id=world.elm,
        changes={
            "org_id": {"before": None, "after": world.elm},
            "line_manager_id": {"before": None, "after": "margo"},
            "given_name": {"before": None, "after": "Nina"},
            "family_name": {"before": None, "after": "New"},
            "active": {"before": None, "after": True},
        },
    )
    updated = make_event(
        "auth.user_updated",
        subject_type="user",
        subject_id="nina",
        org_id=world.elm,
        changes={"line_manager_id": {"before": "margo", "after": "lena"}},
    )
    dispatch = event_dispatcher(training_config)
    dispatch("auth", "user_created", created)
    assert _wait_for(lambda: _manager_of(db, "nina") == "margo")
    dispatch("auth", "user_updated", updated)
    dispatch("auth", "user_updated", updated)
    assert _wait_for(lambda: _manager_of(db, "nina") == "lena")
    assert _wait_for(lambda: _processed(db) == 2)
    assert db.get(Staff, "nina").display_name == "Nina New"


def _manager_of(db, user_id):
    db.rollback()
    staff = db.get(Staff, user_id, populate_existing=True)
    return staff.line_manager_id if staff else None


def _processed(db):
    db.rollback()
    return len(db.scalars(select(ProcessedEvent.event_id)).all())


def test_two_instances_book_exactly_ten_of_fifty_and_waitlist_forty_in_order(
    container_factory, training_config, training_rpc, world, db, monkeypatch
):
    """50 simultaneous requests for 10 places on two instances: 10 booked,
    40 waitlisted at positions 1 to 40 in the order they were decided."""
    from services.training import bookings

    engines = set()
    real = bookings.book_staff

    def counted(db, *args, **kwargs):
        engines.add(id(db.get_bind()))  # one engine per container
        return real(db, *args, **kwargs)

    monkeypatch.setattr(bookings, "book_staff", counted)
    config = {**training_config, "max_workers": 10}
    container_factory(TrainingService, config).start()
    container_factory(TrainingService, config).start()
    event = scheduled_event(
        db, world.lead, world.elm, capacity=10, now=datetime.now(UTC)
    )
    staff = [
        add_person(db, f"staff-{n}-{uuid.uuid4().hex[:6]}", world.elm, {})
        for n in range(50)
    ]
    with training_rpc(world.lead.identity) as training:
        replies = [
            training.book_staff.call_async(event["id"], person.user_id, {})
            for person in staff
        ]
        results = [reply.result() for reply in replies]

    assert len(engines) == 2, "both instances took requests"
    statuses = [result["status"] for result in results]
    assert statuses.count("booked") == 10
    assert statuses.count("waitlisted") == 40
    positions = sorted(
        r["waitlist_position"] for r in results if r["waitlist_position"]
    )
    assert positions == list(range(1, 41))
    # The outbox keeps the order in which the locked decisions were taken.
    waitlisted = outbox(db, events.BOOKING_WAITLISTED)
    assert [e["data"]["waitlist_position"] for e in waitlisted] == list(range(1, 41))
    booked_before_first_wait = [
        e["type"]
        for e in outbox(db)
        if e["type"] in (events.BOOKING_BOOKED, events.BOOKING_WAITLISTED)
    ]
    assert booked_before_first_wait[:10] == [events.BOOKING_BOOKED] * 10


def test_an_auth_event_that_fails_is_retried_not_lost(
    container_factory, training_config, world, db, monkeypatch
):
    """The first attempt fails (e.g. a database blip); the redelivery applies it."""
    from services.training import directory

    real = directory.apply_auth_event
    attempts = []

    def flaky(session, payload, now):
        attempts.append(payload["event_id"])
        if len(attempts) == 1:
            raise RuntimeError("database went away")
        return real(session, payload, now)

    monkeypatch.setattr(directory, "apply_auth_event", flaky)
    container_factory(TrainingService, training_config).start()
    created = make_event(
        "auth.user_created",
        subject_type="user",
        subject_id="rita",
        org_id=world.elm,
        changes={
            "org_id": {"before": None, "after": world.elm},
            "line_manager_id": {"before": None, "after": "margo"},
        },
    )
    event_dispatcher(training_config)("auth", "user_created", created)
    assert _wait_for(lambda: _manager_of(db, "rita") == "margo")
    assert len(attempts) >= 2


class FakeAuthService:
    """Answers get_user and get_organisation like auth, for users and an
    organisation whose auth events the training service never received."""

    name = "auth"

    @rpc
    def get_user(self, user_id):
        users = {
            "nora": {"id": "nora", "org_id": "school-new", "line_manager_id": "max"},
            "nia": {"id": "nia", "org_id": "school-elm", "line_manager_id": None},
        }
        if user_id not in users:
            raise NotFound("No such user")
        return {**users[user_id], "active": True, "given_name": "N"}

    @rpc
    def get_organisation(self, org_id):
        if org_id != "school-new":
            raise NotFound("No such organisation")
        return {
            "id": org_id,
            "kind": "school",
            "name": "New School",
            "parent_trust_id": "trust-oak",
            "timezone": "Europe/Dublin",
        }


def test_what_auth_events_never_delivered_is_asked_of_auth(
    container_factory, training_config, training_rpc, world, db
):
    """Nora's school, trust and line manager come from auth by RPC: she sees
    the trust's event, and Max, her manager, can approve her request; Elm's
    lead can book Nia, whom only auth knows."""
    container_factory(FakeAuthService, training_config).start()
    container_factory(TrainingService, training_config).start()
    event = scheduled_event(
        db, world.trust_lead, world.trust, now=datetime.now(UTC), capacity=3
    )
    nora = Identity("nora", "school-new", scopes={"staff": ["school-new"]})
    max_ = Identity("max", "school-new", scopes={"line_manager": ["school-new"]})
    with training_rpc(nora) as training:
        assert [e["id"] for e in training.list_events()["items"]] == [event["id"]]
        asked = training.request_booking(event["id"], {})
    assert asked["status"] == "pending_manager"
    with training_rpc(max_) as training:
        approved = training.approve_booking(asked["id"])
    assert approved["status"] == "booked"
    db.rollback()
    assert db.get(Staff, "nora").line_manager_id == "max"

    with training_rpc(world.lead.identity) as training:
        direct = training.book_staff(event["id"], "nia", {})
    assert (direct["status"], direct["org_id"]) == ("booked", world.elm)


def test_an_auth_message_that_is_not_an_envelope_is_dropped_not_retried(
    container_factory, training_config, world, db
):
    """A malformed message is logged once and dropped; the next event applies."""
    container_factory(TrainingService, training_config).start()
    dispatch = event_dispatcher(training_config)
    created = make_event(
        "auth.user_created",
        subject_type="user",
        subject_id="sam",
        org_id=world.elm,
        changes={
            "org_id": {"before": None, "after": world.elm},
            "line_manager_id": {"before": None, "after": "margo"},
        },
    )
    with capture_logs() as logs:
        dispatch("auth", "user_created", {"not": "an envelope"})
        dispatch("auth", "user_created", created)
        assert _wait_for(lambda: _manager_of(db, "sam") == "margo")
    assert [e["event"] for e in logs].count("auth_event_dropped") == 1
    assert _processed(db) == 1
