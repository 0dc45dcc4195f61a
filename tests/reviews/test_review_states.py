"""The review state machine: each step by the right person, in order."""

from __future__ import annotations

import pytest

from plumbing.errors import NotFound, PlatformError, ValidationFailed
from services.reviews import events, reviews
from tests.service_support import outbox

from .conftest import T0
from .support import add_objective, open_elm_cycle, review_at, review_of, step


def code_of(call, *args) -> str:
    with pytest.raises(PlatformError) as caught:
        call(*args)
    return caught.value.code


def test_a_review_walks_every_state_to_closed_with_an_event_each(db, world):
    """Draft to closed, each step by its person, each an event in order."""
    cycle = open_elm_cycle(db, world)
    review = review_at(db, world, cycle, "closed")
    assert review["state"] == "closed"
    assert review["self_review_text"] == "My year"
    assert review["sign_off_comment"] == "Agreed"
    types = [e["type"] for e in outbox(db) if e["subject"]["id"] == review["id"]]
    assert types[-6:] == [
        events.OBJECTIVES_AGREED,
        events.INTERIM_REVIEW_RECORDED,
        events.SELF_REVIEW_SUBMITTED,
        events.FINAL_REVIEW_RECORDED,
        events.REVIEW_SIGNED_OFF,
        events.REVIEW_CLOSED,
    ]
    [signed] = outbox(db, events.REVIEW_SIGNED_OFF)
    assert signed["changes"]["comment"]["after"] == "Agreed"
    history = reviews.get_review(db, world.tom.identity, review["id"])["steps"]
    assert [s["to_state"] for s in history][-1] == "closed"


def test_a_step_out_of_order_is_invalid_transition(db, world):
    """Recording the final review of a draft says which state it needs."""
    cycle = open_elm_cycle(db, world)
    review = review_at(db, world, cycle, "objectives_agreed")
    with pytest.raises(PlatformError) as caught:
        step(db, world.margo, review, "record_final_review", "Too early")
    assert caught.value.code == "INVALID_TRANSITION"
    assert caught.value.fields == {
        "state": "objectives_agreed",
        "step": "record_final_review",
        "needs": "self_review_submitted",
    }
    assert outbox(db, events.FINAL_REVIEW_RECORDED) == []


def test_each_step_belongs_to_its_person(db, world):
    """The reviewee cannot record reviews; the reviewer cannot sign off."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    add_objective(db, world.margo, review)
    assert code_of(step, db, world.tom, review, "agree_objectives") == "NOT_YOUR_STEP"
    review = review_at(db, world, cycle, "final_review_done")
    assert code_of(step, db, world.margo, review, "sign_off") == "NOT_YOUR_STEP"
    denied = outbox(db, events.AUTHZ_DENIED)
    assert {e["data"]["action"] for e in denied} == {
        "reviews.agree_objectives",
        "reviews.sign_off",
    }


def test_objectives_must_exist_before_they_are_agreed(db, world):
    """agree_objectives on a review with none is OBJECTIVES_REQUIRED."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    assert code_of(step, db, world.margo, review, "agree_objectives") == (
        "OBJECTIVES_REQUIRED"
    )


def test_a_review_without_a_reviewer_waits_for_an_admin(db, world):
    """Margo has no manager: her review's steps are REVIEWER_REQUIRED."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.margo)
    code = code_of(step, db, world.elm_admin, review, "agree_objectives")
    assert code == "REVIEWER_REQUIRED"


def test_a_submitted_self_review_is_locked(db, world):
    """After submission, saving again is SELF_REVIEW_LOCKED and the text stays."""
    cycle = open_elm_cycle(db, world)
    review = review_at(db, world, cycle, "interim_review_done")
    reviews.save_self_review(db, world.tom.identity, review["id"], "Draft 1", now=T0)
    review = step(db, world.tom, review, "submit_self_review")
    assert review["self_review_text"] == "Draft 1"
    with pytest.raises(PlatformError) as caught:
        reviews.save_self_review(db, world.tom.identity, review["id"], "New", now=T0)
    assert caught.value.code == "SELF_REVIEW_LOCKED"
    assert code_of(step, db, world.tom, review, "submit_self_review", "Again") == (
        "SELF_REVIEW_LOCKED"
    )
    assert reviews.get_review(db, world.tom.identity, review["id"])[
        "self_review_text"
    ] == ("Draft 1")


def test_an_admin_reopens_a_closed_review_with_a_reason(db, world):
    """Reopen needs an admin and a reason; the review returns to final_review_done."""
    cycle = open_elm_cycle(db, world)
    review = review_at(db, world, cycle, "closed")
    assert code_of(step, db, world.margo, review, "reopen", "Typo") == "NOT_YOUR_STEP"
    with pytest.raises(ValidationFailed):
        step(db, world.elm_admin, review, "reopen")
    reopened = step(db, world.elm_admin, review, "reopen", "Wrong objective recorded")
    assert reopened["state"] == "final_review_done"
    assert reopened["closed_at"] is None and reopened["signed_off_at"] is None
    [event] = outbox(db, events.REVIEW_REOPENED)
    assert event["changes"]["reason"]["after"] == "Wrong objective recorded"
    history = reviews.get_review(db, world.elm_admin.identity, review["id"])["steps"]
    assert history[-1]["reason"] == "Wrong objective recorded"
    signed = step(db, world.tom, reopened, "sign_off", "Agreed again")
    assert signed["state"] == "signed_off"


def test_nobody_else_sees_a_review(db, world):
    """Tina (a colleague) and Ash's admin get NotFound with authz.denied."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    for person in (world.tina, world.ash_admin):
        with pytest.raises(NotFound):
            reviews.get_review(db, person.identity, review["id"])
    assert len(outbox(db, events.AUTHZ_DENIED)) == 2
    listed = reviews.list_reviews(db, world.tina.identity, {"cycle_id": cycle["id"]})
    assert [r["reviewee_id"] for r in listed["items"]] == [world.tina.id]
