"""Invitations: a created or imported user is emailed through notify, with a
code that sets their password when they have none (valid 7 days)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from nameko.exceptions import RemoteError
from nameko.testing.services import entrypoint_hook
from structlog.testing import capture_logs

from plumbing.errors import Conflict, Forbidden, NotFound, from_remote
from services.auth import accounts, events, importer, invitations, users
from services.auth.exceptions import InvalidResetCode, PasswordAlreadySet
from services.auth.models import UndeliveredInvitation, User
from tests.service_support import outbox, service_session

from .conftest import SECRET, T0, identity_of

NEW_PASSWORD = "my very own first passphrase"
HEADER = "username,given_name,family_name,email,roles,line_manager_username\n"


def new_user(org, **changes):
    data = {
        "username": "newbie",
        "given_name": "Nina",
        "family_name": "Newman",
        "email": "nina@example.org",
        "org_id": org.id,
    }
    data.update(changes)
    return data


def create(db, world, notify, **changes):
    admin = identity_of(db, world.elm_admin)
    return users.create_user(
        db, admin, new_user(world.elm, **changes), now=T0, notify=notify
    )


def import_staff(db, world, notify, count):
    """``count`` staff imported into Elm by its admin."""
    admin = identity_of(db, world.elm_admin)
    return importer.import_users(
        db, admin, world.elm.id, csv_of(count), now=T0, notify=notify
    )


def set_password(db, code, now=T0, password=NEW_PASSWORD):
    return accounts.reset_password(
        db, code=code, new_password=password, ip=None, user_agent=None, now=now
    )


def login(db, username, password, now=T0):
    return accounts.login(
        db,
        username=username,
        password=password,
        ip=None,
        user_agent=None,
        secret=SECRET,
        now=now,
    )


def csv_of(count):
    return HEADER + "".join(
        f"user{n},User,Number{n},user{n}@example.org,staff,\n" for n in range(count)
    )


def assert_no_code_in_events(db, codes):
    payloads = repr(outbox(db))
    for code in codes:
        for spelling in (code, code.replace("-", ""), code.lower()):
            assert spelling not in payloads


# In process, with the notify stub


def test_a_user_created_without_password_is_invited_with_a_code(db, world, notify):
    """One invitation, with a 7-day code that sets the password."""
    created = create(db, world, notify)
    assert created["invitation_sent"] is True
    assert created["has_password"] is False
    [batch] = notify.batches
    [invitation] = batch
    assert invitation["recipient"] == {
        "user_id": created["id"],
        "org_id": world.elm.id,
        "email": "nina@example.org",
        "given_name": "Nina",
        "family_name": "Newman",
        "username": "newbie",
    }
    assert invitation["expires_at"] == (T0 + timedelta(days=7)).isoformat()

    set_password(db, invitation["code"], now=T0 + timedelta(days=6))
    assert login(db, "newbie", NEW_PASSWORD, now=T0 + timedelta(days=6))["user"]
    completed = outbox(db, events.PASSWORD_RESET_COMPLETED)[-1]
    assert completed["data"] == {"purpose": "invitation"}
    invited = outbox(db, events.INVITATION_SENT)
    assert [(e["subject"]["id"], e["data"]) for e in invited] == [
        (created["id"], {"with_code": True})
    ]
    assert_no_code_in_events(db, [invitation["code"]])


def test_an_invitation_code_expires_after_7_days(db, world, notify):
    create(db, world, notify)
    with pytest.raises(InvalidResetCode):
        set_password(db, notify.invitations[0]["code"], now=T0 + timedelta(days=7))


def test_a_user_created_with_a_password_is_invited_without_a_code(db, world, notify):
    """The email only says the account exists; no code is stored."""
    created = create(db, world, notify, password="a long enough passphrase")
    assert created["invitation_sent"] is True
    [invitation] = notify.invitations
    assert (invitation["code"], invitation["expires_at"]) == (None, None)
    assert outbox(db, events.INVITATION_SENT)[-1]["data"] == {"with_code": False}


def test_an_import_sends_every_invitation_in_one_call(db, world, notify):
    """40 users: one send_invitations with 40 invitations, 40 events."""
    answer = import_staff(db, world, notify, 40)
    assert (answer["imported"], answer["invitations_sent"]) == (40, True)
    [batch] = notify.batches
    assert len(batch) == 40
    assert {item["recipient"]["user_id"] for item in batch} == {
        user["id"] for user in answer["users"]
    }
    assert all(item["code"] for item in batch)
    assert len(outbox(db, events.INVITATION_SENT)) == 40
    set_password(db, batch[7]["code"])
    assert login(db, "user7", NEW_PASSWORD)["user"]["username"] == "user7"
    assert_no_code_in_events(db, [item["code"] for item in batch])


def test_notify_down_leaves_the_users_created_and_says_so(db, world, notify):
    """invitation_sent / invitations_sent false; a warning with user ids only."""
    notify.down = True
    with capture_logs() as logs:
        created = create(db, world, notify)
        imported = import_staff(db, world, notify, 3)
    assert created["invitation_sent"] is False
    assert imported["invitations_sent"] is False
    assert db.query(User).filter(User.username.in_(["newbie", "user2"])).count() == 2
    warnings = [line for line in logs if line["log_level"] == "warning"]
    assert [line["event"] for line in warnings] == ["invitations_undelivered"] * 2
    assert warnings[0]["user_ids"] == [created["id"]]
    assert warnings[1]["user_ids"] == [user["id"] for user in imported["users"]]
    assert not any("code" in line for line in logs)


def pending(db):
    """``{user_id: (attempts, next_attempt_at)}`` of undelivered invitations."""
    db.rollback()
    return {
        row.user_id: (row.attempts, row.next_attempt_at)
        for row in db.query(UndeliveredInvitation)
    }


def test_an_invitation_notify_could_not_take_goes_later_with_a_new_code(
    db, world, notify
):
    """Notify down: the user is kept; a minute later, with notify back, the
    timer's retry sends a new code that sets the password, and forgets them."""
    notify.down = True
    created = create(db, world, notify)
    assert pending(db) == {created["id"]: (0, T0 + timedelta(minutes=1))}
    notify.down = False
    assert invitations.retry_undelivered(db, notify, now=T0) == 0
    assert notify.batches == []

    later = T0 + timedelta(minutes=1)
    assert invitations.retry_undelivered(db, notify, now=later) == 1
    [[invitation]] = notify.batches
    assert invitation["recipient"]["user_id"] == created["id"]
    assert invitation["expires_at"] == (later + timedelta(days=7)).isoformat()
    assert pending(db) == {}
    set_password(db, invitation["code"], now=later)
    assert login(db, "newbie", NEW_PASSWORD, now=later)["user"]["id"] == created["id"]
    invited = outbox(db, events.INVITATION_SENT)
    assert [(e["data"], e["actor"]["user_id"]) for e in invited][-1] == (
        {"with_code": True},
        None,
    )
    assert_no_code_in_events(db, [invitation["code"]])


