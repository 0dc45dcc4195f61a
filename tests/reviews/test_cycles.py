"""Cycles, their milestones and the reviews they hold."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from plumbing.errors import NotFound, PlatformError
from services.reviews import cycles, events
from services.reviews.models import Cycle, Review
from tests.service_support import outbox

from .conftest import CYCLE, T0, seed_user
from .support import open_elm_cycle, review_of


def count(db, model) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(model))


def test_opening_a_school_cycle_gives_each_member_of_staff_a_review(db, world):
    """Every active Elm member gets one draft review, reviewed by their manager."""
    cycle = open_elm_cycle(db, world)
    assert cycle["reviews_created"] == 4
    tom = review_of(db, cycle, world.tom)
    assert tom["state"] == "draft"
    assert tom["reviewer_id"] == world.margo.id
    margo = review_of(db, cycle, world.margo)
    assert margo["reviewer_id"] is None
    assert len(outbox(db, events.CYCLE_OPENED)) == 1
    created = outbox(db, events.REVIEW_CREATED)
    assert len(created) == 4
    assert {e["org_id"] for e in created} == {world.elm}


def test_a_trust_wide_cycle_covers_every_school_of_the_trust(db, world):
    """A trust admin's cycle reaches Elm, Ash and the central team, not Yew."""
    data = dict(CYCLE, org_id=world.trust)
    cycle = cycles.open_cycle(db, world.trust_admin.identity, data, now=T0)
    orgs = set(db.scalars(select(Review.org_id).where(Review.cycle_id == cycle["id"])))
    assert orgs == {world.elm, world.ash, world.trust}
    assert cycle["reviews_created"] == 7


def test_a_school_admin_cannot_open_a_trust_cycle_or_another_schools(db, world):
    """Eve gets NotFound for the trust and for Yew, each with authz.denied."""
    for org_id in (world.trust, world.yew):
        with pytest.raises(NotFound):
            cycles.open_cycle(
                db, world.elm_admin.identity, dict(CYCLE, org_id=org_id), now=T0
            )
    denied = outbox(db, events.AUTHZ_DENIED)
    assert [e["data"]["action"] for e in denied] == ["reviews.open_cycle"] * 2
    assert count(db, Cycle) == 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("objectives_due", "2030-08-31"),
        ("final_due", "2031-08-01"),
        ("interim_due", "2030-10-01"),
    ],
)
def test_a_milestone_outside_the_cycle_or_out_of_order_stores_nothing(
    db, world, field, value
):
    """MILESTONE_OUTSIDE_CYCLE names the field; no cycle and no review is kept."""
    with pytest.raises(PlatformError) as caught:
        open_elm_cycle(db, world, **{field: value})
    assert caught.value.code == "MILESTONE_OUTSIDE_CYCLE"
    assert field in caught.value.fields
    assert count(db, Cycle) == 0 and count(db, Review) == 0
    assert outbox(db) == []


def test_a_cycle_ending_before_it_starts_is_refused(db, world):
    """ends_on before starts_on is MILESTONE_OUTSIDE_CYCLE on ends_on."""
    with pytest.raises(PlatformError) as caught:
        open_elm_cycle(db, world, ends_on="2030-08-01")
    assert caught.value.fields == {"ends_on": ["Must be after starts_on."]}


def test_an_admin_reassigns_the_reviewer_and_it_is_an_event(db, world):
    """Eve names Tina as Tom's reviewer; reviews.reviewer_assigned has the change."""
    cycle = open_elm_cycle(db, world)
    tom = review_of(db, cycle, world.tom)
    changed = cycles.assign_reviewer(
        db, world.elm_admin.identity, tom["id"], world.tina.id, now=T0
    )
    assert changed["reviewer_id"] == world.tina.id
    [event] = outbox(db, events.REVIEWER_ASSIGNED)
    assert event["changes"]["reviewer_id"] == {
        "before": world.margo.id,
        "after": world.tina.id,
    }


