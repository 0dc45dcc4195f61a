"""Password reset: a single-use code, valid 30 minutes, seen only by its owner
(through the notify service, stood in for here by the ``notify`` stub)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from services.auth import accounts, events, sessions
from services.auth.exceptions import (
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidResetCode,
    ResetThrottled,
    WeakPassword,
)
from services.auth.models import ResetRequest
from tests.service_support import outbox

from .conftest import PASSWORD, SECRET, T0

NEW_PASSWORD = "a fresh and long passphrase"


def request(db, login, notify, now=T0, ip="10.0.0.9"):
    return accounts.request_password_reset(
        db, login=login, ip=ip, user_agent="pytest", now=now, notify=notify
    )


def reset(db, code, password=NEW_PASSWORD, now=T0):
    return accounts.reset_password(
        db, code=code, new_password=password, ip="10.0.0.9", user_agent="ua", now=now
    )


def login(db, password, now=T0):
    return accounts.login(
        db,
        username="tom",
        password=password,
        ip="10.0.0.9",
        user_agent="pytest",
        secret=SECRET,
        now=now,
    )


def test_a_reset_code_sets_a_new_password_and_ends_every_session(db, world, notify):
    """The delivered code sets the password; old sessions are revoked."""
    old = login(db, PASSWORD)
    assert request(db, "tom", notify) == {}
    assert reset(db, notify.code, now=T0 + timedelta(minutes=5)) == {}

    assert login(db, NEW_PASSWORD, now=T0 + timedelta(minutes=6))["user"]
    with pytest.raises(InvalidCredentials):
        login(db, PASSWORD, now=T0 + timedelta(minutes=6))
    revoked = outbox(db, events.SESSIONS_REVOKED)[0]["data"]
    assert revoked["reason_code"] == "password_reset"
    assert len(revoked["session_ids"]) == 1
    assert outbox(db, events.PASSWORD_RESET_COMPLETED)
    with pytest.raises(InvalidRefreshToken):
        sessions.refresh(
            db,
            refresh_token=old["refresh_token"],
            ip=None,
            user_agent=None,
            secret=SECRET,
            now=T0 + timedelta(minutes=7),
        )


def test_a_reset_code_works_only_once(db, world, notify):
    """Using the same code twice is refused the second time."""
    request(db, "tom", notify)
    reset(db, notify.code)
    with pytest.raises(InvalidResetCode) as caught:
        reset(db, notify.code, password="yet another long passphrase")
    assert (caught.value.code, caught.value.status) == ("INVALID_RESET_CODE", 400)


def test_a_reset_code_expires_after_30_minutes(db, world, notify):
    """At 30 minutes the code no longer works."""
    request(db, "tom", notify)
    with pytest.raises(InvalidResetCode):
        reset(db, notify.code, now=T0 + timedelta(minutes=30))


def test_a_newer_code_replaces_an_older_one(db, world, notify):
    """Asking again makes the earlier code useless."""
    request(db, "tom", notify)
    first = notify.code
    request(db, "tom@example.org", notify)
    with pytest.raises(InvalidResetCode):
        reset(db, first)
    reset(db, notify.code)


def test_a_weak_new_password_keeps_the_code_usable(db, world, notify):
    """A rejected password does not spend the code."""
    request(db, "tom", notify)
    with pytest.raises(WeakPassword):
        reset(db, notify.code, password="short")
    reset(db, notify.code)


def test_unknown_users_get_the_same_empty_answer_and_nothing_is_sent(db, world, notify):
    """request_password_reset answers {} whether or not the user exists."""
    assert request(db, "nobody-here", notify) == {}
    assert notify.resets == []
    assert outbox(db, events.PASSWORD_RESET_REQUESTED) == []


def test_the_code_never_reaches_an_event(db, world, notify):
    """No outbox payload contains the code, in any spelling."""
    request(db, "tom", notify)
    reset(db, notify.code)
    payloads = repr(outbox(db))
    code = notify.code
    for spelling in (code, code.replace("-", ""), code.lower()):
        assert spelling not in payloads
    assert outbox(db, events.PASSWORD_RESET_REQUESTED)[0]["subject"]["id"] == (
        world.elm_teacher.id
    )


def test_the_code_is_typed_leniently(db, world, notify):
    """Lower case, and without the dashes, the code still works."""
    request(db, "tom", notify)
    reset(db, notify.code.replace("-", " ").lower())


def test_notify_gets_the_recipient_code_and_expiry(db, world, notify):
    """send_password_reset receives the recipient, the code and an ISO expiry."""
    request(db, "tom", notify)
    [sent] = notify.resets
    tom = world.elm_teacher
    assert sent["recipient"] == {
        "user_id": tom.id,
        "org_id": world.elm.id,
        "email": "tom@example.org",
        "given_name": "Tom",
        "family_name": "Tester",
        "username": "tom",
    }
    assert sent["expires_at"] == (T0 + timedelta(minutes=30)).isoformat()


def test_notify_down_still_answers_empty_and_logs_no_code(db, world, notify):
    """The code is kept, a warning names the user only, and asking again works."""
    notify.down = True
    with capture_logs() as logs:
        assert request(db, "tom", notify) == {}
    [warning] = [line for line in logs if line["log_level"] == "warning"]
    assert warning == {
        "event": "password_reset_code_undelivered",
        "log_level": "warning",
        "user_id": world.elm_teacher.id,
        "error": "SERVICE_UNAVAILABLE",
    }
    assert outbox(db, events.PASSWORD_RESET_REQUESTED)
    assert notify.resets == []

    notify.down = False
    request(db, "tom", notify, now=T0 + timedelta(minutes=1))
    reset(db, notify.code, now=T0 + timedelta(minutes=2))


def test_a_refused_email_still_answers_empty(db, world, notify):
    """notify answering email_id None (a rate limit) is logged, not raised."""
    notify.refuse_resets = True
    with capture_logs() as logs:
        assert request(db, "tom", notify) == {}
    assert "password_reset_code_refused" in {line["event"] for line in logs}
    assert notify.code not in repr(logs)


def test_an_address_asking_too_often_is_refused_with_one_event(db, world, notify):
    """Past 30 requests in 10 minutes an address gets 429 and the flood one event."""
    for attempt in range(accounts.RESET_IP_LIMIT):
        assert request(db, f"nobody{attempt}", notify, ip="192.0.2.7") == {}
    for _ in range(3):
        with pytest.raises(ResetThrottled) as caught:
            request(db, "tom", notify, ip="192.0.2.7", now=T0 + timedelta(minutes=9))
    assert (caught.value.status, caught.value.code) == (429, "RESET_THROTTLED")
    assert notify.resets == []
    [throttled] = outbox(db, events.PASSWORD_RESET_THROTTLED)
    assert throttled["subject"] == {"type": "ip", "id": "192.0.2.7"}
    assert throttled["data"] == {"limit": 30, "window_seconds": 600}
    assert db.query(ResetRequest).count() == accounts.RESET_IP_LIMIT + 1

    request(db, "tom", notify, ip="192.0.2.8", now=T0 + timedelta(minutes=9))
    later = T0 + timedelta(minutes=19)
    request(db, "tom", notify, ip="192.0.2.7", now=later)
    assert len(notify.resets) == 2
    assert db.query(ResetRequest).filter_by(ip="192.0.2.7").count() == 1


def test_an_account_gets_at_most_five_codes_an_hour(db, world, notify):
    """A sixth request within an hour makes no code, no event and spends none."""
    for attempt in range(6):
        at = T0 + timedelta(minutes=attempt)
        assert request(db, "tom", notify, ip=f"10.9.0.{attempt}", now=at) == {}
    assert len(notify.resets) == 5
    assert len(outbox(db, events.PASSWORD_RESET_REQUESTED)) == 5

    reset(db, notify.code, now=T0 + timedelta(minutes=7))
    request(db, "tom", notify, now=T0 + timedelta(minutes=61))
    assert len(notify.resets) == 6
