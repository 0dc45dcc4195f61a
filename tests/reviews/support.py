"""Helpers shared by the reviews tests."""

from __future__ import annotations

from typing import Any

from plumbing.database import ServiceSession
from services.reviews import cycles, objectives, reviews

from .conftest import CYCLE, T0, World

OBJECTIVE = {
    "type": "personal",
    "description": "Improve questioning in year 5 maths",
    "success_criteria": "Observed open questioning in two lessons",
    "due_on": "2031-06-30",
}


def open_elm_cycle(db: ServiceSession, world: World, **extra: Any) -> dict[str, Any]:
    data = dict(CYCLE, org_id=world.elm, **extra)
    return cycles.open_cycle(db, world.elm_admin.identity, data, now=T0)


def review_of(db: ServiceSession, cycle: dict[str, Any], person: Any) -> dict[str, Any]:
    found = reviews.list_reviews(db, person.identity, {"cycle_id": cycle["id"]})
    mine = [r for r in found["items"] if r["reviewee_id"] == person.id]
    assert len(mine) == 1
    return mine[0]


def step(
    db: ServiceSession, person: Any, review: dict[str, Any], name: str, text=None
) -> dict[str, Any]:
    return reviews.take_step(db, person.identity, review["id"], name, text, now=T0)


def add_objective(
    db: ServiceSession, person: Any, review: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return objectives.add_objective(
        db, person.identity, review["id"], dict(OBJECTIVE, **extra), now=T0
    )


def review_at(
    db: ServiceSession, world: World, cycle: dict[str, Any], state: str
) -> dict[str, Any]:
    """Tom's review (reviewed by Margo) walked up to ``state``."""
    review = review_of(db, cycle, world.tom)
    path = [
        ("objectives_agreed", world.margo, "agree_objectives", None),
        ("interim_review_done", world.margo, "record_interim_review", "Good start"),
        ("self_review_submitted", world.tom, "submit_self_review", "My year"),
        ("final_review_done", world.margo, "record_final_review", "Strong year"),
        ("signed_off", world.tom, "sign_off", "Agreed"),
        ("closed", world.margo, "close", None),
    ]
    if state == "draft":
        return review
    add_objective(db, world.margo, review)
    for target, person, name, text in path:
        review = step(db, person, review, name, text)
        if target == state:
            return review
    raise AssertionError(state)
