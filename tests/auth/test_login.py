"""Logging in: one answer for every refusal, lockout and per-address throttling."""

from __future__ import annotations

import jwt
import pytest

from services.auth import accounts, events
from services.auth.exceptions import InvalidCredentials, LoginThrottled
from tests.service_support import outbox

from .conftest import PASSWORD, SECRET, T0


def login(db, username, password, ip="10.0.0.1", now=T0, user_agent="pytest"):
    return accounts.login(
        db,
        username=username,
        password=password,
        ip=ip,
        user_agent=user_agent,
        secret=SECRET,
        now=now,
    )


def refusal(db, username, password, **kwargs):
    with pytest.raises(InvalidCredentials) as caught:
        login(db, username, password, **kwargs)
    return caught.value.to_dict()


def test_a_correct_login_answers_tokens_and_the_user(db, world):
    """Login returns an access token with scopes, a refresh token and the user."""
    answer = login(db, "Tom", PASSWORD)
    claims = jwt.decode(
        answer["access_token"],
        SECRET,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
        issuer="cpd-auth",
    )
    assert claims["sub"] == world.elm_teacher.id
    assert claims["scopes"] == {"staff": [world.elm.id]}
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 900
    assert answer["user"]["username"] == "tom"
    assert "password_hash" not in answer["user"]
    assert len(answer["refresh_token"]) >= 40


def test_a_trust_role_covers_the_trust_and_all_its_schools(db, world):
    """The trust admin's scope lists the trust, Elm and Ash but not Yew."""
    answer = login(db, "tess", PASSWORD)
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    expected = sorted([world.trust.id, world.elm.id, world.ash.id])
    assert claims["scopes"] == {"trust_admin": expected}


def test_unknown_user_wrong_password_inactive_and_locked_get_the_same_error(db, world):
    """All four refusals are the same INVALID_CREDENTIALS; only events differ."""
    world.ash_teacher.active = False
    world.elm_admin.locked_until = T0.replace(hour=10)
    db.commit()
    answers = [
        refusal(db, "nobody", PASSWORD),
        refusal(db, "tom", "not the password at all"),
        refusal(db, "amy", PASSWORD),
        refusal(db, "eve", PASSWORD),
    ]
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["code"] == "INVALID_CREDENTIALS"
    assert answers[0]["status"] == 401
    reasons = [e["data"]["reason_code"] for e in outbox(db, events.LOGIN_FAILED)]
    assert reasons == ["unknown_user", "bad_password", "inactive", "account_locked"]


def test_login_events_carry_ip_and_user_agent_but_never_the_password(db, world):
    """Success and failure events name the address and agent, not the secret."""
    refusal(db, "tom", "a wrong password value", user_agent="Firefox")
    login(db, "tom", PASSWORD, user_agent="Firefox")
    failed = outbox(db, events.LOGIN_FAILED)[0]
    succeeded = outbox(db, events.LOGIN_SUCCEEDED)[0]
    for event in (failed, succeeded):
        assert (
            event["actor"]
            == {
                "user_id": world.elm_teacher.id,
                "ip": "10.0.0.1",
                "user_agent": "Firefox",
                "service": None,
            }
            or event["actor"]["ip"] == "10.0.0.1"
        )
        assert event["actor"]["user_agent"] == "Firefox"
    everything = repr(outbox(db))
    assert PASSWORD not in everything
    assert "a wrong password value" not in everything


def test_ten_failures_in_a_row_lock_the_account_for_15_minutes(db, world):
    """The tenth failure locks; the right password is then refused until 15 min."""
    for attempt in range(10):
        refusal(db, "tom", f"wrong password {attempt:02d}", ip=f"10.1.0.{attempt}")
    assert len(outbox(db, events.ACCOUNT_LOCKED)) == 1

    refusal(db, "tom", PASSWORD, now=T0.replace(minute=14))
    assert (
        outbox(db, events.LOGIN_FAILED)[-1]["data"]["reason_code"] == "account_locked"
    )
    assert login(db, "tom", PASSWORD, now=T0.replace(minute=16))["user"]


def test_a_success_resets_the_failure_count(db, world):
    """Nine failures, a success, then nine more do not lock the account."""
    for attempt in range(9):
        refusal(db, "tom", f"wrong password {attempt:02d}", ip=f"10.2.0.{attempt}")
    login(db, "tom", PASSWORD)
    for attempt in range(9):
        refusal(db, "tom", f"wrong password {attempt:02d}", ip=f"10.3.0.{attempt}")
    assert outbox(db, events.ACCOUNT_LOCKED) == []


def test_an_address_with_more_than_20_failures_a_minute_is_throttled(db, world):
    """After 20 failures from one IP within a minute the next try gets 429."""
    for attempt in range(20):
        refusal(db, f"user{attempt}", PASSWORD, ip="192.0.2.7")
    with pytest.raises(LoginThrottled) as caught:
        login(db, "tom", PASSWORD, ip="192.0.2.7")
    assert caught.value.status == 429
    assert caught.value.code == "LOGIN_THROTTLED"
    throttled = outbox(db, events.LOGIN_THROTTLED)
    assert throttled[0]["subject"] == {"type": "ip", "id": "192.0.2.7"}

    assert login(db, "tom", PASSWORD, ip="192.0.2.8")["user"]
    assert login(db, "tom", PASSWORD, ip="192.0.2.7", now=T0.replace(minute=1))


def test_a_user_without_a_password_cannot_log_in(db, world):
    """A user made without a password is refused until they reset it."""
    world.elm_teacher.password_hash = None
    db.commit()
    refusal(db, "tom", PASSWORD)


def test_a_hash_made_at_a_lower_cost_is_upgraded_at_login(db, world, monkeypatch):
    """Raising BCRYPT_ROUNDS re-hashes a password on its next login."""
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    login(db, "tom", PASSWORD)
    db.refresh(world.elm_teacher)
    assert world.elm_teacher.password_hash.startswith("$2b$05$")
