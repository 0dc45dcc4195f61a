"""The auth service in a nameko container, over real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import inspect
import json
import time
from datetime import UTC, datetime, timedelta

import eventlet
import pytest
from kombu import Connection
from nameko.exceptions import RemoteError
from nameko.rpc import Rpc
from nameko.testing.services import replace_dependencies
from sqlalchemy import select
from structlog.testing import capture_logs

from plumbing import topology
from plumbing.errors import from_remote
from plumbing.identity import Identity
from plumbing.outbox import OUTBOX
from plumbing.tokens import verify_access_token
from services.auth import events
from services.auth.service import NOTIFY_TIMEOUT, AuthService
from tests.service_support import outbox

from .conftest import PASSWORD, SECRET, T0, Clock, NotifyStub, identity_of


def error_of(caught):
    error = from_remote(caught.value.value)
    assert error is not None, caught.value
    return error


def identity_from(answer, **extra):
    claims = verify_access_token(SECRET, answer["access_token"])
    return Identity(
        user_id=claims["sub"],
        org_id=claims["org"],
        scopes=claims["scopes"],
        session_id=claims["sid"],
        **extra,
    )


def rpc_methods():
    for name, method in inspect.getmembers(AuthService, inspect.isfunction):
        entrypoints = getattr(method, "nameko_entrypoints", set())
        if any(isinstance(entrypoint, Rpc) for entrypoint in entrypoints):
            yield name, method


def test_every_rpc_method_is_marked_authenticated_or_anonymous():
    """Each @rpc method carries __cpd_access__; only the documented few are open."""
    marks = {name: getattr(m, "__cpd_access__", None) for name, m in rpc_methods()}
    assert len(marks) == 21
    assert set(marks.values()) == {"authenticated", "anonymous"}
    anonymous = {name for name, mark in marks.items() if mark == "anonymous"}
    assert anonymous == {
        "ping",
        "login",
        "refresh",
        "request_password_reset",
        "reset_password",
    }


def test_an_rpc_without_identity_is_refused(auth_container, auth_rpc, world):
    """get_current_user with no identity in the context is UNAUTHENTICATED."""
    auth_container.start()
    with auth_rpc() as auth:
        assert auth.ping()["ok"] is True
        with pytest.raises(RemoteError) as caught:
            auth.get_current_user()
    assert error_of(caught).code == "UNAUTHENTICATED"


def test_login_logout_and_the_event_reaches_rabbitmq(
    auth_container, auth_rpc, auth_config, world, db
):
    """Login over RPC gives a working token; logout's event is published."""
    auth_container.start()
    with auth_rpc() as auth:
        answer = auth.login("tom", PASSWORD, "10.9.0.1", "pytest")
    caller = identity_from(answer, ip="10.9.0.1", user_agent="pytest")
    with auth_rpc(caller) as auth:
        assert auth.get_current_user()["scopes"] == {"staff": [world.elm.id]}
        assert auth.logout() == {}

    logged_out = outbox(db, events.LOGGED_OUT)[0]
    assert logged_out["actor"]["user_id"] == world.elm_teacher.id
    assert logged_out["actor"]["ip"] == "10.9.0.1"
    assert logged_out["data"] == {"session_id": caller.session_id}
    assert _published(auth_config, events.LOGGED_OUT)


def _published(config, event_type, timeout=10.0):
    """Wait for an event of the type on the audit queue of this test's vhost."""
    deadline = time.monotonic() + timeout
    with Connection(config["AMQP_URI"]) as conn:
        queue = topology.audit_queue()(conn.default_channel)
        while time.monotonic() < deadline:
            message = queue.get(no_ack=True)
            if message is None:
                eventlet.sleep(0.1)
                continue
            payload = message.payload
            if isinstance(payload, str | bytes):
                payload = json.loads(payload)
            if payload["type"] == event_type:
                return payload
    return None