def test_the_reviewee_cannot_be_their_own_reviewer(db, world):
    """REVIEWER_IS_REVIEWEE, and the review keeps its reviewer."""
    cycle = open_elm_cycle(db, world)
    tom = review_of(db, cycle, world.tom)
    with pytest.raises(PlatformError) as caught:
        cycles.assign_reviewer(
            db, world.elm_admin.identity, tom["id"], world.tom.id, now=T0
        )
    assert caught.value.code == "REVIEWER_IS_REVIEWEE"
    db.rollback()
    assert db.get(Review, tom["id"]).reviewer_id == world.margo.id


def test_only_an_admin_reassigns_and_only_to_their_own_staff(db, world):
    """The reviewer, another school's admin and a Yew reviewer are all refused."""
    cycle = open_elm_cycle(db, world)
    tom = review_of(db, cycle, world.tom)
    with pytest.raises(PlatformError) as caught:
        cycles.assign_reviewer(
            db, world.margo.identity, tom["id"], world.tina.id, now=T0
        )
    assert caught.value.code == "NOT_YOUR_STEP"
    with pytest.raises(NotFound):
        cycles.assign_reviewer(
            db, world.ash_admin.identity, tom["id"], world.amy.id, now=T0
        )
    with pytest.raises(PlatformError) as caught:
        cycles.assign_reviewer(
            db, world.elm_admin.identity, tom["id"], world.yan.id, now=T0
        )
    assert caught.value.code == "UNKNOWN_STAFF"


def test_a_late_joiner_gets_a_review_once(db, world):
    """add_review for a new teacher works; a second time is REVIEW_EXISTS."""
    cycle = open_elm_cycle(db, world)
    nia = seed_user(db, world.elm, "Nia", {"staff": [world.elm]}, manager=world.margo)
    review = cycles.add_review(
        db, world.elm_admin.identity, cycle["id"], {"reviewee_id": nia.id}, now=T0
    )
    assert review["reviewer_id"] == world.margo.id
    with pytest.raises(PlatformError) as caught:
        cycles.add_review(
            db, world.elm_admin.identity, cycle["id"], {"reviewee_id": nia.id}, now=T0
        )
    assert caught.value.code == "REVIEW_EXISTS"


def test_cycles_are_listed_to_admins_and_participants_only(db, world):
    """Elm's cycle: Eve, Tom and the trust admin see it; Yew's admin does not."""
    cycle = open_elm_cycle(db, world)
    for person in (world.elm_admin, world.tom, world.trust_admin):
        ids = [c["id"] for c in cycles.list_cycles(db, person.identity)["items"]]
        assert ids == [cycle["id"]]
    assert cycles.list_cycles(db, world.yew_admin.identity)["items"] == []
    with pytest.raises(NotFound):
        cycles.get_cycle(db, world.yan.identity, cycle["id"])


def test_cycles_covering_the_same_staff_may_not_overlap(db, world):
    """A second Elm cycle, or a trust cycle over Elm's dates, is CYCLE_OVERLAPS."""
    first = open_elm_cycle(db, world)
    with pytest.raises(PlatformError) as caught:
        open_elm_cycle(
            db,
            world,
            name="Again",
            starts_on="2031-07-01",
            ends_on="2032-06-30",
            objectives_due="2031-09-30",
            interim_due="2032-01-31",
            final_due="2032-06-15",
        )
    assert caught.value.code == "CYCLE_OVERLAPS"
    assert caught.value.fields == {"cycle_id": first["id"]}
    with pytest.raises(PlatformError) as caught:
        cycles.open_cycle(
            db, world.trust_admin.identity, dict(CYCLE, org_id=world.trust), now=T0
        )
    assert caught.value.code == "CYCLE_OVERLAPS"
    next_year = {
        "name": "2031-32",
        "starts_on": "2031-09-01",
        "ends_on": "2032-07-31",
        "objectives_due": "2031-10-31",
        "interim_due": "2032-02-28",
        "final_due": "2032-07-15",
    }
    data = dict(next_year, org_id=world.elm)
    made = cycles.open_cycle(db, world.elm_admin.identity, data, now=T0)
    assert made["reviews_created"] == 4