def test_retries_wait_longer_each_time_and_stop_after_a_day(db, world, notify):
    """1, 2, 4, ... minutes between tries, at most an hour; after a day the
    invitation is given up with a warning, and nothing more is sent."""
    notify.down = True
    created = create(db, world, notify)
    when = T0 + timedelta(minutes=1)
    waits = []
    while when < T0 + timedelta(days=1):
        assert invitations.retry_undelivered(db, notify, now=when) == 0
        attempts, due = pending(db)[created["id"]]
        waits.append(due - when)
        when = due
    assert waits[:4] == [timedelta(minutes=m) for m in (2, 4, 8, 16)]
    assert max(waits) == timedelta(hours=1)
    with capture_logs() as logs:
        assert invitations.retry_undelivered(db, notify, now=when) == 0
    assert pending(db) == {}
    [given_up] = [line for line in logs if line["event"] == "invitations_given_up"]
    assert given_up["user_ids"] == [created["id"]]
    notify.down = False
    assert invitations.retry_undelivered(db, notify, now=when + timedelta(days=1)) == 0
    assert notify.batches == []


def test_a_deactivated_user_or_a_refusal_is_not_invited_again(db, world, notify):
    """A user deactivated meanwhile is given up; an answer from notify that
    took fewer than asked (a limit) is not retried."""
    notify.down = True
    gone = create(db, world, notify)
    imported = import_staff(db, world, notify, 2)
    users.set_active(db, identity_of(db, world.elm_admin), gone["id"], False, now=T0)
    notify.down = False
    notify.invite = lambda batch: (notify.batches.append(batch), {"queued": 0})[1]
    later = T0 + timedelta(minutes=1)
    assert invitations.retry_undelivered(db, notify, now=later) == 0
    [batch] = notify.batches
    assert {item["recipient"]["user_id"] for item in batch} == {
        user["id"] for user in imported["users"]
    }
    assert pending(db) == {}


def test_an_admin_sending_the_invitation_again_ends_the_retries(db, world, notify):
    """Once an admin's new invitation reaches notify, the timer sends none."""
    notify.down = True
    created = create(db, world, notify)
    notify.down = False
    admin = identity_of(db, world.elm_admin)
    users.send_invitation(db, admin, created["id"], now=T0, notify=notify)
    assert pending(db) == {}
    later = T0 + timedelta(minutes=1)
    assert invitations.retry_undelivered(db, notify, now=later) == 0
    assert len(notify.batches) == 1


