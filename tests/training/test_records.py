"""Attendance, completing events, CPD records and targets, evaluation."""

from __future__ import annotations

import pytest

from plumbing.errors import NotFound
from services.training import bookings, events, records
from services.training.exceptions import InvalidState, NotAnAttendee
from tests.service_support import outbox

from .conftest import DAY, T0, scheduled_event, sessions_from

START = T0 + 7 * DAY


def two_session_event(db, world):
    """Tom, Tara and Margo booked on a 6-hour course of two sessions."""
    sessions = sessions_from(START, (0, 3), (24, 3))
    event = scheduled_event(
        db, world.lead, world.elm, capacity=5, sessions=sessions, hours="6"
    )
    made = {
        user: bookings.book_staff(
            db, world.lead.identity, event["id"], user, {}, now=T0
        )
        for user in ("tom", "tara", "margo")
    }
    return event, made


def mark(db, world, event, index, statuses, when):
    session = event["sessions"][index]["id"]
    entries = [{"booking_id": b["id"], "status": s} for b, s in statuses]
    return records.record_attendance(
        db, world.lead.identity, event["id"], session, entries, now=when
    )


def test_completing_an_event_gives_attendees_hours_by_sessions_attended(db, world):
    """Tom both sessions: 6 h; Tara one full, one partial: 4.5 h; Margo none."""
    event, made = two_session_event(db, world)
    tom, tara, margo = made["tom"], made["tara"], made["margo"]
    mark(
        db,
        world,
        event,
        0,
        [(tom, "attended"), (tara, "attended"), (margo, "absent")],
        START,
    )
    mark(
        db,
        world,
        event,
        1,
        [(tom, "attended"), (tara, "partial"), (margo, "absent")],
        START + DAY,
    )
    with pytest.raises(InvalidState):
        records.complete_event(db, world.lead.identity, event["id"], now=START)
    done = records.complete_event(
        db, world.lead.identity, event["id"], now=START + 2 * DAY
    )
    assert done["cpd_records"] == 2
    created = outbox(db, events.CPD_RECORD_CREATED)
    hours = {
        e["changes"]["user_id"]["after"]: e["changes"]["hours"]["after"]
        for e in created
    }
    assert hours == {"tom": 6.0, "tara": 4.5}
    assert outbox(db, events.EVENT_COMPLETED)


def test_attendance_waits_for_the_session_to_start(db, world):
    """Marking before the session starts is INVALID_STATE."""
    event, made = two_session_event(db, world)
    with pytest.raises(InvalidState):
        mark(db, world, event, 0, [(made["tom"], "attended")], T0)


def test_history_covers_every_kind_with_progress_against_the_target(db, world):
    """A course, a webinar and reading add up against a 10-hour target."""
    event, made = two_session_event(db, world)
    mark(db, world, event, 0, [(made["tom"], "attended")], START)
    mark(db, world, event, 1, [(made["tom"], "attended")], START + DAY)
    records.complete_event(db, world.lead.identity, event["id"], now=START + 2 * DAY)
    tom = world.tom.identity
    records.add_cpd_record(
        db,
        tom,
        {
            "activity": "webinar",
            "title": "Retrieval practice",
            "activity_date": "2030-02-01",
            "hours": "1.5",
            "reflection": "Try low-stakes quizzes.",
            "evidence_links": ["https://example.org/certificate"],
        },
        now=T0,
    )
    records.set_hours_target(
        db,
        world.trust_lead.identity,
        world.trust,
        {"job_role": "teacher", "year": 2029, "hours": 10},
    )
    progress = records.target_progress(db, tom, 2029)
    assert (progress["hours"], progress["target"], progress["met"]) == (
        7.5,
        10.0,
        False,
    )
    history = records.cpd_history(db, world.manager.identity, "tom")
    assert {r["kind"] for r in history["records"]} == {"internal", "informal"}
    assert history["years"] == [
        {"year": 2029, "hours": 7.5, "target": 10.0, "met": False}
    ]
    with pytest.raises(NotFound):
        records.cpd_history(db, world.yew_lead.identity, "tom")


def test_only_attendees_evaluate_and_the_follow_up_comes_weeks_later(db, world):
    """Margo (absent) cannot evaluate; Tom can, and follows up six weeks on."""
    event, made = two_session_event(db, world)
    mark(
        db,
        world,
        event,
        0,
        [(made["tom"], "attended"), (made["margo"], "absent")],
        START,
    )
    after = START + 2 * DAY
    with pytest.raises(NotAnAttendee):
        records.submit_evaluation(
            db, world.manager.identity, made["margo"]["id"], {"rating": 5}, now=after
        )
    evaluation = records.submit_evaluation(
        db,
        world.tom.identity,
        made["tom"]["id"],
        {"rating": 4, "will_change": "Seating plans"},
        now=after,
    )
    assert evaluation["followup_due"] == (after + 42 * DAY).date().isoformat()
    with pytest.raises(InvalidState):
        records.submit_follow_up(
            db, world.tom.identity, made["tom"]["id"], {"impact": "Calmer"}, now=after
        )
    assert records.request_due_follow_ups(db, now=after + 42 * DAY) == 1
    assert records.request_due_follow_ups(db, now=after + 43 * DAY) == 0
    assert records.list_follow_ups(db, world.tom.identity, now=after + 42 * DAY)[
        "items"
    ]
    records.submit_follow_up(
        db,
        world.tom.identity,
        made["tom"]["id"],
        {"impact": "Calmer"},
        now=after + 42 * DAY,
    )
    assert outbox(db, events.EVALUATION_FOLLOWED_UP)[0]["data"]["impact"] == "Calmer"
    with pytest.raises(NotFound):
        records.submit_evaluation(
            db, world.tara.identity, made["tom"]["id"], {"rating": 1}, now=after
        )
