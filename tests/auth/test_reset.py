"""Password reset: a single-use code, valid 30 minutes, seen only by its owner."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest

from services.auth import accounts, events, sessions
from services.auth.dependencies import write_to_mailbox
from services.auth.exceptions import (
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidResetCode,
    WeakPassword,
)
from tests.service_support import outbox

from .conftest import PASSWORD, SECRET, T0

NEW_PASSWORD = "a fresh and long passphrase"


class Inbox:
    """Collects delivered codes, as the notify service would receive them."""

    def __init__(self):
        self.messages = []

    def __call__(self, recipient, code, expires_at):
        self.messages.append((recipient, code, expires_at))

    @property
    def code(self):
        return self.messages[-1][1]


def request(db, login, inbox, now=T0):
    return accounts.request_password_reset(
        db, login=login, ip="10.0.0.9", user_agent="pytest", now=now, deliver=inbox
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


def test_a_reset_code_sets_a_new_password_and_ends_every_session(db, world):
    """The delivered code sets the password; old sessions are revoked."""
    inbox = Inbox()
    old = login(db, PASSWORD)
    assert request(db, "tom", inbox) == {}
    assert reset(db, inbox.code, now=T0 + timedelta(minutes=5)) == {}

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


def test_a_reset_code_works_only_once(db, world):
    """Using the same code twice is refused the second time."""
    inbox = Inbox()
    request(db, "tom", inbox)
    reset(db, inbox.code)
    with pytest.raises(InvalidResetCode) as caught:
        reset(db, inbox.code, password="yet another long passphrase")
    assert (caught.value.code, caught.value.status) == ("INVALID_RESET_CODE", 400)


def test_a_reset_code_expires_after_30_minutes(db, world):
    """At 30 minutes the code no longer works."""
    inbox = Inbox()
    request(db, "tom", inbox)
    with pytest.raises(InvalidResetCode):
        reset(db, inbox.code, now=T0 + timedelta(minutes=30))


def test_a_newer_code_replaces_an_older_one(db, world):
    """Asking again makes the earlier code useless."""
    inbox = Inbox()
    request(db, "tom", inbox)
    first = inbox.code
    request(db, "tom@example.org", inbox)
    with pytest.raises(InvalidResetCode):
        reset(db, first)
    reset(db, inbox.code)


def test_a_weak_new_password_keeps_the_code_usable(db, world):
    """A rejected password does not spend the code."""
    inbox = Inbox()
    request(db, "tom", inbox)
    with pytest.raises(WeakPassword):
        reset(db, inbox.code, password="short")
    reset(db, inbox.code)


def test_unknown_users_get_the_same_empty_answer_and_nothing_is_sent(db, world):
    """request_password_reset answers {} whether or not the user exists."""
    inbox = Inbox()
    assert request(db, "nobody-here", inbox) == {}
    assert inbox.messages == []
    assert outbox(db, events.PASSWORD_RESET_REQUESTED) == []


def test_the_code_never_reaches_an_event(db, world):
    """No outbox payload contains the code, in any spelling."""
    inbox = Inbox()
    request(db, "tom", inbox)
    reset(db, inbox.code)
    payloads = repr(outbox(db))
    code = inbox.code
    for spelling in (code, code.replace("-", ""), code.lower()):
        assert spelling not in payloads
    assert outbox(db, events.PASSWORD_RESET_REQUESTED)[0]["subject"]["id"] == (
        world.elm_teacher.id
    )


def test_the_code_is_typed_leniently(db, world):
    """Lower case, and without the dashes, the code still works."""
    inbox = Inbox()
    request(db, "tom", inbox)
    reset(db, inbox.code.replace("-", " ").lower())


def test_the_default_delivery_writes_a_private_file(tmp_path: Path):
    """The mailbox file is named by user id and readable by its owner only."""
    recipient = {
        "user_id": "u-1",
        "username": "tom",
        "email": "tom@example.org",
        "given_name": "Tom",
    }
    path = write_to_mailbox(tmp_path / "mailbox", recipient, "ABCD-EFGH", T0)
    assert path == tmp_path / "mailbox" / "u-1.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "ABCD-EFGH" in path.read_text()
