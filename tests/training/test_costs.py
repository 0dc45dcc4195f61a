"""External CPD requests, absences with cover, and budgets."""

from __future__ import annotations

import pytest

from plumbing.errors import NotFound, ValidationFailed
from services.training import costs, directory, events
from services.training.exceptions import (
    InvalidDates,
    NotYourReport,
    RequestExpired,
    SelfApproval,
)
from tests.service_support import outbox

from .conftest import T0


def external(**changes):
    data = {
        "provider": "Maths Hub",
        "title": "Mastery conference",
        "start_date": "2030-03-04",
        "end_date": "2030-03-05",
        "days": "2",
        "hours": "10",
        "fee": "150",
        "travel_cost": "40",
        "cover_needed": True,
        "rationale": "Our KS2 results in fractions",
        "intended_impact": "Better fraction teaching",
    }
    data.update(changes)
    return data


def test_an_external_request_approved_records_an_absence_with_cover(db, world):
    """Two days at 200 a day: cover 400, total 590, and an absence."""
    asked = costs.submit_external_request(db, world.tom.identity, external(), now=T0)
    assert (asked["status"], asked["cover_cost"], asked["total_cost"]) == (
        "pending_manager",
        "400.00",
        "590.00",
    )
    submitted = outbox(db, events.EXTERNAL_REQUEST_SUBMITTED)[0]["data"]
    assert submitted["rationale"] == "Our KS2 results in fractions"
    approved = costs.approve_external_request(
        db, world.manager.identity, asked["id"], now=T0
    )
    assert approved["status"] == "approved"
    absence = costs.list_absences(db, world.tom.identity)["items"][0]
    assert (absence["days"], absence["cover_cost"]) == (2.0, "400.00")
    assert absence["external_request_id"] == asked["id"]


def test_external_requests_are_decided_like_bookings(db, world):
    """Self-approval and another's report are refused; a decline keeps its reason."""
    directory.update_settings(
        db, world.lead.identity, world.elm, {"cpd_lead_approval": True}
    )
    asked = costs.submit_external_request(db, world.tom.identity, external(), now=T0)
    with pytest.raises(SelfApproval):
        costs.approve_external_request(db, world.tom.identity, asked["id"], now=T0)
    with pytest.raises(NotFound):
        costs.approve_external_request(db, world.yew_lead.identity, asked["id"], now=T0)
    staged = costs.approve_external_request(
        db, world.manager.identity, asked["id"], now=T0
    )
    assert staged["status"] == "pending_cpd_lead"
    with pytest.raises(NotYourReport):
        costs.decline_external_request(
            db, world.manager.identity, asked["id"], {"reason": "No"}, now=T0
        )
    declined = costs.decline_external_request(
        db, world.lead.identity, asked["id"], {"reason": "Budget spent"}, now=T0
    )
    assert (declined["status"], declined["decline_reason"]) == (
        "declined",
        "Budget spent",
    )


def test_bad_dates_and_negative_costs_are_refused(db, world):
    """An end before the start is INVALID_DATES; a negative fee a field error."""
    with pytest.raises(InvalidDates):
        costs.submit_external_request(
            db, world.tom.identity, external(end_date="2030-03-01"), now=T0
        )
    with pytest.raises(ValidationFailed) as caught:
        costs.submit_external_request(
            db, world.tom.identity, external(fee="-5"), now=T0
        )
    assert "fee" in caught.value.fields


def test_other_pd_absences_are_costed_at_the_daily_cover_rate(db, world):
    """Half a day with cover at 200 is 100; the lead sees it for the school."""
    costs.record_absence(
        db,
        world.tara.identity,
        {
            "start_date": "2030-02-10",
            "end_date": "2030-02-10",
            "days": "0.5",
            "reason": "Moderation meeting",
            "cover_needed": True,
        },
        now=T0,
    )
    listed = costs.list_absences(db, world.lead.identity, world.elm)["items"]
    assert [(a["user_id"], a["cover_cost"]) for a in listed] == [("tara", "100.00")]
    with pytest.raises(NotFound):
        costs.list_absences(db, world.yew_lead.identity, world.elm)


def test_an_external_request_undecided_when_its_training_starts_expires(db, world):
    """Deciding after the start date is REQUEST_EXPIRED, with its own event."""
    asked = costs.submit_external_request(db, world.tom.identity, external(), now=T0)
    late = T0.replace(year=2030, month=3, day=4)
    with pytest.raises(RequestExpired):
        costs.approve_external_request(
            db, world.manager.identity, asked["id"], now=late
        )
    expired = outbox(db, events.EXTERNAL_REQUEST_EXPIRED)
    assert [e["subject"]["id"] for e in expired] == [asked["id"]]