def test_a_wrong_password_over_rpc_is_invalid_credentials(
    auth_container, auth_rpc, world
):
    """The error crosses the wire with its code and status."""
    auth_container.start()
    with auth_rpc() as auth, pytest.raises(RemoteError) as caught:
        auth.login("tom", "definitely not it", "10.9.0.2", "pytest")
    error = error_of(caught)
    assert (error.code, error.status) == ("INVALID_CREDENTIALS", 401)


def test_another_schools_user_is_not_found_and_denied_over_rpc(
    auth_container, auth_rpc, world, db
):
    """Elm's admin asking for Ash's teacher: NOT_FOUND and an authz.denied row."""
    auth_container.start()
    with auth_rpc(identity_of(db, world.elm_admin)) as auth:
        with pytest.raises(RemoteError) as caught:
            auth.get_user(world.ash_teacher.id)
        assert auth.get_user(world.elm_teacher.id)["username"] == "tom"
    assert error_of(caught).code == "NOT_FOUND"
    denied = outbox(db, events.AUTHZ_DENIED)
    assert denied[0]["actor"]["user_id"] == world.elm_admin.id


def test_a_trust_admin_creates_and_imports_users_over_rpc(
    auth_container, auth_rpc, world, db
):
    """create_user and import_users work for the trust admin at Ash."""
    auth_container.start()
    data = {
        "username": "newbie",
        "given_name": "Nina",
        "family_name": "Newman",
        "email": "nina@example.org",
        "org_id": world.ash.id,
    }
    csv_text = (
        "username,given_name,family_name,email,roles,line_manager_username\n"
        "ola,Ola,Olsen,ola@example.org,staff,newbie\n"
    )
    with auth_rpc(identity_of(db, world.trust_admin)) as auth:
        assert auth.create_user(data)["org_id"] == world.ash.id
        assert auth.import_users(world.ash.id, csv_text)["imported"] == 1
        listed = auth.list_users(org_id=world.ash.id, limit=10)
        assert listed["total"] == 4
        assert len(auth.list_roles()["items"]) == 6
    created = outbox(db, events.USER_CREATED)
    assert created[-1]["actor"]["user_id"] == world.trust_admin.id


def test_a_reset_code_is_emailed_through_notify_as_the_auth_service(
    auth_container, auth_rpc, fake_notify, world, db
):
    """notify.send_password_reset gets the code on auth's own account; it works."""
    auth_container.start()
    with auth_rpc() as auth:
        assert auth.request_password_reset("tom", "10.9.0.3", "pytest") == {}
        assert auth.request_password_reset("nobody", "10.9.0.3", "pytest") == {}
    [sent] = fake_notify.resets
    assert sent["recipient"]["user_id"] == world.elm_teacher.id
    assert sent["recipient"]["email"] == "tom@example.org"
    [caller] = fake_notify.callers
    assert (caller.service, caller.user_id, caller.scopes) == (
        "auth",
        "service:auth",
        {},
    )
    with auth_rpc() as auth:
        auth.reset_password(sent["code"], "my new long passphrase", "10.9.0.3", "ua")
        assert auth.login("tom", "my new long passphrase", "10.9.0.3", "pytest")
    assert sent["code"] not in repr(outbox(db))


def test_notify_down_still_answers_empty_and_keeps_the_code_out_of_logs(
    auth_container, auth_rpc, world, db
):
    """With no notify running, the answer is {} at once and a warning names
    the user, not the code."""
    auth_container.start()
    with capture_logs() as logs, auth_rpc() as auth:
        started = time.monotonic()
        assert auth.request_password_reset("tom", "10.9.0.3", "pytest") == {}
        waited = time.monotonic() - started
    assert waited < NOTIFY_TIMEOUT
    [warning] = [line for line in logs if line["log_level"] == "warning"]
    assert warning["event"] == "password_reset_code_undelivered"
    assert warning["user_id"] == world.elm_teacher.id
    assert warning["error"] == "SERVICE_UNAVAILABLE"
    assert not any("code" in line for line in logs)
    requested = outbox(db, events.PASSWORD_RESET_REQUESTED)
    assert set(requested[0]["data"]) == {"expires_at"}


