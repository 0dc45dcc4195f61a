"""Bookings: approvals, declines, expiry, places, the waitlist, costs."""

from __future__ import annotations

import pytest

from plumbing.errors import NotFound
from services.training import bookings, catalogue, costs, directory, events
from services.training.exceptions import (
    AlreadyBooked,
    BudgetExceeded,
    EventNotBookable,
    InvalidState,
    NotYourReport,
    RequestExpired,
    SelfApproval,
)
from tests.service_support import outbox

from .conftest import DAY, T0, add_person, scheduled_event


def types(db, prefix="training.booking"):
    return [e["type"] for e in outbox(db) if e["type"].startswith(prefix)]


def test_a_request_approved_by_the_line_manager_is_booked(db, world):
    """Tom asks, Margo approves: a place, its absence, and the events."""
    event = scheduled_event(db, world.lead, world.elm)
    asked = bookings.request_booking(db, world.tom.identity, event["id"], {}, now=T0)
    assert asked["status"] == "pending_manager"
    approved = bookings.approve_booking(db, world.manager.identity, asked["id"], now=T0)
    assert approved["status"] == "booked"
    assert types(db) == [
        events.BOOKING_REQUESTED,
        events.BOOKING_APPROVED,
        events.BOOKING_BOOKED,
    ]
    absence = outbox(db, events.ABSENCE_RECORDED)[0]["data"]
    assert (absence["user_id"], absence["days"]) == ("tom", 0.5)


def test_the_cpd_lead_approves_second_when_the_school_asks_for_it(db, world):
    """With cpd_lead_approval, Margo's approval waits for Lena's."""
    directory.update_settings(
        db, world.admin.identity, world.elm, {"cpd_lead_approval": True}
    )
    event = scheduled_event(db, world.lead, world.elm)
    asked = bookings.request_booking(db, world.tom.identity, event["id"], {}, now=T0)
    first = bookings.approve_booking(db, world.manager.identity, asked["id"], now=T0)
    assert first["status"] == "pending_cpd_lead"
    with pytest.raises(NotYourReport):
        bookings.approve_booking(db, world.manager.identity, asked["id"], now=T0)
    second = bookings.approve_booking(db, world.lead.identity, asked["id"], now=T0)
    assert second["status"] == "booked"
    stages = [e["data"]["stage"] for e in outbox(db, events.BOOKING_APPROVED)]
    assert stages == ["manager", "cpd_lead"]


def test_a_decline_keeps_its_reason_in_the_event(db, world):
    """Margo declines with a reason; the booking and the event carry it."""
    event = scheduled_event(db, world.lead, world.elm)
    asked = bookings.request_booking(db, world.tom.identity, event["id"], {}, now=T0)
    declined = bookings.decline_booking(
        db, world.manager.identity, asked["id"], {"reason": "Ofsted week"}, now=T0
    )
    assert (declined["status"], declined["decline_reason"]) == (
        "declined",
        "Ofsted week",
    )
    assert outbox(db, events.BOOKING_DECLINED)[0]["data"]["reason"] == "Ofsted week"


def test_nobody_approves_their_own_request(db, world):
    """Lena's own request, waiting for a CPD lead, is SELF_APPROVAL for her."""
    directory.update_settings(
        db, world.admin.identity, world.elm, {"cpd_lead_approval": True}
    )
    event = scheduled_event(db, world.lead, world.elm)
    asked = bookings.request_booking(db, world.lead.identity, event["id"], {}, now=T0)
    assert asked["status"] == "pending_cpd_lead"
    with pytest.raises(SelfApproval):
        bookings.approve_booking(db, world.lead.identity, asked["id"], now=T0)
    assert outbox(db, events.AUTHZ_DENIED)[-1]["data"]["action"] == (
        "training.approve_booking"
    )


def test_a_manager_cannot_approve_someone_elses_report(db, world):
    """Mike manages at Elm but not Tom: NOT_YOUR_REPORT; Yew's lead: NotFound."""
    mike = add_person(db, "mike", world.elm, {"line_manager": [world.elm]})
    event = scheduled_event(db, world.lead, world.elm)
    asked = bookings.request_booking(db, world.tom.identity, event["id"], {}, now=T0)
    with pytest.raises(NotYourReport) as caught:
        bookings.approve_booking(db, mike.identity, asked["id"], now=T0)
    assert caught.value.code == "NOT_YOUR_REPORT"
    with pytest.raises(NotFound):
        bookings.approve_booking(db, world.yew_lead.identity, asked["id"], now=T0)
    assert len(outbox(db, events.AUTHZ_DENIED)) == 2


