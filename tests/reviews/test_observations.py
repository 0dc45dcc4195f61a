"""Observations: drafts, sharing, acknowledgement, visibility and views."""

from __future__ import annotations

import pytest

from plumbing.errors import NotFound, PlatformError
from services.reviews import events, observations
from tests.service_support import outbox

from .conftest import T0
from .support import open_elm_cycle

OBSERVATION = {
    "type": "formal",
    "observed_on": "2030-11-12",
    "focus": "Questioning in maths",
    "strengths": "Clear modelling",
    "areas_for_development": "Wait time",
    "actions": "Try think-pair-share",
}


def observe(db, observer, observed, **extra):
    data = dict(OBSERVATION, observed_id=observed.id, **extra)
    return observations.create_observation(db, observer.identity, data, now=T0)


def test_a_draft_is_seen_by_its_observer_only(db, world):
    """Until shared, Tom (observed) gets NotFound and lists nothing."""
    made = observe(db, world.margo, world.tom)
    assert made["state"] == "draft"
    with pytest.raises(NotFound):
        observations.get_observation(db, world.tom.identity, made["id"], now=T0)
    assert observations.list_observations(db, world.tom.identity)["items"] == []
    own = observations.get_observation(db, world.margo.identity, made["id"], now=T0)
    assert own["strengths"] == "Clear modelling"
    assert outbox(db, events.OBSERVATION_VIEWED) == []


def test_a_shared_observation_is_acknowledged_with_a_response(db, world):
    """Margo shares; Tom acknowledges and responds; edits are then refused."""
    made = observe(db, world.margo, world.tom)
    observations.share_observation(db, world.margo.identity, made["id"], now=T0)
    done = observations.acknowledge_observation(
        db, world.tom.identity, made["id"], "I will try it", now=T0
    )
    assert done["state"] == "acknowledged"
    assert done["response"] == "I will try it"
    [event] = outbox(db, events.OBSERVATION_ACKNOWLEDGED)
    assert event["changes"]["response"]["after"] == "I will try it"
    with pytest.raises(PlatformError) as caught:
        observations.update_observation(
            db, world.margo.identity, made["id"], {"focus": "Other"}, now=T0
        )
    assert caught.value.code == "OBSERVATION_ALREADY_SHARED"


def test_only_the_observed_teacher_acknowledges_a_shared_observation(db, world):
    """A draft is out of the teacher's sight; the observer acknowledging is refused."""
    made = observe(db, world.margo, world.tom)
    with pytest.raises(NotFound):
        observations.acknowledge_observation(db, world.tom.identity, made["id"], now=T0)
    observations.share_observation(db, world.margo.identity, made["id"], now=T0)
    with pytest.raises(PlatformError) as caught:
        observations.acknowledge_observation(
            db, world.margo.identity, made["id"], now=T0
        )
    assert caught.value.code == "NOT_YOUR_STEP"


@pytest.mark.parametrize(
    "visibility, reviewer_sees, leader_sees",
    [
        ("participants", False, False),
        ("reviewer", True, False),
        ("leaders", True, True),
    ],
)
def test_visibility_decides_who_else_reads_it(
    db, world, visibility, reviewer_sees, leader_sees
):
    """Tina observes Tom; Margo (his reviewer) and Eve (admin) read it by level."""
    open_elm_cycle(db, world)
    made = observe(db, world.tina, world.tom, visibility=visibility)
    observations.share_observation(db, world.tina.identity, made["id"], now=T0)
    for person, allowed in (
        (world.margo, reviewer_sees),
        (world.elm_admin, leader_sees),
    ):
        listed = observations.list_observations(db, person.identity)["items"]
        assert bool(listed) is allowed
        if allowed:
            observations.get_observation(db, person.identity, made["id"], now=T0)
        else:
            with pytest.raises(NotFound):
                observations.get_observation(db, person.identity, made["id"], now=T0)
    with pytest.raises(NotFound):
        observations.get_observation(db, world.ash_admin.identity, made["id"], now=T0)


def test_every_view_by_another_is_an_event_the_teacher_can_list(db, world):
    """Reads by Tom and Eve are events and listed views; the observer's are not."""
    made = observe(db, world.margo, world.tom, visibility="leaders")
    observations.share_observation(db, world.margo.identity, made["id"], now=T0)
    for person in (world.margo, world.tom, world.elm_admin, world.margo):
        observations.get_observation(db, person.identity, made["id"], now=T0)
    viewed = outbox(db, events.OBSERVATION_VIEWED)
    assert [e["data"]["viewer_id"] for e in viewed] == [
        world.tom.id,
        world.elm_admin.id,
    ]
    listed = observations.list_observation_views(db, world.tom.identity, made["id"])
    assert [v["viewer_id"] for v in listed["items"]] == [
        world.tom.id,
        world.elm_admin.id,
    ]
    with pytest.raises(PlatformError) as caught:
        observations.list_observation_views(db, world.elm_admin.identity, made["id"])
    assert caught.value.code == "NOT_YOUR_STEP"


def test_lists_carry_no_free_text(db, world):
    """A list entry has no strengths, areas, actions, focus or response."""
    made = observe(db, world.margo, world.tom)
    observations.share_observation(db, world.margo.identity, made["id"], now=T0)
    [item] = observations.list_observations(db, world.tom.identity)["items"]
    assert not {"focus", "strengths", "areas_for_development", "actions"} & set(item)


def test_nobody_observes_staff_of_another_school_or_themself(db, world):
    """Ash's teacher observing Tom is NotFound; observing oneself is refused."""
    with pytest.raises(NotFound):
        observe(db, world.amy, world.tom)
    with pytest.raises(PlatformError) as caught:
        observe(db, world.tom, world.tom)
    assert caught.value.code == "VALIDATION_FAILED"