def test_two_auth_instances_never_retry_one_invitation_at_once(
    db, world, notify, auth_db_url
):
    """An instance that takes a due invitation pushes it out of the other's
    reach until it is done."""
    notify.down = True
    create(db, world, notify)
    later = T0 + timedelta(minutes=1)
    with service_session(auth_db_url) as other:
        assert len(invitations._claim(other, later)) == 1
    assert invitations._claim(db, later) == []
    assert invitations._claim(db, later + invitations.CLAIM_LEASE) != []


def test_send_invitation_replaces_the_earlier_invitation_code(db, world, notify):
    """A new invitation: the earlier code stops working, the new one works."""
    created = create(db, world, notify)
    first = notify.invitations[-1]["code"]
    admin = identity_of(db, world.trust_admin)
    later = T0 + timedelta(days=1)
    answer = users.send_invitation(db, admin, created["id"], now=later, notify=notify)
    assert answer == {
        "invitation_sent": True,
        "expires_at": (later + timedelta(days=7)).isoformat(),
    }
    assert len(notify.batches) == 2
    second = notify.invitations[-1]["code"]
    assert second != first
    with pytest.raises(InvalidResetCode):
        set_password(db, first, now=later)
    set_password(db, second, now=later)
    invited = outbox(db, events.INVITATION_SENT)
    assert [e["data"] for e in invited] == [{"with_code": True}] * 2
    assert_no_code_in_events(db, [first, second])


def test_send_invitation_refuses_a_user_who_has_a_password(db, world, notify):
    """PASSWORD_ALREADY_SET, and nothing is sent or emitted."""
    admin = identity_of(db, world.elm_admin)
    with pytest.raises(PasswordAlreadySet) as caught:
        users.send_invitation(db, admin, world.elm_teacher.id, now=T0, notify=notify)
    assert (caught.value.code, caught.value.status) == ("PASSWORD_ALREADY_SET", 422)
    assert notify.batches == []
    assert outbox(db, events.INVITATION_SENT) == []


def test_send_invitation_refuses_a_deactivated_user(db, world, notify):
    created = create(db, world, notify)
    admin = identity_of(db, world.elm_admin)
    users.set_active(db, admin, created["id"], False, now=T0)
    with pytest.raises(Conflict):
        users.send_invitation(db, admin, created["id"], now=T0, notify=notify)


def test_send_invitation_is_for_admins_covering_the_user(db, world, notify):
    """As update_user: another school's admin and staff get NotFound, a CPD
    lead who may read the user Forbidden; each attempt is authz.denied."""
    created = create(db, world, notify)
    for who, error in (
        (world.ash_admin, NotFound),
        (world.elm_teacher, NotFound),
        (world.elm_lead, Forbidden),
    ):
        with pytest.raises(error):
            users.send_invitation(
                db, identity_of(db, who), created["id"], now=T0, notify=notify
            )
    denied = outbox(db, events.AUTHZ_DENIED)
    assert [e["data"]["action"] for e in denied] == ["auth.send_invitation"] * 3
    assert len(notify.batches) == 1
    with pytest.raises(NotFound):
        users.send_invitation(
            db, identity_of(db, world.elm_admin), "no-such-user", now=T0, notify=notify
        )


def test_a_reset_request_does_not_spoil_an_invitation(db, world, notify):
    """Anyone may ask a reset for the user: the invitation code still works,
    and setting the password with either code spends the other."""
    create(db, world, notify)
    invitation = notify.invitations[0]["code"]
    accounts.request_password_reset(
        db, login="newbie", ip=None, user_agent=None, now=T0, notify=notify
    )
    reset = notify.code
    set_password(db, invitation)
    with pytest.raises(InvalidResetCode):
        set_password(db, reset, password="some other long passphrase")


# Over RabbitMQ, with a fake notify service running beside auth


def error_of(caught):
    error = from_remote(caught.value.value)
    assert error is not None, caught.value
    return error