def test_a_request_undecided_at_its_deadline_expires(db, world, clock):
    """Past the booking deadline the timer expires it; approving is too late."""
    deadline = (T0 + 2 * DAY).isoformat()
    event = scheduled_event(db, world.lead, world.elm, booking_deadline=deadline)
    tom = bookings.request_booking(db, world.tom.identity, event["id"], {}, now=T0)
    tara = bookings.request_booking(db, world.tara.identity, event["id"], {}, now=T0)
    assert bookings.expire_overdue(db, now=T0 + DAY) == 0
    later = T0 + 3 * DAY
    with pytest.raises(RequestExpired):
        bookings.approve_booking(db, world.manager.identity, tara["id"], now=later)
    assert bookings.expire_overdue(db, now=later) == 1
    assert bookings.get_booking(db, world.tom.identity, tom["id"])["status"] == (
        "expired"
    )
    assert len(outbox(db, events.BOOKING_EXPIRED)) == 2


def test_places_then_waitlist_then_promotion_in_join_order(db, world):
    """Capacity 2: four booked directly; cancelling promotes the first waiting."""
    event = scheduled_event(db, world.lead, world.elm, capacity=2)
    people = [world.tom, world.tara, world.manager]
    people.append(add_person(db, "walt", world.elm, {"staff": [world.elm]}))
    made = [
        bookings.book_staff(db, world.lead.identity, event["id"], p.user_id, {}, now=T0)
        for p in people
    ]
    assert [b["status"] for b in made] == ["booked", "booked", "waitlisted"] + [
        "waitlisted"
    ]
    assert [b["waitlist_position"] for b in made[2:]] == [1, 2]

    bookings.cancel_booking(db, world.tom.identity, made[0]["id"], now=T0)
    promoted = outbox(db, events.BOOKING_PROMOTED)
    assert [e["subject"]["id"] for e in promoted] == [made[2]["id"]]
    assert catalogue.get_event(db, world.lead.identity, event["id"])["booked"] == 2


def test_no_promotion_once_the_first_session_has_started(db, world):
    """A place freed after the start stays free; the waitlist stays waiting."""
    event = scheduled_event(db, world.lead, world.elm, capacity=1)
    first = bookings.book_staff(db, world.lead.identity, event["id"], "tom", {}, now=T0)
    waiting = bookings.book_staff(
        db, world.lead.identity, event["id"], "tara", {}, now=T0
    )
    started = T0 + 7 * DAY + DAY / 24
    bookings.cancel_booking(db, world.tom.identity, first["id"], now=started)
    assert outbox(db, events.BOOKING_PROMOTED) == []
    assert bookings.get_booking(db, world.tara.identity, waiting["id"])["status"] == (
        "waitlisted"
    )


def test_cancelled_or_started_events_cannot_be_booked(db, world):
    """EVENT_NOT_BOOKABLE for a cancelled event and for one already begun."""
    event = scheduled_event(db, world.lead, world.elm)
    with pytest.raises(EventNotBookable):
        bookings.request_booking(
            db, world.tom.identity, event["id"], {}, now=T0 + 8 * DAY
        )
    catalogue.cancel_event(db, world.lead.identity, event["id"], now=T0)
    with pytest.raises(EventNotBookable) as caught:
        bookings.request_booking(db, world.tom.identity, event["id"], {}, now=T0)
    assert caught.value.code == "EVENT_NOT_BOOKABLE"


def test_cancelling_an_event_cancels_its_bookings_and_absences(db, world):
    """Every booking is cancelled with reason event_cancelled; absences too."""
    event = scheduled_event(db, world.lead, world.elm)
    booked = bookings.book_staff(
        db, world.lead.identity, event["id"], "tom", {"cover_needed": True}, now=T0
    )
    asked = bookings.request_booking(db, world.tara.identity, event["id"], {}, now=T0)
    catalogue.cancel_event(db, world.lead.identity, event["id"], now=T0)
    cancelled = outbox(db, events.BOOKING_CANCELLED)
    assert {e["subject"]["id"] for e in cancelled} == {booked["id"], asked["id"]}
    assert {e["data"]["reason"] for e in cancelled} == {"event_cancelled"}
    assert len(outbox(db, events.ABSENCE_CANCELLED)) == 1
    assert outbox(db, events.EVENT_CANCELLED)


