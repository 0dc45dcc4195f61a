"""The notify service in nameko containers, over a real RabbitMQ vhost, a
PostgreSQL database and a real SMTP server: events in, email out; the RPCs
of people, admins and the auth service; reminders never sent twice across
two instances and a restart.

Training and reviews are small fake services with the same RPC names and
answers (their real RPCs are tested in their own suites, and all of them
together in tests/e2e)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kombu import Connection
from nameko.exceptions import RemoteError
from sqlalchemy import func, select

from plumbing import topology
from plumbing.envelope import routing
from plumbing.errors import NotFound, from_remote
from plumbing.identity import (
    CallerIdentity,
    Identity,
    authenticated,
    service_identity,
)
from plumbing.rpc import rpc
from services.notify.models import FAILED, SENT, Email, Notification
from tests.notify.conftest import (
    ICS_REQUEST,
    MailSink,
    World,
    attachments,
    body_text,
    booking_context,
    booking_event,
    event_info,
    user_events,
)
from tests.service_support import outbox, rpc_connector, service_session

# What the fake training and reviews services answer, set by each test.
ANSWERS: dict[str, Any] = {}


class FakeTrainingService:
    name = "training"

    @rpc
    def notification_context(
        self, booking_id: str | None = None, event_id: str | None = None
    ) -> Any:
        found = ANSWERS.get("bookings", {}).get(booking_id)
        if found is None:
            raise NotFound("No such booking")
        return found

    @rpc
    def sessions_starting(
        self, start: str, end: str, offset: int = 0, limit: int = 500
    ) -> Any:
        begin, finish = datetime.fromisoformat(start), datetime.fromisoformat(end)
        items = [
            s
            for s in ANSWERS.get("sessions", [])
            if begin <= datetime.fromisoformat(s["starts_at"]) < finish
        ]
        return {"items": items[offset : offset + limit], "total": len(items)}


class FakeReviewsService:
    name = "reviews"

    @rpc
    def milestones_due(
        self, today: str, days: int, offset: int = 0, limit: int = 500
    ) -> Any:
        items = ANSWERS.get("due", [])
        return {"items": items[offset : offset + limit], "total": len(items)}

    @rpc
    def notification_context(
        self, review_id: str | None = None, observation_id: str | None = None
    ) -> Any:
        raise NotFound("No such review")


@pytest.fixture(autouse=True)
def answers() -> Iterator[dict[str, Any]]:
    ANSWERS.clear()
    yield ANSWERS
    ANSWERS.clear()


@pytest.fixture
def notify_config(
    rabbit_config: dict[str, Any], notify_db_url: str, mail_sink: MailSink
) -> dict[str, Any]:
    return {
        **rabbit_config,
        "NOTIFY_DATABASE_URL": notify_db_url,
        "NOTIFY_SMTP_PORT": mail_sink.port,
        "NOTIFY_MAIL_POLL_SECONDS": 0.05,
        "NOTIFY_RETRY_SECONDS": 0.2,
        "NOTIFY_RETRY_MAX_SECONDS": 0.5,
        "NOTIFY_MAX_ATTEMPTS": 3,
        "NOTIFY_TIMER_SECONDS": 3600,
        "NOTIFY_APP_URL": "https://cpd.example.org",
        "RPC_TIMEOUT": 5,
    }


@pytest.fixture
def start_notify(
    notify_config: dict[str, Any], container_factory: Any
) -> Callable[..., Any]:
    # The database fixture first, so that the containers stop before it goes.
    from services.notify.service import NotifyService

    def start(**overrides: Any) -> Any:
        container = container_factory(NotifyService, {**notify_config, **overrides})
        container.start()
        return container

    return start


@pytest.fixture
def fakes(container_factory: Any, rabbit_config: dict[str, Any]) -> None:
    for cls in (FakeTrainingService, FakeReviewsService):
        container_factory(cls, rabbit_config).start()


@pytest.fixture
def notify_rpc(notify_config: dict[str, Any]) -> Callable[..., Any]:
    return rpc_connector("notify", notify_config, timeout=15)


def publish(amqp_uri: str, *envelopes: dict[str, Any]) -> None:
    with Connection(amqp_uri) as conn:
        producer = conn.Producer(serializer="json")
        for envelope in envelopes:
            exchange_name, key = routing(envelope["type"])
            source = exchange_name.removesuffix(".events")
            producer.publish(
                envelope,
                exchange=topology.exchange(source),
                routing_key=key,
                declare=[topology.exchange(source)],
                retry=True,
            )


@contextmanager
def refused(code: str) -> Iterator[None]:
    """The RPC inside fails with this platform error code."""
    with pytest.raises(RemoteError) as caught:
        yield
    assert from_remote(caught.value.value).code == code


def wait_until(check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def count(url: str, model: Any, *where: Any) -> int:
    with service_session(url) as session:
        return (
            session.scalar(select(func.count()).select_from(model).where(*where)) or 0
        )


def test_an_event_reaches_the_person_by_app_and_email(
    start_notify: Callable[..., Any],
    fakes: None,
    rabbit_config: dict[str, Any],
    world: World,
    mail_sink: MailSink,
    notify_rpc: Callable[..., Any],
    notify_db_url: str,
) -> None:
    start_notify()
    publish(rabbit_config["AMQP_URI"], *user_events(world))
    context = booking_context(world, event_info(world), "booked", ics=ICS_REQUEST)
    ANSWERS["bookings"] = {context["booking"]["id"]: context}
    # Wait until Tom is known, so the email has an address.
    wait_until(
        lambda: (
            count(notify_db_url, Notification, Notification.kind == "account_created")
            == 5
        )
    )
    envelope = booking_event("training.booking_booked", context, before="approved")
    publish(rabbit_config["AMQP_URI"], envelope, envelope)  # delivered twice

    [message] = mail_sink.wait_for(1)
    assert message["To"] == "tom@example.org"
    assert message["Subject"] == "You are booked on Phonics in depth"
    assert "Elm Primary" in body_text(message)
    assert attachments(message)[0][2] == ICS_REQUEST
    with notify_rpc(world.tom.identity) as notify:
        inbox = notify.list_notifications({})
    assert [n["kind"] for n in inbox["items"]] == ["booking_booked", "account_created"]
    assert inbox["unread"] == 2
    time.sleep(0.5)
    assert len(mail_sink.messages()) == 1
    assert count(notify_db_url, Email) == 1


def test_inbox_is_private_and_can_be_marked_read(
    start_notify: Callable[..., Any],
    rabbit_config: dict[str, Any],
    world: World,
    notify_rpc: Callable[..., Any],
    notify_db_url: str,
) -> None:
    start_notify()
    publish(rabbit_config["AMQP_URI"], *user_events(world))
    wait_until(lambda: count(notify_db_url, Notification) == 5)
    with notify_rpc(world.tom.identity) as notify:
        [mine] = notify.list_notifications({})["items"]
    with notify_rpc(world.margo.identity) as notify:
        with refused("NOT_FOUND"):
            notify.mark_read(mine["id"])
        with refused("VALIDATION_FAILED"):
            notify.list_notifications({"limit": 1000})
    with service_session(notify_db_url) as session:
        [denied] = outbox(session, "authz.denied")
    assert denied["data"]["action"] == "notify.mark_read"
    with notify_rpc(world.tom.identity) as notify:
        assert notify.mark_read(mine["id"])["read_at"] is not None
        assert notify.list_notifications({"unread_only": True})["items"] == []
        assert notify.mark_all_read() == {"marked": 0}


def test_reset_codes_come_only_from_auth_and_never_reach_an_event(
    start_notify: Callable[..., Any],
    world: World,
    mail_sink: MailSink,
    notify_rpc: Callable[..., Any],
    notify_db_url: str,
) -> None:
    start_notify()
    recipient = {
        "user_id": world.tom.id,
        "org_id": world.elm,
        "email": "tom@example.org",
        "given_name": "Tom",
        "family_name": "Smith",
        "username": "tom",
    }
    expires = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    with notify_rpc(world.ada.identity) as notify:
        with refused("FORBIDDEN"):
            notify.send_password_reset(recipient, "ABCD-EFGH-IJKL-MNOP", expires)
    with notify_rpc(service_identity("auth")) as notify:
        answer = notify.send_password_reset(recipient, "ABCD-EFGH-IJKL-MNOP", expires)
        assert answer["email_id"]
        with refused("VALIDATION_FAILED"):
            notify.send_password_reset(
                dict(recipient, email="not an address"), "X" * 16, expires
            )
        queued = notify.send_invitations(
            [
                {
                    "recipient": dict(
                        recipient,
                        user_id=world.margo.id,
                        email="margo@example.org",
                        given_name="Margo",
                        username="margo",
                    ),
                    "code": "QRST-UVWX-YZ23-4567",
                    "expires_at": expires,
                },
            ]
        )
        assert queued == {"queued": 1}
    messages = mail_sink.wait_for(2)
    by_address = {m["To"]: m for m in messages}
    assert "ABCD-EFGH-IJKL-MNOP" in body_text(by_address["tom@example.org"])
    assert "QRST-UVWX-YZ23-4567" in body_text(by_address["margo@example.org"])
    assert "Your username is: margo" in body_text(by_address["margo@example.org"])
    with service_session(notify_db_url) as session:
        published = str(outbox(session))
    assert (
        "ABCD" not in published
        and "QRST" not in published
        and "tom@example.org" not in published
    )
    # Once sent, the codes are no longer kept in notify's database.
    wait_until(lambda: count(notify_db_url, Email, Email.status == SENT) == 2)
    assert count(notify_db_url, Email, Email.text_body.contains("ABCD")) == 0
    assert count(notify_db_url, Email, Email.html_body.contains("QRST")) == 0


def test_reset_emails_are_rate_limited_per_person(
    start_notify: Callable[..., Any],
    world: World,
    notify_rpc: Callable[..., Any],
    notify_db_url: str,
) -> None:
    start_notify(NOTIFY_RESETS_PER_HOUR=2)
    recipient = {
        "user_id": world.tom.id,
        "org_id": world.elm,
        "email": "tom@example.org",
        "given_name": "Tom",
        "family_name": "Smith",
        "username": "tom",
    }
    expires = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    with notify_rpc(service_identity("auth")) as notify:
        answers = [
            notify.send_password_reset(recipient, f"CODE-{n:04d}-XXXX", expires)
            for n in range(4)
        ]
    assert [a["email_id"] is not None for a in answers] == [True, True, False, False]
    # The codes that were not sent were never kept.
    for n in (2, 3):
        assert (
            count(notify_db_url, Email, Email.text_body.contains(f"CODE-{n:04d}")) == 0
        )


def test_failed_emails_are_visible_to_school_admins_and_can_be_requeued(
    start_notify: Callable[..., Any],
    fakes: None,
    rabbit_config: dict[str, Any],
    world: World,
    mail_sink: MailSink,
    notify_rpc: Callable[..., Any],
    notify_db_url: str,
) -> None:
    mail_sink.stop()
    start_notify()
    publish(rabbit_config["AMQP_URI"], *user_events(world))
    wait_until(lambda: count(notify_db_url, Notification) == 5)
    context = booking_context(world, event_info(world), "expired")
    ANSWERS["bookings"] = {context["booking"]["id"]: context}
    publish(
        rabbit_config["AMQP_URI"], booking_event("training.booking_expired", context)
    )
    wait_until(lambda: count(notify_db_url, Email, Email.status == FAILED) == 1)

    with notify_rpc(world.ada.identity) as notify:
        [failed] = notify.list_emails({})["items"]
    assert (failed["to"], failed["attempts"], failed["recipient_name"]) == (
        "tom@example.org",
        3,
        "Tom Smith",
    )
    assert "ConnectionRefusedError" in failed["last_error"]
    with notify_rpc(world.yves.identity) as notify:
        assert notify.list_emails({})["items"] == []  # another school's admin
        with refused("NOT_FOUND"):
            notify.requeue_email(failed["id"])
    with notify_rpc(world.tom.identity) as notify:
        assert notify.list_emails({})["items"] == []
    mail_sink.start()
    with notify_rpc(world.ada.identity) as notify:
        assert notify.requeue_email(failed["id"])["status"] == "queued"
    mail_sink.wait_for(1)
    wait_until(lambda: count(notify_db_url, Email, Email.status == SENT) == 1)
    with notify_rpc(world.ada.identity) as notify:
        with refused("EMAIL_NOT_RETRYABLE"):
            notify.requeue_email(failed["id"])


def test_a_reminder_is_sent_once_by_two_instances_and_after_a_restart(
    start_notify: Callable[..., Any],
    fakes: None,
    rabbit_config: dict[str, Any],
    world: World,
    mail_sink: MailSink,
    notify_db_url: str,
) -> None:
    first = start_notify()
    publish(rabbit_config["AMQP_URI"], *user_events(world))
    wait_until(lambda: count(notify_db_url, Notification) == 5)
    first.stop()
    starts = datetime.now(UTC) + timedelta(hours=20)
    ANSWERS["sessions"] = [
        {
            "session_id": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "org_id": world.elm,
            "org_name": "Elm Primary",
            "timezone": "Europe/London",
            "title": "Phonics in depth",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=2)).isoformat(),
            "venue": "Main hall",
            "online_link": None,
            "user_ids": [world.tom.id, world.margo.id],
        }
    ]
    ANSWERS["due"] = [
        {
            "review_id": str(uuid.uuid4()),
            "cycle_id": "c1",
            "cycle_name": "2030-31",
            "org_id": world.elm,
            "org_name": "Elm Primary",
            "milestone": "interim_due",
            "due_on": (datetime.now(UTC) + timedelta(days=3)).date().isoformat(),
            "reviewee_id": world.tom.id,
            "user_ids": [world.margo.id],
        }
    ]
    one = start_notify(NOTIFY_TIMER_SECONDS=0.2)
    two = start_notify(NOTIFY_TIMER_SECONDS=0.2)
    mail_sink.wait_for(3)
    time.sleep(1.5)  # several more ticks of both
    one.stop()
    two.stop()
    start_notify(NOTIFY_TIMER_SECONDS=0.2)
    time.sleep(1.5)
    messages = mail_sink.messages()
    subjects = sorted((m["To"], m["Subject"].split(":")[0]) for m in messages)
    assert subjects == sorted(
        [
            (
                "margo@example.org",
                "The interim review due "
                + (datetime.now(UTC) + timedelta(days=3))
                .date()
                .strftime("%a %d %b %Y"),
            ),
            ("margo@example.org", "Reminder"),
            ("tom@example.org", "Reminder"),
        ]
    )
    assert (
        count(notify_db_url, Notification, Notification.kind == "session_reminder") == 2
    )
    margo = [m for m in messages if "Tom Smith" in body_text(m)]
    assert len(margo) == 1  # the milestone reminder names whose review it is


def test_user_identity_without_service_cannot_pose_as_auth(
    start_notify: Callable[..., Any],
    world: World,
    notify_rpc: Callable[..., Any],
) -> None:
    start_notify()
    impostor = Identity(user_id=world.tom.id, org_id=world.elm, service="auth")
    with notify_rpc(impostor) as notify:
        with refused("FORBIDDEN"):
            notify.send_invitations([])


def test_an_event_that_keeps_failing_is_set_aside_then_replayed(
    start_notify: Callable[..., Any],
    fakes: None,
    rabbit_config: dict[str, Any],
    world: World,
    mail_sink: MailSink,
    notify_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An answer of the wrong shape fails the handler every time: after a few
    tries the event is kept in failed_events and the queue moves on; replayed
    once the fault is fixed, it is handled."""
    from services.notify import cli
    from services.notify import service as notify_service
    from services.notify.models import FailedEvent

    monkeypatch.setattr(notify_service, "REQUEUE_PAUSE", 0.05)
    start_notify()
    publish(rabbit_config["AMQP_URI"], *user_events(world))
    wait_until(lambda: count(notify_db_url, Notification) == 5)
    context = booking_context(world, event_info(world), "expired")
    broken = {key: value for key, value in context.items() if key != "event"}
    ANSWERS["bookings"] = {context["booking"]["id"]: broken}
    envelope = booking_event("training.booking_expired", context)
    publish(rabbit_config["AMQP_URI"], envelope)

    wait_until(lambda: count(notify_db_url, FailedEvent) == 1)
    with service_session(notify_db_url) as session:
        [failed] = session.scalars(select(FailedEvent)).all()
        event_id, error, attempts = failed.event_id, failed.error, failed.attempts
        [event] = outbox(session, "notify.event_failed")
    assert error.startswith("KeyError")
    assert attempts == 5
    assert event["data"] == {
        "event_type": "training.booking_expired",
        "error": "KeyError",
    }

    ANSWERS["bookings"] = {context["booking"]["id"]: context}
    monkeypatch.setenv("NOTIFY_DATABASE_URL", notify_db_url)
    monkeypatch.setenv("AMQP_URI", rabbit_config["AMQP_URI"])
    assert cli.main(["replay", event_id]) == 0
    [message] = mail_sink.wait_for(1)
    assert message["Subject"] == "Your request for Phonics in depth expired"
    assert cli.list_failed(10)[0]["replayed_at"] is not None