def test_create_user_invites_through_notify_as_the_auth_service(
    auth_container, auth_rpc, fake_notify, world, db
):
    """The invitation reaches notify on auth's account; its code sets the
    password over RPC; the event holds no code."""
    auth_container.start()
    with auth_rpc(identity_of(db, world.elm_admin)) as auth:
        created = auth.create_user(new_user(world.elm))
        with_password = auth.create_user(
            new_user(
                world.elm,
                username="pat",
                email="pat@example.org",
                password="a long enough passphrase",
            )
        )
    assert created["invitation_sent"] is True
    assert with_password["invitation_sent"] is True
    assert [len(batch) for batch in fake_notify.batches] == [1, 1]
    assert {(c.service, c.user_id) for c in fake_notify.callers} == {
        ("auth", "service:auth")
    }
    invitation = fake_notify.invitation_of(created["id"])
    assert invitation["code"]
    assert fake_notify.invitation_of(with_password["id"])["code"] is None

    with auth_rpc() as auth:
        auth.reset_password(invitation["code"], NEW_PASSWORD, None, None)
        assert (
            auth.login("newbie", NEW_PASSWORD, None, None)["user"]["id"]
            == (created["id"])
        )
    invited = outbox(db, events.INVITATION_SENT)
    assert [e["data"] for e in invited] == [{"with_code": True}, {"with_code": False}]
    assert_no_code_in_events(db, [invitation["code"]])


def test_an_import_is_one_rpc_to_notify(
    auth_container, auth_rpc, fake_notify, world, db
):
    """25 imported users: one send_invitations call carrying 25 invitations."""
    auth_container.start()
    with auth_rpc(identity_of(db, world.elm_admin)) as auth:
        answer = auth.import_users(world.elm.id, csv_of(25))
    assert (answer["imported"], answer["invitations_sent"]) == (25, True)
    assert [len(batch) for batch in fake_notify.batches] == [25]
    assert len(fake_notify.callers) == 1


def test_notify_down_over_rpc_creates_the_users_all_the_same(
    auth_container, auth_rpc, world, db
):
    """No notify running: invitation_sent false, the users exist."""
    auth_container.start()
    with auth_rpc(identity_of(db, world.elm_admin)) as auth:
        created = auth.create_user(new_user(world.elm))
        imported = auth.import_users(world.elm.id, csv_of(2))
        assert auth.get_user(created["id"])["username"] == "newbie"
    assert created["invitation_sent"] is False
    assert imported["invitations_sent"] is False
    assert imported["imported"] == 2


def test_the_timer_invites_again_once_notify_runs(
    auth_container, auth_rpc, world, db, request
):
    """Created while no notify runs; once one does, auth's timer entrypoint
    sends the invitation on auth's own account, and its code works."""
    auth_container.start()
    with auth_rpc(identity_of(db, world.elm_admin)) as auth:
        created = auth.create_user(new_user(world.elm))
    assert created["invitation_sent"] is False
    assert set(pending(db)) == {created["id"]}
    fake_notify = request.getfixturevalue("fake_notify")
    row = db.get(UndeliveredInvitation, created["id"])
    row.next_attempt_at = row.first_failed_at
    db.commit()
    with entrypoint_hook(auth_container, "retry_invitations") as retry:
        retry()
    assert pending(db) == {}
    invitation = fake_notify.invitation_of(created["id"])
    assert [(c.service, c.user_id) for c in fake_notify.callers] == [
        ("auth", "service:auth")
    ]
    with auth_rpc() as auth:
        auth.reset_password(invitation["code"], NEW_PASSWORD, None, None)
        assert (
            auth.login("newbie", NEW_PASSWORD, None, None)["user"]["id"]
            == (created["id"])
        )


def test_send_invitation_over_rpc(auth_container, auth_rpc, fake_notify, world, db):
    """Another school's admin: NOT_FOUND; a user with a password:
    PASSWORD_ALREADY_SET; a user without: a fresh code reaches notify."""
    auth_container.start()
    with auth_rpc(identity_of(db, world.elm_admin)) as auth:
        created = auth.create_user(new_user(world.elm))
        with pytest.raises(RemoteError) as refused:
            auth.send_invitation(world.elm_teacher.id)
    with auth_rpc(identity_of(db, world.ash_admin)) as auth:
        with pytest.raises(RemoteError) as hidden:
            auth.send_invitation(created["id"])
    with auth_rpc(identity_of(db, world.trust_admin)) as auth:
        answer = auth.send_invitation(created["id"])
    assert error_of(refused).code == "PASSWORD_ALREADY_SET"
    assert error_of(hidden).code == "NOT_FOUND"
    assert outbox(db, events.AUTHZ_DENIED)[-1]["data"]["action"] == (
        "auth.send_invitation"
    )
    assert answer["invitation_sent"] is True
    assert len(fake_notify.batches) == 2
    invited = outbox(db, events.INVITATION_SENT)[-1]
    assert invited["actor"]["user_id"] == world.trust_admin.id
    with auth_rpc() as auth:
        auth.reset_password(
            fake_notify.invitations[-1]["code"], NEW_PASSWORD, None, None
        )
