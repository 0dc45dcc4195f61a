"""The reviews service in a nameko container, over real RabbitMQ and
PostgreSQL: its RPCs, its published events and its staff directory fed by
auth's events."""

from __future__ import annotations

import inspect
import json
import logging
import time
import uuid

import eventlet
import pytest
from kombu import Connection
from nameko.amqp.publish import Publisher
from nameko.exceptions import RemoteError
from nameko.rpc import Rpc
from sqlalchemy import func, select, text
from structlog.testing import capture_logs

from plumbing import topology
from plumbing.errors import from_remote
from services.reviews import events
from services.reviews.models import DirectoryUser, ProcessedEvent
from services.reviews.service import ReviewsService

from .conftest import CYCLE, T0, auth_event


def error_of(caught):
    error = from_remote(caught.value.value)
    assert error is not None, caught.value
    return error


def rpc_methods():
    for name, method in inspect.getmembers(ReviewsService, inspect.isfunction):
        entrypoints = getattr(method, "nameko_entrypoints", set())
        if any(isinstance(entrypoint, Rpc) for entrypoint in entrypoints):
            yield name, method


def wait_for(check, timeout=15.0):
    """Poll ``check`` until it returns a true value; fail after the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        eventlet.sleep(0.1)
    raise AssertionError("condition not met in time")


def publish_auth(config, envelope):
    """Publish an envelope to ``auth.events`` as the auth service's relay does."""
    topology.declare(config["AMQP_URI"])
    publisher = Publisher(config["AMQP_URI"], serializer="json", use_confirms=True)
    publisher.publish(
        envelope,
        exchange=topology.exchange("auth"),
        routing_key=envelope["type"].split(".", 1)[1],
        message_id=envelope["event_id"],
    )


def published(config, event_type):
    """The first event of the type on the audit queue of this test's vhost."""
    with Connection(config["AMQP_URI"]) as conn:
        queue = topology.audit_queue()(conn.default_channel)

        def get():
            message = queue.get(no_ack=True)
            while message is not None:
                payload = message.payload
                if isinstance(payload, str | bytes):
                    payload = json.loads(payload)
                if payload["type"] == event_type:
                    return payload
                message = queue.get(no_ack=True)
            return None

        return wait_for(get)


def directory_user(db, user_id):
    db.rollback()
    return db.get(DirectoryUser, user_id)


def test_every_rpc_method_but_ping_needs_an_identity():
    """Each @rpc method is marked; ping alone is anonymous."""
    marks = {name: getattr(m, "__cpd_access__", None) for name, m in rpc_methods()}
    assert len(marks) == 32
    anonymous = {name for name, mark in marks.items() if mark == "anonymous"}
    assert anonymous == {"ping"}
    assert set(marks.values()) == {"authenticated", "anonymous"}


def test_an_rpc_without_identity_is_refused(reviews_container, reviews_rpc):
    """list_cycles with no identity is UNAUTHENTICATED."""
    reviews_container.start()
    with reviews_rpc() as reviews:
        assert reviews.ping()["ok"] is True
        with pytest.raises(RemoteError) as caught:
            reviews.list_cycles()
    assert error_of(caught).code == "UNAUTHENTICATED"


def test_a_cycle_over_rpc_publishes_its_events(
    reviews_container, reviews_rpc, reviews_config, world
):
    """open_cycle over RPC reaches RabbitMQ as reviews.cycle_opened with the actor."""
    reviews_container.start()
    with reviews_rpc(world.elm_admin.identity) as reviews:
        cycle = reviews.open_cycle(dict(CYCLE, org_id=world.elm))
    assert cycle["reviews_created"] == 4
    event = published(reviews_config, events.CYCLE_OPENED)
    assert event["subject"]["id"] == cycle["id"]
    assert event["actor"]["user_id"] == world.elm_admin.id


def test_errors_cross_rpc_with_their_codes(reviews_container, reviews_rpc, world):
    """An out-of-order step and another school's review come back by code."""
    reviews_container.start()
    with reviews_rpc(world.elm_admin.identity) as reviews:
        cycle = reviews.open_cycle(dict(CYCLE, org_id=world.elm))
    with reviews_rpc(world.margo.identity) as reviews:
        [tom] = [
            r
            for r in reviews.list_reviews({"cycle_id": cycle["id"]})["items"]
            if r["reviewee_id"] == world.tom.id
        ]
        with pytest.raises(RemoteError) as caught:
            reviews.take_review_step(tom["id"], "record_final_review", "Early")
    assert error_of(caught).code == "INVALID_TRANSITION"
    with reviews_rpc(world.ash_admin.identity) as reviews:
        with pytest.raises(RemoteError) as caught:
            reviews.get_review(tom["id"])
    assert error_of(caught).code == "NOT_FOUND"