def test_true_cost_is_fee_plus_cover_plus_travel(db, world):
    """A 3-hour session is half a day of cover at 200: 50 + 100 + 12.50."""
    event = scheduled_event(db, world.lead, world.elm, fee="50")
    booked = bookings.book_staff(
        db,
        world.lead.identity,
        event["id"],
        "tom",
        {"cover_needed": True, "travel_cost": "12.50"},
        now=T0,
    )
    assert (booked["cover_cost"], booked["total_cost"]) == ("100.00", "162.50")


def test_an_approval_past_the_budget_warns_or_is_refused(db, world):
    """Budget 120, fee 50 each: the third place warns, or is refused."""
    lead = world.lead.identity
    costs.set_budget(db, lead, world.elm, {"year": 2029, "amount": 120})
    event = scheduled_event(db, world.lead, world.elm, capacity=5, fee="50")
    walt = add_person(db, "walt", world.elm, {"staff": [world.elm]}, manager="margo")
    first = bookings.book_staff(db, lead, event["id"], "tom", {}, now=T0)
    second = bookings.book_staff(db, lead, event["id"], "tara", {}, now=T0)
    assert first["warnings"] == second["warnings"] == []
    third = bookings.book_staff(db, lead, event["id"], walt.user_id, {}, now=T0)
    assert (third["status"], third["warnings"]) == ("booked", ["BUDGET_EXCEEDED"])

    bookings.cancel_booking(db, lead, third["id"], now=T0)
    directory.update_settings(db, lead, world.elm, {"budget_policy": "refuse"})
    asked = bookings.request_booking(db, walt.identity, event["id"], {}, now=T0)
    with pytest.raises(BudgetExceeded) as caught:
        bookings.approve_booking(db, world.manager.identity, asked["id"], now=T0)
    assert caught.value.fields["committed"] == "100.00"
    assert bookings.get_booking(db, lead, asked["id"])["status"] == "pending_manager"


def test_the_lead_of_the_school_running_a_trust_event_sees_its_bookings(db, world):
    """Olga books Tom (Elm) on a trust event at Ash; Ash's lead sees the booking."""
    ash_lead = add_person(db, "alan", world.ash, {"cpd_lead": [world.ash]})
    event = scheduled_event(db, world.trust_lead, world.trust, org_id=world.ash)
    booked = bookings.book_staff(
        db, world.trust_lead.identity, event["id"], "tom", {}, now=T0
    )
    listed = bookings.list_bookings(db, ash_lead.identity, event_id=event["id"])
    assert [b["id"] for b in listed["items"]] == [booked["id"]]
    assert bookings.get_booking(db, ash_lead.identity, booked["id"])["user_id"] == "tom"


def test_a_second_request_for_the_same_event_is_already_booked(db, world):
    """Tom cannot hold two live requests or places on one event."""
    event = scheduled_event(db, world.lead, world.elm)
    bookings.request_booking(db, world.tom.identity, event["id"], {}, now=T0)
    with pytest.raises(AlreadyBooked) as caught:
        bookings.request_booking(db, world.tom.identity, event["id"], {}, now=T0)
    assert caught.value.code == "ALREADY_BOOKED"


def test_a_larger_capacity_gives_the_new_places_to_the_waitlist_in_order(db, world):
    """Capacity 1 to 2 promotes the first waiting, not the second."""
    event = scheduled_event(db, world.lead, world.elm, capacity=1)
    lead = world.lead.identity
    walt = add_person(db, "walt", world.elm, {"staff": [world.elm]})
    made = [
        bookings.book_staff(db, lead, event["id"], user, {}, now=T0)
        for user in ("tom", "tara", walt.user_id)
    ]
    catalogue.update_event(db, lead, event["id"], {"capacity": 2}, now=T0)
    promoted = outbox(db, events.BOOKING_PROMOTED)
    assert [e["subject"]["id"] for e in promoted] == [made[1]["id"]]
    assert bookings.get_booking(db, lead, made[2]["id"])["status"] == "waitlisted"
    with pytest.raises(InvalidState):
        catalogue.update_event(db, lead, event["id"], {"capacity": 1}, now=T0)
