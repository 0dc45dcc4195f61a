"""CSV import: every row checked first; one bad row imports nothing."""

from __future__ import annotations

import pytest

from plumbing.errors import NotFound
from services.auth import events, importer
from services.auth.exceptions import ImportInvalid
from services.auth.models import User
from tests.service_support import outbox

from .conftest import T0, NotifyStub, identity_of

HEADER = "username,given_name,family_name,email,roles,line_manager_username\n"


def run(db, caller, org, rows, notify=None):
    return importer.import_users(
        db, caller, org.id, HEADER + rows, now=T0, notify=notify or NotifyStub()
    )


def test_a_clean_file_imports_every_user_with_events(db, world):
    """Three rows make three users, line managers included, and the events."""
    rows = (
        "bob,Bob,Brown,bob@example.org,line_manager;cpd_lead,margo\n"
        "cat,Cat,Cole,cat@example.org,,bob\n"
        "dan,Dan,Dee,dan@example.org,staff,\n"
    )
    answer = run(db, identity_of(db, world.elm_admin), world.elm, rows)
    assert answer["imported"] == 3
    assert [user["username"] for user in answer["users"]] == ["bob", "cat", "dan"]

    cat = db.query(User).filter_by(username="cat").one()
    bob = db.query(User).filter_by(username="bob").one()
    assert cat.line_manager_id == bob.id
    assert bob.line_manager_id == world.elm_manager.id
    assert {(g.role, g.org_id) for g in bob.roles} == {
        ("line_manager", world.elm.id),
        ("cpd_lead", world.elm.id),
    }
    assert [g.role for g in cat.roles] == ["staff"]
    assert cat.password_hash is None
    assert len(outbox(db, events.USER_CREATED)) - 7 == 3  # 7 seeded users
    cat_created = outbox(db, events.USER_CREATED)[-2]
    assert cat_created["changes"]["line_manager_id"]["after"] == bob.id
    imported = outbox(db, events.USERS_IMPORTED)
    assert imported[0]["data"]["count"] == 3


def test_one_bad_row_imports_nothing_and_every_error_has_its_row(db, world):
    """Errors on rows 3, 4 and 5 are all reported; no user is created."""
    rows = (
        "bob,Bob,Brown,bob@example.org,staff,\n"
        "tom,Tom,Taken,tom2@example.org,staff,\n"
        "bob,Bob,Again,bob2@example.org,staff,\n"
        "eve2,,Empty,not-an-email,wizard,nobody\n"
    )
    before = db.query(User).count()
    with pytest.raises(ImportInvalid) as caught:
        run(db, identity_of(db, world.elm_admin), world.elm, rows)
    fields = caught.value.fields
    assert set(fields) == {"row 3", "row 4", "row 5"}
    assert fields["row 3"]["username"] == ["Already in use."]
    assert fields["row 4"]["username"] == ["Also on row 2."]
    assert set(fields["row 5"]) == {
        "given_name",
        "email",
        "roles",
        "line_manager_username",
    }
    assert caught.value.code == "IMPORT_INVALID"
    assert db.query(User).count() == before
    assert outbox(db, events.USERS_IMPORTED) == []


def test_a_wrong_header_is_reported_as_row_1(db, world):
    """Columns must be exactly the documented ones."""
    with pytest.raises(ImportInvalid) as caught:
        importer.import_users(
            db,
            identity_of(db, world.elm_admin),
            world.elm.id,
            "user,name\nx,y\n",
            now=T0,
            notify=NotifyStub(),
        )
    assert "row 1" in caught.value.fields


def test_a_school_admin_cannot_grant_trust_admin_by_import(db, world):
    """trust_admin in a school's import is a row error."""
    rows = "zed,Zed,Zee,zed@example.org,trust_admin,\n"
    with pytest.raises(ImportInvalid) as caught:
        run(db, identity_of(db, world.elm_admin), world.elm, rows)
    assert "roles" in caught.value.fields["row 2"]


def test_importing_into_another_school_is_denied(db, world):
    """Elm's admin importing into Ash gets NotFound and authz.denied."""
    rows = "zed,Zed,Zee,zed@example.org,staff,\n"
    with pytest.raises(NotFound):
        run(db, identity_of(db, world.elm_admin), world.ash, rows)
    assert outbox(db, events.AUTHZ_DENIED)[0]["data"]["action"] == "auth.import_users"
