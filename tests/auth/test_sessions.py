"""Sessions: refresh rotation, theft detection, expiry, logout and revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from plumbing.errors import Forbidden
from services.auth import accounts, events, sessions, users
from services.auth.exceptions import InvalidCredentials, InvalidRefreshToken
from services.auth.models import RefreshToken, Session
from tests.service_support import outbox

from .conftest import PASSWORD, SECRET, T0, identity_of


def login(db, username="tom", now=T0):
    return accounts.login(
        db,
        username=username,
        password=PASSWORD,
        ip="10.0.0.1",
        user_agent="pytest",
        secret=SECRET,
        now=now,
    )


def refresh(db, token, now):
    return sessions.refresh(
        db,
        refresh_token=token,
        ip="10.0.0.1",
        user_agent="pytest",
        secret=SECRET,
        now=now,
    )


def session_of(db, answer):
    db.rollback()
    token = db.get(RefreshToken, sessions.token_hash(answer["refresh_token"]))
    return db.get(Session, token.session_id)


def test_refresh_tokens_are_stored_only_as_their_sha256(db, world):
    """The database holds the hash of the refresh token, not the token."""
    answer = login(db)
    stored = db.scalars(
        RefreshToken.__table__.select().with_only_columns(RefreshToken.token_hash)
    ).all()
    assert stored == [sessions.token_hash(answer["refresh_token"])]
    assert answer["refresh_token"] not in repr(outbox(db))


def test_refresh_rotates_the_token_and_keeps_the_session(db, world):
    """Each refresh answers a new refresh token; the session stays the same."""
    first = login(db)
    second = refresh(db, first["refresh_token"], T0 + timedelta(minutes=10))
    third = refresh(db, second["refresh_token"], T0 + timedelta(minutes=20))
    assert (
        len({first["refresh_token"], second["refresh_token"], third["refresh_token"]})
        == 3
    )
    assert session_of(db, first).id == session_of(db, third).id
    assert len(outbox(db, events.TOKEN_REFRESHED)) == 2


def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(db, world):
    """A used token coming back means theft: the session and its new token end."""
    first = login(db)
    second = refresh(db, first["refresh_token"], T0 + timedelta(minutes=1))
    with pytest.raises(InvalidRefreshToken):
        refresh(db, first["refresh_token"], T0 + timedelta(minutes=2))
    with pytest.raises(InvalidRefreshToken):
        refresh(db, second["refresh_token"], T0 + timedelta(minutes=3))

    revoked = outbox(db, events.SESSIONS_REVOKED)
    assert revoked[0]["data"] == {
        "session_ids": [session_of(db, first).id],
        "reason_code": "refresh_token_reused",
    }


def test_an_unknown_refresh_token_is_refused(db, world):
    """A made-up token gets INVALID_REFRESH_TOKEN (401)."""
    with pytest.raises(InvalidRefreshToken) as caught:
        refresh(db, "not-a-token", T0)
    assert (caught.value.code, caught.value.status) == ("INVALID_REFRESH_TOKEN", 401)


def test_a_session_idle_for_more_than_30_minutes_ends(db, world):
    """Refreshing 30 minutes after the last use works; 31 minutes does not."""
    first = login(db)
    second = refresh(db, first["refresh_token"], T0 + timedelta(minutes=30))
    with pytest.raises(InvalidRefreshToken):
        refresh(db, second["refresh_token"], T0 + timedelta(minutes=61))


def test_a_session_ends_12_hours_after_login_however_active(db, world):
    """Refreshing every 20 minutes keeps a session only until 12 hours."""
    answer = login(db)
    moment = T0
    while moment + timedelta(minutes=20) < T0 + timedelta(hours=12):
        moment += timedelta(minutes=20)
        answer = refresh(db, answer["refresh_token"], moment)
    with pytest.raises(InvalidRefreshToken):
        refresh(db, answer["refresh_token"], T0 + timedelta(hours=12, minutes=1))


def test_logout_revokes_the_session_and_emits_logged_out(db, world):
    """Logout ends the caller's session; its refresh token stops working."""
    answer = login(db)
    session = session_of(db, answer)
    caller = identity_of(db, world.elm_teacher, session.id)
    sessions.logout(db, caller, now=T0 + timedelta(minutes=1))

    assert outbox(db, events.LOGGED_OUT)[0]["data"] == {"session_id": session.id}
    with pytest.raises(InvalidRefreshToken):
        refresh(db, answer["refresh_token"], T0 + timedelta(minutes=2))


