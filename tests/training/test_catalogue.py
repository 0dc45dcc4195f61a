"""Courses, events and sessions: states, visibility, times and bad input."""

from __future__ import annotations

import pytest

from plumbing.errors import Forbidden, NotFound, ValidationFailed
from services.training import catalogue, directory, events
from services.training.exceptions import InvalidSessionTimes, InvalidState
from tests.service_support import outbox

from .conftest import DAY, T0, scheduled_event, sessions_from


def course_data(org_id, **changes):
    data = {"org_id": org_id, "title": "Phonics", "cpd_hours": "3", "fee": "0"}
    data.update(changes)
    return data


def test_a_course_goes_from_draft_to_published_to_archived(db, world):
    """Each move is allowed once, emitted, and archived courses stay archived."""
    lead = world.lead.identity
    course = catalogue.create_course(db, lead, course_data(world.elm), now=T0)
    assert course["status"] == "draft"
    catalogue.set_course_status(db, lead, course["id"], "published", now=T0)
    catalogue.set_course_status(db, lead, course["id"], "archived", now=T0)
    with pytest.raises(InvalidState):
        catalogue.set_course_status(db, lead, course["id"], "published", now=T0)
    with pytest.raises(InvalidState):
        catalogue.update_course(db, lead, course["id"], {"title": "X"}, now=T0)
    types = [event["type"] for event in outbox(db) if event["type"] != "authz.denied"]
    assert types == [
        events.COURSE_CREATED,
        events.COURSE_PUBLISHED,
        events.COURSE_ARCHIVED,
    ]


def test_staff_see_published_courses_of_their_school_and_trust_only(db, world):
    """Tom sees Elm's and Oak Trust's published courses, not drafts or Yew's."""
    lead, trust_lead = world.lead.identity, world.trust_lead.identity
    draft = catalogue.create_course(db, lead, course_data(world.elm), now=T0)
    school = catalogue.create_course(db, lead, course_data(world.elm), now=T0)
    shared = catalogue.create_course(db, trust_lead, course_data(world.trust), now=T0)
    other = catalogue.create_course(
        db, world.yew_lead.identity, course_data(world.yew), now=T0
    )
    for course, caller in ((school, lead), (shared, trust_lead)):
        catalogue.set_course_status(db, caller, course["id"], "published", now=T0)
    catalogue.set_course_status(
        db, world.yew_lead.identity, other["id"], "published", now=T0
    )

    listed = catalogue.list_courses(db, world.tom.identity)["items"]
    assert {course["id"] for course in listed} == {school["id"], shared["id"]}
    with pytest.raises(NotFound):
        catalogue.get_course(db, world.tom.identity, draft["id"])
    with pytest.raises(NotFound):
        catalogue.get_course(db, world.tom.identity, other["id"])
    denied = outbox(db, events.AUTHZ_DENIED)
    assert [event["data"]["action"] for event in denied] == [
        "training.get_course",
        "training.get_course",
    ]


def test_a_lead_cannot_add_a_course_to_another_schools_catalogue(db, world):
    """Lena (Elm) adding to Yew's catalogue is NotFound and authz.denied."""
    with pytest.raises(NotFound):
        catalogue.create_course(db, world.lead.identity, course_data(world.yew), now=T0)
    assert outbox(db, events.AUTHZ_DENIED)[0]["subject"]["id"] == world.yew
    assert outbox(db, events.COURSE_CREATED) == []


def test_staff_cannot_change_a_course_they_can_see(db, world):
    """Tom may read a published Elm course but updating it is Forbidden."""
    event = scheduled_event(db, world.lead, world.elm)
    with pytest.raises(Forbidden):
        catalogue.update_course(
            db, world.tom.identity, event["course_id"], {"title": "Mine"}, now=T0
        )


def test_negative_capacity_or_fee_is_refused_with_field_errors(db, world):
    """A negative fee and a negative capacity are VALIDATION_FAILED."""
    lead = world.lead.identity
    with pytest.raises(ValidationFailed) as caught:
        catalogue.create_course(db, lead, course_data(world.elm, fee="-1"), now=T0)
    assert "fee" in caught.value.fields
    course = catalogue.create_course(db, lead, course_data(world.elm), now=T0)
    with pytest.raises(ValidationFailed) as caught:
        catalogue.create_event(
            db,
            lead,
            {
                "course_id": course["id"],
                "capacity": -3,
                "sessions": sessions_from(T0 + DAY, (0, 2)),
            },
            now=T0,
        )
    assert "capacity" in caught.value.fields


