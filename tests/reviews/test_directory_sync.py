"""An admin copies staff created before the reviews service listened to auth,
by RPC to the real auth service."""

from __future__ import annotations

from typing import Any

import pytest
from nameko.exceptions import RemoteError
from sqlalchemy.orm import sessionmaker

from plumbing.database import ServiceSession, make_engine
from plumbing.errors import from_remote
from plumbing.identity import Identity

from .conftest import CYCLE, T0

SECRET = "reviews-tests-secret-of-at-least-32-bytes"


@pytest.fixture
def auth_world(make_database) -> dict[str, Any]:
    """An auth database with Elm school, its admin, a manager and a teacher."""
    from services.auth import organisations, users

    url = make_database("auth")
    engine = make_engine(url)
    db = sessionmaker(bind=engine, class_=ServiceSession, expire_on_commit=False)()

    def user(org: Any, name: str, role: str, manager: Any = None) -> Any:
        values = {
            "username": name,
            "given_name": name.title(),
            "family_name": "Tester",
            "email": f"{name}@example.org",
            "org_id": org.id,
            "line_manager_id": manager.id if manager else None,
        }
        made = users.insert_user(
            db, values, [{"role": role, "org_id": org.id}], password_hash=None, now=T0
        )
        db.commit()
        return made

    try:
        elm = organisations.create_organisation(
            db, {"kind": "school", "name": "Elm Primary"}, now=T0
        )
        yew = organisations.create_organisation(
            db, {"kind": "school", "name": "Yew School"}, now=T0
        )
        admin = user(elm, "eve", "school_admin")
        manager = user(elm, "margo", "line_manager")
        teacher = user(elm, "tom", "staff", manager)
        user(yew, "yan", "staff")
        return {
            "url": url,
            "elm": elm.id,
            "admin": admin.id,
            "manager": manager.id,
            "teacher": teacher.id,
        }
    finally:
        db.close()
        engine.dispose()


def test_an_admin_copies_their_staff_from_auth(
    container_factory, reviews_config, reviews_rpc, auth_world
):
    """After a sync, a new cycle reviews Elm's three people, Tom by Margo."""
    from services.auth.service import AuthService
    from services.reviews.service import ReviewsService

    config = dict(
        reviews_config, AUTH_DATABASE_URL=auth_world["url"], JWT_SECRET=SECRET
    )
    container_factory(AuthService, config).start()
    container_factory(ReviewsService, config).start()
    elm = auth_world["elm"]
    eve = Identity(
        user_id=auth_world["admin"], org_id=elm, scopes={"school_admin": [elm]}
    )
    with reviews_rpc(eve) as reviews:
        assert reviews.sync_directory() == {"organisations": 1, "users": 3}
        cycle = reviews.open_cycle(dict(CYCLE, org_id=elm))
        assert cycle["reviews_created"] == 3
        page = reviews.list_reviews({"cycle_id": cycle["id"]})
    [tom] = [r for r in page["items"] if r["reviewee_id"] == auth_world["teacher"]]
    assert tom["reviewer_id"] == auth_world["manager"]


def test_only_an_admin_may_sync(container_factory, reviews_config, reviews_rpc):
    """A teacher asking for a sync gets NOT_FOUND, and auth is never asked."""
    from services.reviews.service import ReviewsService

    container_factory(ReviewsService, reviews_config).start()
    teacher = Identity(user_id="u-1", org_id="o-1", scopes={"staff": ["o-1"]})
    with reviews_rpc(teacher) as reviews:
        with pytest.raises(RemoteError) as caught:
            reviews.sync_directory()
    assert from_remote(caught.value.value).code == "NOT_FOUND"
