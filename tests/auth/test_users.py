"""Users: who may read and manage whom, validation, and the change events."""

from __future__ import annotations

import pytest

from plumbing.errors import Forbidden, NotFound, ValidationFailed
from services.auth import events, organisations, users
from services.auth.exceptions import UsernameTaken, WeakPassword
from services.auth.roles import catalogue
from tests.service_support import outbox

from .conftest import T0, NotifyStub, identity_of


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


def test_a_school_admin_cannot_touch_another_schools_user(db, world):
    """Elm's admin asking for an Ash teacher gets NotFound and authz.denied."""
    admin = identity_of(db, world.elm_admin)
    with pytest.raises(NotFound):
        users.get_user(db, admin, world.ash_teacher.id)
    with pytest.raises(NotFound):
        users.update_user(db, admin, world.ash_teacher.id, {"given_name": "X"}, now=T0)
    with pytest.raises(NotFound):
        users.set_active(db, admin, world.ash_teacher.id, False, now=T0)
    denied = outbox(db, events.AUTHZ_DENIED)
    assert [event["data"]["action"] for event in denied] == [
        "auth.get_user",
        "auth.update_user",
        "auth.deactivate_user",
    ]
    assert denied[0]["subject"] == {"type": "user", "id": world.ash_teacher.id}
    assert outbox(db, events.USER_UPDATED) == []


def test_a_trust_admin_manages_users_of_every_school_of_the_trust(db, world):
    """The trust admin can read and update the Ash teacher."""
    admin = identity_of(db, world.trust_admin)
    assert users.get_user(db, admin, world.ash_teacher.id)["username"] == "amy"
    users.update_user(db, admin, world.ash_teacher.id, {"family_name": "Ash"}, now=T0)
    changes = outbox(db, events.USER_UPDATED)[0]["changes"]
    assert changes == {"family_name": {"before": "Tester", "after": "Ash"}}


def test_a_trust_admin_cannot_reach_a_standalone_school(db, world):
    """Yew is not in the trust, so creating a user there is NotFound."""
    admin = identity_of(db, world.trust_admin)
    with pytest.raises(NotFound):
        users.create_user(db, admin, new_user(world.yew), now=T0, notify=NotifyStub())


def test_a_line_manager_reads_their_reports_but_not_colleagues(db, world):
    """Margo sees Tom, whom she manages, but not the CPD lead."""
    manager = identity_of(db, world.elm_manager)
    assert users.get_user(db, manager, world.elm_teacher.id)["username"] == "tom"
    with pytest.raises(NotFound):
        users.get_user(db, manager, world.elm_lead.id)
    listed = users.list_users(db, manager, {})
    assert {item["username"] for item in listed["items"]} == {"margo", "tom"}


def test_staff_read_only_themselves(db, world):
    """Tom can read himself and nobody else."""
    teacher = identity_of(db, world.elm_teacher)
    assert users.get_user(db, teacher, world.elm_teacher.id)["username"] == "tom"
    with pytest.raises(NotFound):
        users.get_user(db, teacher, world.elm_manager.id)


def test_a_cpd_lead_reads_but_cannot_manage_their_school(db, world):
    """The CPD lead sees Elm's users; changing one is Forbidden."""
    lead = identity_of(db, world.elm_lead)
    assert users.get_user(db, lead, world.elm_teacher.id)
    with pytest.raises(Forbidden):
        users.update_user(db, lead, world.elm_teacher.id, {"given_name": "T"}, now=T0)


def test_an_admin_creates_a_user_with_roles(db, world):
    """create_user stores the user and emits user_created and role_granted."""
    admin = identity_of(db, world.elm_admin)
    data = new_user(
        world.elm,
        username="NewBie",
        line_manager_id=world.elm_manager.id,
        roles=[{"role": "cpd_lead", "org_id": world.elm.id}],
        password="a long enough passphrase",
    )
    created = users.create_user(db, admin, data, now=T0, notify=NotifyStub())
    assert created["username"] == "newbie"
    assert created["roles"] == [{"role": "cpd_lead", "org_id": world.elm.id}]
    event = outbox(db, events.USER_CREATED)[-1]
    assert event["changes"]["email"] == {"before": None, "after": "nina@example.org"}
    assert "password" not in repr(event["changes"])
    assert "$2b$" not in repr(outbox(db))
    assert outbox(db, events.ROLE_GRANTED)[-1]["data"]["role"] == "cpd_lead"


def test_usernames_are_unique_whatever_their_case(db, world):
    """TOM is taken because tom exists."""
    admin = identity_of(db, world.elm_admin)
    with pytest.raises(UsernameTaken) as caught:
        users.create_user(
            db, admin, new_user(world.elm, username="TOM"), now=T0, notify=NotifyStub()
        )
    assert caught.value.status == 409


def test_unknown_fields_are_rejected_with_field_errors(db, world):
    """An extra field gives VALIDATION_FAILED naming the field."""
    admin = identity_of(db, world.elm_admin)
    with pytest.raises(ValidationFailed) as caught:
        users.create_user(
            db, admin, new_user(world.elm, is_admin=True), now=T0, notify=NotifyStub()
        )
    assert caught.value.fields == {"is_admin": ["Unknown field."]}


def test_a_weak_initial_password_is_rejected(db, world):
    """create_user applies the password policy."""
    admin = identity_of(db, world.elm_admin)
    with pytest.raises(WeakPassword):
        users.create_user(
            db,
            admin,
            new_user(world.elm, password="qwerty123456"),
            now=T0,
            notify=NotifyStub(),
        )