def test_changing_the_password_ends_the_other_sessions(db, world):
    """The caller's session survives; the user's other sessions are revoked."""
    here = session_of(db, login(db))
    elsewhere = login(db)
    caller = identity_of(db, world.elm_teacher, here.id)
    accounts.change_password(
        db,
        caller,
        current_password=PASSWORD,
        new_password="a brand new passphrase",
        now=T0 + timedelta(minutes=1),
    )
    revoked = outbox(db, events.SESSIONS_REVOKED)[0]["data"]
    assert revoked == {
        "session_ids": [session_of(db, elsewhere).id],
        "reason_code": "password_changed",
    }
    assert outbox(db, events.PASSWORD_CHANGED)
    with pytest.raises(InvalidCredentials):
        login(db, now=T0 + timedelta(minutes=2))


def test_changing_the_password_needs_the_current_one(db, world):
    """A wrong current password is refused and nothing changes."""
    caller = identity_of(db, world.elm_teacher)
    with pytest.raises(InvalidCredentials):
        accounts.change_password(
            db,
            caller,
            current_password="not my password at all",
            new_password="a brand new passphrase",
            now=T0,
        )
    assert outbox(db, events.PASSWORD_CHANGED) == []


def test_an_admin_revoking_sessions_ends_every_session_of_the_user(db, world):
    """revoke_sessions by the school admin ends all of the teacher's sessions."""
    one, two = session_of(db, login(db)), session_of(db, login(db))
    admin = identity_of(db, world.elm_admin)
    answer = users.revoke_user_sessions(db, admin, world.elm_teacher.id, now=T0)
    assert sorted(answer["session_ids"]) == sorted([one.id, two.id])
    assert answer["revoked"] == 2
    event = outbox(db, events.SESSIONS_REVOKED)[0]
    assert event["data"]["reason_code"] == "revoked"


def test_deactivating_a_user_revokes_their_sessions(db, world):
    """Deactivation ends every session and emits both events."""
    answer = login(db)
    admin = identity_of(db, world.elm_admin)
    users.set_active(db, admin, world.elm_teacher.id, False, now=T0)
    assert outbox(db, events.USER_DEACTIVATED)
    revoked = outbox(db, events.SESSIONS_REVOKED)[0]["data"]
    assert revoked["reason_code"] == "user_deactivated"
    with pytest.raises(InvalidRefreshToken):
        refresh(db, answer["refresh_token"], T0 + timedelta(minutes=1))


def test_only_the_gateway_may_list_revoked_sessions(db, world):
    """The gateway gets the revoked ids; a user gets Forbidden and authz.denied."""
    session = session_of(db, login(db))
    caller = identity_of(db, world.elm_teacher, session.id)
    sessions.logout(db, caller, now=T0 + timedelta(hours=1))
    gateway = identity_of(db, world.elm_teacher, service="gateway")
    since = (T0 - timedelta(minutes=5)).isoformat()
    listed = sessions.list_revoked(db, gateway, since, now=T0 + timedelta(hours=2))
    assert listed["session_ids"] == [session.id]

    with pytest.raises(Forbidden):
        sessions.list_revoked(
            db, identity_of(db, world.elm_admin), T0.isoformat(), now=T0
        )
    denied = outbox(db, events.AUTHZ_DENIED)
    assert denied[0]["data"]["action"] == "auth.list_revoked_sessions"
