"""Objectives, progress updates and links to CPD records."""

from __future__ import annotations

import pytest

from plumbing.errors import NotFound, PlatformError, ValidationFailed
from services.reviews import events, objectives
from tests.service_support import outbox

from .conftest import T0
from .support import add_objective, open_elm_cycle, review_at, review_of


def test_an_objective_is_added_with_its_fields_and_an_event(db, world):
    """The reviewer adds a team objective; the event carries its text fields."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    objective = add_objective(db, world.margo, review, type="team")
    assert objective["status"] == "not_started"
    [event] = outbox(db, events.OBJECTIVE_ADDED)
    assert event["changes"]["description"]["after"].startswith("Improve")
    assert event["data"] == {"review_id": review["id"], "user_id": world.tom.id}


def test_progress_updates_set_the_objective_status(db, world):
    """Two updates by reviewee and reviewer; the latest status wins."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    objective = add_objective(db, world.tom, review)
    updates = (
        (world.tom, "on_track", "2030-11-01"),
        (world.margo, "at_risk", "2031-01-10"),
    )
    for person, status, on in updates:
        objectives.record_progress(
            db,
            person.identity,
            objective["id"],
            {"on": on, "status": status, "note": "Noted"},
            now=T0,
        )
    found = objectives.get_objective(db, world.tom.identity, objective["id"])
    assert found["status"] == "at_risk"
    assert [p["status"] for p in found["progress"]] == ["on_track", "at_risk"]
    assert len(outbox(db, events.PROGRESS_RECORDED)) == 2


def test_cpd_records_are_linked_by_id(db, world):
    """update_objective keeps CPD record ids, reported in objective_updated."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    objective = add_objective(db, world.margo, review)
    changed = objectives.update_objective(
        db, world.margo.identity, objective["id"], {"cpd_record_ids": ["cpd-1"]}, now=T0
    )
    assert changed["cpd_record_ids"] == ["cpd-1"]
    found = objectives.get_objective(db, world.tom.identity, objective["id"])
    assert found["cpd_record_ids"] == ["cpd-1"] and found["evidence"] == []
    [event] = outbox(db, events.OBJECTIVE_UPDATED)
    assert event["changes"] == {"cpd_record_ids": {"before": [], "after": ["cpd-1"]}}


def test_the_reviewee_edits_objectives_only_while_the_review_is_a_draft(db, world):
    """After agreement Tom gets OBJECTIVES_LOCKED; Margo may still add one."""
    cycle = open_elm_cycle(db, world)
    review = review_at(db, world, cycle, "objectives_agreed")
    with pytest.raises(PlatformError) as caught:
        add_objective(db, world.tom, review)
    assert caught.value.code == "OBJECTIVES_LOCKED"
    add_objective(db, world.margo, review)


def test_an_objective_due_outside_the_cycle_is_refused(db, world):
    """A due date after the cycle ends is a field error."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    with pytest.raises(ValidationFailed) as caught:
        add_objective(db, world.margo, review, due_on="2032-01-01")
    assert "due_on" in caught.value.fields


def test_an_outsider_cannot_read_or_add_objectives(db, world):
    """Tina and Ash's admin get NotFound for Tom's objective and review."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    objective = add_objective(db, world.margo, review)
    for person in (world.tina, world.ash_admin):
        with pytest.raises(NotFound):
            objectives.get_objective(db, person.identity, objective["id"])
        with pytest.raises(NotFound):
            add_objective(db, person, review)