def test_a_school_admin_cannot_grant_a_role_at_another_school(db, world):
    """Granting at Ash is outside Elm's admin's scope: NotFound and denied."""
    admin = identity_of(db, world.elm_admin)
    roles = [{"role": "staff", "org_id": world.ash.id}]
    with pytest.raises(NotFound):
        users.update_user(db, admin, world.elm_teacher.id, {"roles": roles}, now=T0)
    assert outbox(db, events.AUTHZ_DENIED)[0]["subject"]["id"] == world.ash.id


def test_only_a_trust_admin_may_grant_trust_admin(db, world):
    """A school admin granting trust_admin is refused; the trust admin may."""
    roles = [{"role": "trust_admin", "org_id": world.trust.id}]
    target = world.elm_teacher.id
    school_admin = identity_of(db, world.elm_admin)
    with pytest.raises(NotFound):
        users.update_user(db, school_admin, target, {"roles": roles}, now=T0)

    trust_admin = identity_of(db, world.trust_admin)
    updated = users.update_user(db, trust_admin, target, {"roles": roles}, now=T0)
    assert updated["roles"] == roles
    assert outbox(db, events.ROLE_REVOKED)[0]["data"]["role"] == "staff"
    assert outbox(db, events.ROLE_GRANTED)[-1]["data"]["role"] == "trust_admin"


def test_deactivated_users_can_be_reactivated(db, world):
    """Reactivation emits user_reactivated and clears the lockout."""
    admin = identity_of(db, world.elm_admin)
    assert not users.set_active(db, admin, world.elm_teacher.id, False, now=T0)[
        "active"
    ]
    assert users.set_active(db, admin, world.elm_teacher.id, True, now=T0)["active"]
    assert outbox(db, events.USER_REACTIVATED)[0]["changes"] == {
        "active": {"before": False, "after": True}
    }


def test_list_users_pages_and_filters(db, world):
    """The trust admin lists by organisation and text; limit is at most 100."""
    admin = identity_of(db, world.trust_admin)
    page = users.list_users(db, admin, {"org_id": world.elm.id, "limit": 2})
    assert page["total"] == 4
    assert len(page["items"]) == 2
    found = users.list_users(db, admin, {"query": "AMY"})
    assert [item["username"] for item in found["items"]] == ["amy"]
    with pytest.raises(ValidationFailed):
        users.list_users(db, admin, {"limit": 101})


def test_listing_another_schools_users_is_denied(db, world):
    """Elm's admin asking for Ash's list gets NotFound and authz.denied."""
    admin = identity_of(db, world.elm_admin)
    with pytest.raises(NotFound):
        users.list_users(db, admin, {"org_id": world.ash.id})
    assert outbox(db, events.AUTHZ_DENIED)


def test_organisations_are_visible_within_scope_only(db, world):
    """Elm's admin sees Elm; asking for Ash is NotFound."""
    admin = identity_of(db, world.elm_admin)
    listed = organisations.list_organisations(db, admin)
    assert [org["name"] for org in listed["items"]] == ["Elm Primary"]
    with pytest.raises(NotFound):
        organisations.get_organisation(db, admin, world.ash.id)
    trust_admin = identity_of(db, world.trust_admin)
    names = [
        o["name"] for o in organisations.list_organisations(db, trust_admin)["items"]
    ]
    assert names == ["Oak Trust", "Ash Academy", "Elm Primary"]


def test_the_role_catalogue_describes_six_roles():
    """list_roles names every role with a description."""
    roles = {item["role"]: item["description"] for item in catalogue()}
    assert set(roles) == {
        "staff",
        "line_manager",
        "cpd_lead",
        "school_admin",
        "trust_admin",
        "auditor",
    }
    assert all(roles.values())


def test_a_school_admin_cannot_take_away_a_trust_admin_role(db, world):
    """Replacing the roles of an Elm member who is trust_admin is refused."""
    trust_admin = identity_of(db, world.trust_admin)
    roles = [
        {"role": "staff", "org_id": world.elm.id},
        {"role": "trust_admin", "org_id": world.trust.id},
    ]
    users.update_user(db, trust_admin, world.elm_teacher.id, {"roles": roles}, now=T0)
    school_admin = identity_of(db, world.elm_admin)
    demote = {"roles": roles[:1]}
    with pytest.raises(NotFound):
        users.update_user(db, school_admin, world.elm_teacher.id, demote, now=T0)
    assert outbox(db, events.ROLE_REVOKED) == []


def test_moving_a_user_to_another_school_needs_their_new_roles(db, world):
    """A move without roles is refused; with roles it is one user_updated."""
    admin = identity_of(db, world.trust_admin)
    with pytest.raises(ValidationFailed):
        users.update_user(
            db, admin, world.elm_teacher.id, {"org_id": world.ash.id}, now=T0
        )
    move = {
        "org_id": world.ash.id,
        "line_manager_id": None,
        "roles": [{"role": "staff", "org_id": world.ash.id}],
    }
    moved = users.update_user(db, admin, world.elm_teacher.id, move, now=T0)
    assert moved["org_id"] == world.ash.id
    changes = outbox(db, events.USER_UPDATED)[0]["changes"]
    assert set(changes) == {"org_id", "line_manager_id", "roles"}