def test_notify_can_be_replaced_in_a_container(auth_container, auth_rpc, world):
    """replace_dependencies swaps the notify client for a stub a test observes."""
    stub = NotifyStub()
    replace_dependencies(auth_container, notify_rpc=stub)
    auth_container.start()
    with auth_rpc() as auth:
        auth.request_password_reset("tom@example.org", None, None)
    assert stub.resets[0]["recipient"]["user_id"] == world.elm_teacher.id


def test_an_idle_session_cannot_refresh_with_an_injected_clock(
    auth_container, auth_rpc, world
):
    """With the clock moved 31 minutes on, refresh is INVALID_REFRESH_TOKEN."""
    clock = Clock(T0)
    replace_dependencies(auth_container, now=clock)
    auth_container.start()
    with auth_rpc() as auth:
        answer = auth.login("tom", PASSWORD, "10.9.0.4", "pytest")
        clock.advance(minutes=29)
        answer = auth.refresh(answer["refresh_token"], "10.9.0.4", "pytest")
        clock.advance(minutes=31)
        with pytest.raises(RemoteError) as caught:
            auth.refresh(answer["refresh_token"], "10.9.0.4", "pytest")
    assert error_of(caught).code == "INVALID_REFRESH_TOKEN"


def test_the_gateway_lists_revoked_sessions_over_rpc(
    auth_container, auth_rpc, world, db
):
    """Sessions an admin revoked show up for the gateway identity."""
    auth_container.start()
    with auth_rpc() as auth:
        answer = auth.login("tom", PASSWORD, "10.9.0.5", "pytest")
    session_id = identity_from(answer).session_id
    with auth_rpc(identity_of(db, world.elm_admin)) as auth:
        assert auth.revoke_sessions(world.elm_teacher.id)["session_ids"] == [session_id]
    gateway = Identity(user_id="gateway", org_id="-", service="gateway")
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    with auth_rpc(gateway) as auth:
        assert session_id in auth.list_revoked_sessions(since)["session_ids"]


def test_a_slow_hash_does_not_stall_other_requests(
    auth_container, auth_rpc, world, monkeypatch
):
    """While a cost-12 login hashes, ping still answers promptly."""
    monkeypatch.setenv("BCRYPT_ROUNDS", "13")
    auth_container.start()
    with auth_rpc() as slow, auth_rpc() as fast:
        fast.ping()
        login = eventlet.spawn(slow.login, "nobody", PASSWORD, None, None)
        eventlet.sleep(0.05)
        started = time.monotonic()
        fast.ping()
        waited = time.monotonic() - started
        with pytest.raises(RemoteError):
            login.wait()
    assert waited < 0.3


def test_outbox_rows_are_marked_sent_by_the_relay(auth_container, auth_rpc, world, db):
    """The container's relay publishes the login event and marks it sent."""
    auth_container.start()
    with auth_rpc() as auth:
        auth.login("tom", PASSWORD, "10.9.0.6", "pytest")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        db.rollback()
        pending = db.scalars(select(OUTBOX.c.type).where(OUTBOX.c.sent_at.is_(None)))
        if not list(pending):
            break
        eventlet.sleep(0.1)
    assert list(pending) == []


def test_passwords_and_reset_codes_never_reach_a_log_line(
    auth_container, auth_rpc, fake_notify, world
):
    """Logs written during logins and a reset hold no password and no code."""
    auth_container.start()
    with capture_logs() as logs, auth_rpc() as auth:
        with pytest.raises(RemoteError):
            auth.login("tom", "a wrong but secret guess", "10.9.0.7", "pytest")
        auth.login("tom", PASSWORD, "10.9.0.7", "pytest")
        auth.request_password_reset("tom", "10.9.0.7", "pytest")
        auth.reset_password(fake_notify.code, "the newest passphrase", "10.9.0.7", "ua")
    written = repr(logs)
    assert {"login_failed", "login_succeeded"} <= {line["event"] for line in logs}
    for secret in (PASSWORD, "a wrong but secret guess", fake_notify.code):
        assert secret not in written
    assert "the newest passphrase" not in written
