"""Who is calling: tokens, cookies, CSRF, revocation and the identity that
travels with every RPC."""

from __future__ import annotations

import time
import uuid
from typing import Any

from gateway_support import (
    PASSWORD,
    PRE_REVOKED,
    SCHOOL,
    USER_ID,
    calls_named,
    expired_token,
    make_token,
)
from kombu import Connection
from structlog.testing import capture_logs

from plumbing import topology
from plumbing.envelope import make_event


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_login_passes_ip_and_user_agent_and_sets_secure_cookies(client):
    """Login sends ip and user agent to auth and sets HttpOnly Secure Strict cookies."""
    response = client.post(
        "/api/v1/auth/login",
        json={"username": "ada", "password": PASSWORD},
        headers={"User-Agent": "test-browser/1.0"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] and body["refresh_token"]
    args, _ = calls_named("login")[0]
    assert args[2] == "127.0.0.1" and args[3] == "test-browser/1.0"
    cookies = response.raw.headers.getlist("Set-Cookie")
    access = next(c for c in cookies if c.startswith("cpd_access="))
    refresh = next(c for c in cookies if c.startswith("cpd_refresh="))
    for cookie in (access, refresh):
        assert "HttpOnly" in cookie and "Secure" in cookie
        assert "SameSite=Strict" in cookie
    assert "Path=/api/v1/auth" in refresh
    assert "Path=/;" in access or access.endswith("Path=/")


def test_cookie_mode_keeps_tokens_out_of_the_body(client):
    """Login with session=cookie answers without tokens in the body."""
    response = client.post(
        "/api/v1/auth/login",
        json={"username": "ada", "password": PASSWORD, "session": "cookie"},
    )
    assert response.status_code == 200
    assert "access_token" not in response.json()
    assert "refresh_token" not in response.json()
    assert "cpd_access=" in response.headers["Set-Cookie"]


def test_wrong_password_is_a_401_problem(client):
    """Auth's INVALID_CREDENTIALS comes back as a 401 problem document."""
    response = client.post(
        "/api/v1/auth/login", json={"username": "ada", "password": "wrong"}
    )
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "INVALID_CREDENTIALS"


def test_bearer_token_authenticates(client):
    """A valid bearer token reaches auth with the caller's identity."""
    response = client.get("/api/v1/me", headers=bearer(make_token()))
    assert response.status_code == 200
    assert response.json()["id"] == USER_ID


def test_cookie_authenticates_reads(client):
    """The access cookie alone authenticates a GET."""
    response = client.get(
        "/api/v1/me", headers={"Cookie": f"cpd_access={make_token()}"}
    )
    assert response.status_code == 200


def test_cookie_change_without_csrf_header_is_refused(client):
    """A cookie-authenticated POST without X-Requested-With is 403, sent nowhere."""
    cookie = {"Cookie": f"cpd_access={make_token()}"}
    response = client.post("/api/v1/users/user-1/deactivate", headers=cookie)
    assert response.status_code == 403
    assert response.json()["code"] == "CSRF_CHECK_FAILED"
    assert not calls_named("deactivate_user")
    response = client.post(
        "/api/v1/users/user-1/deactivate",
        headers=dict(cookie, **{"X-Requested-With": "XMLHttpRequest"}),
    )
    assert response.status_code == 200


def test_refresh_with_cookie_needs_csrf_header_and_rotates_cookies(client):
    """Refresh from the refresh cookie needs the CSRF header and sets new cookies."""
    cookie = {"Cookie": "cpd_refresh=refresh-abc"}
    assert client.post("/api/v1/auth/refresh", headers=cookie).status_code == 403
    response = client.post(
        "/api/v1/auth/refresh",
        headers=dict(cookie, **{"X-Requested-With": "fetch"}),
        json={"session": "cookie"},
    )
    assert response.status_code == 200
    assert "refresh_token" not in response.json()
    assert "cpd_refresh=refresh-" in response.headers["Set-Cookie"]


def test_missing_expired_and_tampered_tokens_are_401(client):
    """No token, an expired one, a tampered one and a wrong scheme are all 401."""
    token = make_token()
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    cases = [
        ({}, "UNAUTHENTICATED"),
        (bearer(expired_token()), "TOKEN_EXPIRED"),
        (bearer(tampered), "TOKEN_INVALID"),
        (bearer(make_token(secret="another-secret-" + "y" * 32)), "TOKEN_INVALID"),
        ({"Authorization": f"Basic {token}"}, "TOKEN_INVALID"),
        ({"Cookie": "cpd_access=not-a-jwt"}, "TOKEN_INVALID"),
    ]
    for headers, code in cases:
        response = client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["code"] == code
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert not calls_named("get_current_user")


def test_identity_and_request_id_reach_the_service(client):
    """The service sees the request id and the identity the gateway verified."""
    session_id = uuid.uuid4().hex
    response = client.get(
        "/api/v1/me",
        headers={
            **bearer(make_token(session_id)),
            "X-Request-ID": "trace-me.42",
            "User-Agent": "ua/2",
        },
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "trace-me.42"
    _, context = calls_named("get_current_user")[-1]
    assert context["request_id"] == "trace-me.42"
    identity = context["identity"]
    assert identity["user_id"] == USER_ID and identity["org_id"] == SCHOOL
    assert identity["session_id"] == session_id
    assert identity["scopes"]["school_admin"] == [SCHOOL]
    assert identity["ip"] == "127.0.0.1" and identity["user_agent"] == "ua/2"


def test_forwarded_for_is_ignored_without_trusted_proxies(client):
    """X-Forwarded-For does not change the ip unless proxies are trusted."""
    client.get(
        "/api/v1/me",
        headers={**bearer(make_token()), "X-Forwarded-For": "203.0.113.9"},
    )
    _, context = calls_named("get_current_user")[-1]
    assert context["identity"]["ip"] == "127.0.0.1"


def test_forwarded_for_is_used_behind_a_trusted_proxy(start_platform):
    """With TRUSTED_PROXY_COUNT=1 the last X-Forwarded-For hop is the client."""
    from gateway_support import FakeAuthService

    client = start_platform(FakeAuthService, TRUSTED_PROXY_COUNT=1)
    client.get(
        "/api/v1/me",
        headers={**bearer(make_token()), "X-Forwarded-For": "10.0.0.1, 203.0.113.9"},
    )
    _, context = calls_named("get_current_user")[-1]
    assert context["identity"]["ip"] == "203.0.113.9"


def publish_auth_event(amqp_uri: str, event_type: str, data: dict[str, Any]) -> None:
    envelope = make_event(
        event_type,
        subject_type="user",
        subject_id=USER_ID,
        org_id=SCHOOL,
        data=data,
    )
    exchange = topology.exchange("auth")
    with Connection(amqp_uri) as conn:
        producer = conn.Producer(serializer="json")
        producer.publish(
            envelope,
            exchange=exchange,
            routing_key=event_type.split(".", 1)[1],
            declare=[exchange],
        )


def wait_for_status(client, headers, status, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if client.get("/api/v1/me", headers=headers).status_code == status:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"no {status} within {within}s")


def test_revoked_sessions_are_refused_within_a_second(client, amqp_uri):
    """A sessions_revoked event makes the gateway refuse that session in < 1 s."""
    session_id = uuid.uuid4().hex
    other = bearer(make_token())
    headers = bearer(make_token(session_id))
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    publish_auth_event(
        amqp_uri,
        "auth.sessions_revoked",
        {"session_ids": [session_id], "reason_code": "revoked"},
    )
    wait_for_status(client, headers, 401, within=1.0)
    response = client.get("/api/v1/me", headers=headers)
    assert response.json()["code"] == "SESSION_REVOKED"
    assert client.get("/api/v1/me", headers=other).status_code == 200


def test_logged_out_event_revokes_the_session(client, amqp_uri):
    """An auth.logged_out event refuses that one session at once."""
    session_id = uuid.uuid4().hex
    headers = bearer(make_token(session_id))
    publish_auth_event(amqp_uri, "auth.logged_out", {"session_id": session_id})
    wait_for_status(client, headers, 401, within=1.0)


def test_logout_clears_cookies_and_refuses_the_token_here(client):
    """Logout calls auth, clears both cookies and refuses the token at once."""
    headers = bearer(make_token())
    response = client.post("/api/v1/auth/logout", headers=headers)
    assert response.status_code == 204
    cookies = response.raw.headers.getlist("Set-Cookie")
    assert any(c.startswith("cpd_access=;") and "Max-Age=0" in c for c in cookies)
    assert any(c.startswith("cpd_refresh=;") and "Max-Age=0" in c for c in cookies)
    assert calls_named("logout")
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_cache_is_warmed_from_auth_with_the_gateway_identity(client):
    """At start the gateway asks auth for revoked sessions as service:gateway."""
    headers = bearer(make_token(PRE_REVOKED))
    wait_for_status(client, headers, 401, within=5.0)
    args, context = calls_named("list_revoked_sessions")[-1]
    assert context["identity"]["user_id"] == "service:gateway"
    assert context["identity"]["service"] == "gateway"


def test_out_of_scope_organisation_is_404_and_an_authz_denied_event(
    client, get_message_from_queue
):
    """Asking for an organisation outside every scope is 404 plus authz.denied."""
    response = client.get(
        "/api/v1/organisations/org-elsewhere",
        headers={**bearer(make_token()), "X-Request-ID": "deny-1"},
    )
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert not calls_named("get_organisation")
    message = get_message_from_queue(topology.AUDIT_QUEUE, timeout=5)
    assert message.payload["type"] == "authz.denied"
    assert message.payload["subject"] == {"type": "organisation", "id": "org-elsewhere"}
    assert message.payload["data"]["action"] == "get_organisation"
    assert message.payload["actor"]["user_id"] == USER_ID
    assert message.payload["request_id"] == "deny-1"


def test_access_log_has_one_line_per_request_and_no_secrets(client):
    """Each request logs one access line; passwords, tokens and cookies never."""
    with capture_logs() as logs:
        login = client.post(
            "/api/v1/auth/login",
            json={"username": "ada", "password": PASSWORD},
            headers={"X-Request-ID": "log-check-1"},
        )
        tokens = login.json()
        client.get("/api/v1/me", headers=bearer(tokens["access_token"]))
        client.post(
            "/api/v1/auth/refresh",
            headers={
                "Cookie": f"cpd_refresh={tokens['refresh_token']}",
                "X-Requested-With": "x",
            },
        )
        client.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": "another secret!!"},
            headers=bearer(tokens["access_token"]),
        )
    access = [entry for entry in logs if entry["event"] == "http_request"]
    assert len(access) == 4
    assert access[0]["request_id"] == "log-check-1" and access[0]["status"] == 200
    assert access[1]["user_id"] == USER_ID and access[1]["path"] == "/api/v1/me"
    assert {"method", "path", "status", "duration_ms"} <= set(access[0])
    text = repr(logs)
    for secret in (
        PASSWORD,
        "another secret!!",
        tokens["access_token"],
        tokens["refresh_token"],
    ):
        assert secret not in text