def test_an_event_waits_while_training_is_down(
    start_notify: Callable[..., Any],
    container_factory: Any,
    rabbit_config: dict[str, Any],
    world: World,
    mail_sink: MailSink,
    notify_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Training not running is a fault that passes: the event goes back to
    the queue as often as needed, is never set aside, and is handled once
    training answers."""
    from services.notify import service as notify_service
    from services.notify.models import FailedEvent

    monkeypatch.setattr(notify_service, "REQUEUE_PAUSE", 0.05)
    start_notify()
    publish(rabbit_config["AMQP_URI"], *user_events(world))
    wait_until(lambda: count(notify_db_url, Notification) == 5)
    context = booking_context(world, event_info(world), "expired")
    ANSWERS["bookings"] = {context["booking"]["id"]: context}
    publish(
        rabbit_config["AMQP_URI"], booking_event("training.booking_expired", context)
    )
    time.sleep(2)  # many more tries than MAX_ATTEMPTS
    assert count(notify_db_url, FailedEvent) == 0
    assert mail_sink.messages() == []

    container_factory(FakeTrainingService, rabbit_config).start()
    [message] = mail_sink.wait_for(1)
    assert message["Subject"] == "Your request for Phonics in depth expired"


class FakeAuthService:
    """Answers list_organisations and list_users as auth does, and records
    who asked."""

    name = "auth"
    caller = CallerIdentity()

    @rpc
    @authenticated
    def list_organisations(self, caller: Identity) -> Any:
        ANSWERS.setdefault("auth_callers", []).append(caller.user_id)
        return {"items": ANSWERS["organisations"]}

    @rpc
    @authenticated
    def list_users(self, caller: Identity, offset: int = 0, limit: int = 50) -> Any:
        users = ANSWERS["users"]
        return {"items": users[offset : offset + limit], "total": len(users)}


def test_an_admin_copies_staff_created_before_notify_listened(
    start_notify: Callable[..., Any],
    container_factory: Any,
    rabbit_config: dict[str, Any],
    world: World,
    notify_rpc: Callable[..., Any],
    notify_db_url: str,
) -> None:
    from services.notify.models import Contact

    start_notify()
    container_factory(FakeAuthService, rabbit_config).start()
    ANSWERS["organisations"] = [
        {"id": world.elm, "kind": "school", "name": "Elm Primary"},
        {"id": world.yew, "kind": "school", "name": "Yew Academy"},
    ]
    ANSWERS["users"] = [
        {
            "id": person.id,
            "org_id": person.org_id,
            "username": person.given_name.lower(),
            "given_name": person.given_name,
            "family_name": "Smith",
            "email": person.email,
            "active": True,
            "line_manager_id": None,
            "roles": [],
        }
        for person in world.people.values()
    ]
    with notify_rpc(world.ada.identity) as notify:
        assert notify.sync_contacts() == {"organisations": 1, "users": 4}
    with notify_rpc(world.tom.identity) as notify:
        with refused("NOT_FOUND"):
            notify.sync_contacts()
    # Auth was asked as Ada, so it answered only what Ada may read.
    assert ANSWERS["auth_callers"] == [world.ada.id]
    with service_session(notify_db_url) as session:
        known = {c.user_id: c.email for c in session.scalars(select(Contact))}
    assert known == {
        p.id: p.email for p in world.people.values() if p.org_id == world.elm
    }