def test_auth_events_keep_the_staff_directory(
    reviews_container, reviews_config, db, world
):
    """A new user and then a new line manager, published by auth, are applied."""
    reviews_container.start()
    user_id = str(uuid.uuid4())
    created = auth_event(
        "auth.user_created",
        "user",
        user_id,
        {"org_id": world.elm, "line_manager_id": None, "active": True},
    )
    publish_auth(reviews_config, created)
    wait_for(lambda: directory_user(db, user_id))
    updated = auth_event(
        "auth.user_updated", "user", user_id, {"line_manager_id": world.margo.id}
    )
    publish_auth(reviews_config, updated)
    wait_for(lambda: directory_user(db, user_id).line_manager_id == world.margo.id)


def test_a_repeated_or_late_event_changes_nothing(
    reviews_container, reviews_config, db, world
):
    """The same event twice is applied once; an older event loses to a newer."""
    reviews_container.start()
    user_id = str(uuid.uuid4())
    newer = auth_event(
        "auth.user_updated",
        "user",
        user_id,
        {"org_id": world.elm, "line_manager_id": world.margo.id},
        occurred_at=T0.replace(year=2031),
    )
    older = auth_event(
        "auth.user_created",
        "user",
        user_id,
        {"org_id": world.ash, "line_manager_id": None, "given_name": "Lee"},
        occurred_at=T0,
    )
    for envelope in (newer, newer, older):
        publish_auth(reviews_config, envelope)
    ids = {newer["event_id"], older["event_id"]}

    def both_applied() -> bool:
        db.rollback()
        query = select(func.count()).where(ProcessedEvent.event_id.in_(ids))
        return db.scalar(query) == 2

    wait_for(both_applied)
    person = directory_user(db, user_id)
    assert (person.org_id, person.line_manager_id) == (world.elm, world.margo.id)
    assert person.given_name == "Lee"


def test_an_event_that_fails_is_requeued_not_lost(
    reviews_container, reviews_config, db, world
):
    """With the directory table gone the event waits; once back it is applied."""
    reviews_container.start()
    db.execute(text("ALTER TABLE directory_users RENAME TO directory_users_away"))
    db.commit()
    user_id = str(uuid.uuid4())
    envelope = auth_event(
        "auth.user_created", "user", user_id, {"org_id": world.elm, "active": True}
    )
    with capture_logs() as logs:
        publish_auth(reviews_config, envelope)
        wait_for(lambda: _failures(logs) >= 2)
    db.execute(text("ALTER TABLE directory_users_away RENAME TO directory_users"))
    db.commit()
    wait_for(lambda: directory_user(db, user_id))


def _failures(logs) -> int:
    return sum(1 for line in logs if line["event"] == "directory_event_requeued")


def test_free_text_never_reaches_a_log_line(
    reviews_container, reviews_rpc, world, caplog
):
    """Notes, self review, observation text and comments stay out of every log."""
    marker = "MARKER-7f3a-private-words"
    # The platform logs at INFO; nameko's own DEBUG lines carry RPC payloads.
    caplog.set_level(logging.INFO)
    reviews_container.start()
    with capture_logs() as logs:
        with reviews_rpc(world.elm_admin.identity) as reviews:
            cycle = reviews.open_cycle(dict(CYCLE, org_id=world.elm))
        with reviews_rpc(world.margo.identity) as reviews:
            [tom] = [
                r
                for r in reviews.list_reviews({"cycle_id": cycle["id"]})["items"]
                if r["reviewee_id"] == world.tom.id
            ]
            reviews.add_objective(
                tom["id"],
                {
                    "type": "personal",
                    "description": marker,
                    "success_criteria": marker,
                    "due_on": "2031-01-01",
                },
            )
            with pytest.raises(RemoteError):
                reviews.take_review_step(tom["id"], "record_final_review", marker)
            made = reviews.create_observation(
                {
                    "type": "formal",
                    "observed_id": world.tom.id,
                    "observed_on": "2030-11-12",
                    "focus": marker,
                    "strengths": marker,
                }
            )
            reviews.share_observation(made["id"])
            reviews.add_comment(
                {"target_type": "review", "target_id": tom["id"], "text": marker}
            )
        with reviews_rpc(world.tom.identity) as reviews:
            reviews.get_observation(made["id"])
            reviews.acknowledge_observation(made["id"], marker)
            with pytest.raises(RemoteError):
                reviews.save_self_review(tom["id"], "x" * 20_001 + marker)
    assert caplog.records
    assert all(marker not in repr(line) for line in logs)
    assert all(marker not in record.getMessage() for record in caplog.records)