@pytest.mark.parametrize(
    "hours",
    [((0, -2),), ((0, 3), (2, 3))],
    ids=["reversed", "overlapping"],
)
def test_reversed_or_overlapping_sessions_are_refused(db, world, hours):
    """Sessions ending before they start, or overlapping, are
    INVALID_SESSION_TIMES."""
    lead = world.lead.identity
    course = catalogue.create_course(db, lead, course_data(world.elm), now=T0)
    with pytest.raises(InvalidSessionTimes) as caught:
        catalogue.create_event(
            db,
            lead,
            {
                "course_id": course["id"],
                "capacity": 5,
                "sessions": sessions_from(T0 + DAY, *hours),
            },
            now=T0,
        )
    assert caught.value.code == "INVALID_SESSION_TIMES"


def test_times_without_a_zone_are_the_schools_and_stored_in_utc(db, world):
    """09:00 in London in July is 08:00 UTC, and shown as 09:00+01:00."""
    session = {
        "starts_at": "2030-07-01T09:00:00",
        "ends_at": "2030-07-01T12:00:00",
        "online_link": "https://meet.example.org/abc",
    }
    event = scheduled_event(db, world.lead, world.elm, sessions=[session])
    shown = event["sessions"][0]
    assert shown["starts_at"] == "2030-07-01T08:00:00+00:00"
    assert shown["local_starts_at"] == "2030-07-01T09:00:00+01:00"
    assert event["timezone"] == "Europe/London"


def test_scheduling_needs_a_published_course(db, world):
    """An event of a draft course cannot be scheduled."""
    lead = world.lead.identity
    course = catalogue.create_course(db, lead, course_data(world.elm), now=T0)
    event = catalogue.create_event(
        db,
        lead,
        {
            "course_id": course["id"],
            "capacity": 5,
            "sessions": sessions_from(T0 + DAY, (0, 2)),
        },
        now=T0,
    )
    with pytest.raises(InvalidState):
        catalogue.schedule_event(db, lead, event["id"], now=T0)


def test_a_trust_course_runs_in_a_school_of_the_trust_for_its_staff(db, world):
    """Olga's trust course run at Ash is visible to Amy but not to Yew's lead."""
    event = scheduled_event(db, world.trust_lead, world.trust, org_id=world.ash)
    assert event["org_id"] == world.ash
    assert catalogue.get_event(db, world.amy.identity, event["id"])["id"]
    with pytest.raises(NotFound):
        catalogue.get_event(db, world.yew_lead.identity, event["id"])


def test_sessions_cannot_move_once_the_event_has_begun(db, world):
    """Changing sessions after the first start is INVALID_STATE."""
    event = scheduled_event(db, world.lead, world.elm)
    begun = T0 + 7 * DAY + DAY / 24
    with pytest.raises(InvalidState):
        catalogue.update_event(
            db,
            world.lead.identity,
            event["id"],
            {"sessions": sessions_from(begun + DAY, (0, 2))},
            now=begun,
        )


def test_an_unknown_time_zone_is_refused(db, world):
    """A school's time zone must be a real IANA zone."""
    with pytest.raises(ValidationFailed) as caught:
        directory.update_settings(
            db, world.admin.identity, world.elm, {"timezone": "Mars/Olympus"}
        )
    assert "timezone" in caught.value.fields


def test_a_course_update_changes_only_the_fields_sent(db, world):
    """A new title leaves the fee and hours alone; the event lists one change."""
    lead = world.lead.identity
    course = catalogue.create_course(db, lead, course_data(world.elm, fee="30"), now=T0)
    updated = catalogue.update_course(
        db, lead, course["id"], {"title": "Early reading"}, now=T0
    )
    assert (updated["title"], updated["fee"], updated["cpd_hours"]) == (
        "Early reading",
        "30.00",
        3.0,
    )
    changes = outbox(db, events.COURSE_UPDATED)[0]["changes"]
    assert changes == {"title": {"before": "Phonics", "after": "Early reading"}}
