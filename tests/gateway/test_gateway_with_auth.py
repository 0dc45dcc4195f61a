"""The gateway in front of the real auth service and its PostgreSQL database."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from gateway.service import GatewayService
from plumbing.database import ServiceSession, make_engine

PASSWORD = "correct horse battery staple"


@pytest.fixture
def seeded_auth(
    make_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> dict[str, Any]:
    """An auth database with a school, its admin and a school elsewhere."""
    from services.auth import organisations, passwords, users

    monkeypatch.setenv("ALLOW_WEAK_BCRYPT", "1")
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    url = make_database("auth")
    engine = make_engine(url)
    db = sessionmaker(bind=engine, class_=ServiceSession, expire_on_commit=False)()
    now = datetime.now(UTC)
    try:
        school = organisations.create_organisation(
            db, {"kind": "school", "name": "Elm Primary"}, now=now
        )
        other = organisations.create_organisation(
            db, {"kind": "school", "name": "Yew School"}, now=now
        )
        admin = users.insert_user(
            db,
            {
                "username": "eve",
                "given_name": "Eve",
                "family_name": "Admin",
                "email": "eve@elm.example",
                "org_id": school.id,
                "line_manager_id": None,
            },
            [{"role": "school_admin", "org_id": school.id}],
            password_hash=passwords.hash_password(PASSWORD),
            now=now,
        )
        db.commit()
        seeded = {"url": url, "school": school.id, "other": other.id, "admin": admin.id}
    finally:
        db.close()
        engine.dispose()
    return seeded


def test_login_read_and_revoke_through_the_real_auth_service(
    start_platform, seeded_auth, tmp_path
):
    """Login, reads, scope denial and session revocation work end to end."""
    from services.auth.service import AuthService

    client = start_platform(
        AuthService,
        AUTH_DATABASE_URL=seeded_auth["url"],
        DATA_DIR=str(tmp_path / "data"),
    )
    assert client.get("/ready").status_code == 200

    login = client.post(
        "/api/v1/auth/login",
        json={"username": "eve", "password": PASSWORD},
        headers={"X-Request-ID": "real-login-1"},
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200 and me.json()["id"] == seeded_auth["admin"]
    page = client.get(
        f"/api/v1/users?org_id={seeded_auth['school']}&limit=100", headers=headers
    )
    assert page.status_code == 200 and page.json()["total"] >= 1
    assert client.get("/api/v1/roles", headers=headers).status_code == 200
    elsewhere = client.get(
        f"/api/v1/organisations/{seeded_auth['other']}", headers=headers
    )
    assert elsewhere.status_code == 404
    bad = client.post(
        "/api/v1/auth/login", json={"username": "eve", "password": "wrong password!"}
    )
    assert bad.status_code == 401 and bad.json()["code"] == "INVALID_CREDENTIALS"

    revoked = client.post(
        f"/api/v1/users/{seeded_auth['admin']}/revoke-sessions", headers=headers
    )
    assert revoked.status_code == 200, revoked.text
    deadline = time.monotonic() + 1.0
    status = 200
    while time.monotonic() < deadline and status != 401:
        status = client.get("/api/v1/me", headers=headers).status_code
        time.sleep(0.02)
    assert status == 401


def test_a_new_user_is_invited_and_the_answer_says_whether_it_went(
    start_platform, seeded_auth, tmp_path
):
    """With no notify running the user is created all the same, the answer
    says the invitation did not go, and an admin can send it again."""
    from services.auth.service import AuthService

    client = start_platform(
        AuthService,
        AUTH_DATABASE_URL=seeded_auth["url"],
        DATA_DIR=str(tmp_path / "data"),
    )
    login = client.post(
        "/api/v1/auth/login", json={"username": "eve", "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    created = client.post(
        "/api/v1/users",
        json={
            "username": "nia",
            "given_name": "Nia",
            "family_name": "Jones",
            "email": "nia@elm.example",
            "org_id": seeded_auth["school"],
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["invitation_sent"] is False
    again = client.post(
        f"/api/v1/users/{created.json()['id']}/invitation", headers=headers
    )
    assert again.status_code == 200, again.text
    assert again.json()["invitation_sent"] is False
    assert again.json()["expires_at"]
    has_password = client.post(
        f"/api/v1/users/{seeded_auth['admin']}/invitation", headers=headers
    )
    assert has_password.status_code == 422
    assert has_password.json()["code"] == "PASSWORD_ALREADY_SET"


def test_gateway_warms_its_cache_from_the_real_auth_service(
    container_factory, gateway_config, seeded_auth, tmp_path
):
    """auth accepts the gateway identity for list_revoked_sessions."""
    from services.auth.service import AuthService

    config = dict(
        gateway_config,
        AUTH_DATABASE_URL=seeded_auth["url"],
        DATA_DIR=str(tmp_path / "data"),
    )
    container_factory(AuthService, config).start()
    gateway = container_factory(GatewayService, config)
    gateway.start()
    store = next(d for d in gateway.dependencies if d.attr_name == "revocations").store
    deadline = time.monotonic() + 5
    while not store.warmed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.warmed
