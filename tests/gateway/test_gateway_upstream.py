"""Health, readiness and services that are away or slow."""

from __future__ import annotations

import time

from gateway_support import FakeAuthService, SilentAuthService, make_token

AUTH = {"Authorization": f"Bearer {make_token()}"}


def test_health_answers_without_any_service(start_platform):
    """/health is 200 while the process lives, even with no service running."""
    client = start_platform()
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_is_503_without_auth_naming_it(start_platform):
    """/ready is 503 and names auth when auth is not running."""
    client = start_platform()
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "NOT_READY"
    assert body["missing"] == ["auth"]
    assert body["checks"]["rabbitmq"] == "ok"


def test_ready_is_200_with_auth(client):
    """/ready is 200 when RabbitMQ and auth answer."""
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"rabbitmq": "ok", "auth": "ok"}


def test_ready_is_503_when_auth_does_not_answer_ping(start_platform):
    """/ready gives up on a silent service within its short timeout."""
    client = start_platform(SilentAuthService)
    started = time.monotonic()
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["missing"] == ["auth"]
    assert time.monotonic() - started < 4


def test_no_service_running_is_503(start_platform):
    """A call to a service with no running instance is 503 at once."""
    client = start_platform()
    response = client.get("/api/v1/me", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"


def test_service_that_never_answers_is_504_within_the_timeout(start_platform):
    """A service that never answers gives 504 once RPC_TIMEOUT has passed."""
    client = start_platform(SilentAuthService, RPC_TIMEOUT=1)
    started = time.monotonic()
    response = client.get("/api/v1/me", headers=AUTH)
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["code"] == "SERVICE_TIMEOUT"
    assert 0.9 < elapsed < 3


def test_slow_call_does_not_block_other_requests(start_platform):
    """While one call waits on a slow service, others are answered."""
    import eventlet

    client = start_platform(FakeAuthService, RPC_TIMEOUT=2)
    slow = eventlet.spawn(client.get, "/api/v1/users/slow", headers=AUTH)
    eventlet.sleep(0.1)
    started = time.monotonic()
    assert client.get("/api/v1/roles", headers=AUTH).status_code == 200
    assert time.monotonic() - started < 1
    assert slow.wait().status_code == 504
