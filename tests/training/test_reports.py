"""Reports: hours by person, department, school and trust; attendance;
spend against budget; targets not met; CSV export; scope."""

from __future__ import annotations

import csv
import io

import pytest

from plumbing.errors import Forbidden, NotFound
from services.training import bookings, costs, directory, records, reports

from .conftest import DAY, T0, scheduled_event

START = T0 + 7 * DAY


def informal(db, person, hours, day="2030-02-01"):
    records.add_cpd_record(
        db,
        person.identity,
        {
            "activity": "reading",
            "title": "A book",
            "activity_date": day,
            "hours": hours,
        },
        now=T0,
    )


@pytest.fixture
def activity(db, world):
    """Hours at Elm (Tom 3 in maths, Tara 2 in English) and Ash (Amy 4)."""
    for user, department in (("tom", "Maths"), ("tara", "English")):
        directory.update_staff_profile(
            db, world.lead.identity, user, {"department": department}
        )
    informal(db, world.tom, "3")
    informal(db, world.tara, "2")
    informal(db, world.amy, "4")
    informal(db, world.amy, "9", day="2029-06-01")  # the year before


def test_hours_add_up_by_person_department_school_and_trust(db, world, activity):
    """The trust lead's report groups the same hours four ways."""
    olga = world.trust_lead.identity

    def run(group):
        report = reports.hours_report(
            db, olga, {"group_by": group, "year": 2029}, now=T0
        )
        return report["items"]

    assert {(i["user_id"], i["hours"]) for i in run("person")} == {
        ("tom", 3.0),
        ("tara", 2.0),
        ("amy", 4.0),
    }
    assert {(i["department"], i["hours"]) for i in run("department")} == {
        ("Maths", 3.0),
        ("English", 2.0),
        ("", 4.0),
    }
    assert {(i["org_id"], i["hours"]) for i in run("school")} == {
        (world.elm, 5.0),
        (world.ash, 4.0),
    }
    assert [(i["trust_id"], i["hours"]) for i in run("trust")] == [(world.trust, 9.0)]


def test_a_school_lead_reports_on_their_school_only(db, world, activity):
    """Lena sees Elm's hours; asking for Ash is NotFound; staff are Forbidden."""
    report = reports.hours_report(
        db, world.lead.identity, {"group_by": "school", "year": 2029}, now=T0
    )
    assert [i["org_id"] for i in report["items"]] == [world.elm]
    with pytest.raises(NotFound):
        reports.hours_report(db, world.lead.identity, {"org_id": world.ash}, now=T0)
    with pytest.raises(Forbidden):
        reports.hours_report(db, world.tom.identity, {}, now=T0)


def test_attendance_and_no_show_rates_per_event(db, world):
    """Two booked, one attended and one absent: rates of a half each."""
    event = scheduled_event(db, world.lead, world.elm)
    lead = world.lead.identity
    made = [
        bookings.book_staff(db, lead, event["id"], user, {}, now=T0)
        for user in ("tom", "tara")
    ]
    records.record_attendance(
        db,
        lead,
        event["id"],
        event["sessions"][0]["id"],
        [
            {"booking_id": made[0]["id"], "status": "attended"},
            {"booking_id": made[1]["id"], "status": "absent"},
        ],
        now=START,
    )
    item = reports.attendance_report(db, lead, {"year": 2029}, now=T0)["items"][0]
    assert (item["booked"], item["attended"], item["absent"]) == (2, 1, 1)
    assert (item["attendance_rate"], item["no_show_rate"]) == (0.5, 0.5)


def test_spend_by_school_and_trust_against_budget(db, world):
    """Elm: fee 50 + cover 100 + travel 10 against 1,000, spent once begun;
    Ash has only a budget; the trust adds both up."""
    lead = world.trust_lead.identity
    costs.set_budget(db, lead, world.elm, {"year": 2029, "amount": 1000})
    costs.set_budget(db, lead, world.ash, {"year": 2029, "amount": 500})
    event = scheduled_event(db, world.lead, world.elm, fee="50")
    bookings.book_staff(
        db,
        world.lead.identity,
        event["id"],
        "tom",
        {"cover_needed": True, "travel_cost": "10"},
        now=T0,
    )
    report = reports.spend_report(db, lead, {"year": 2029}, now=T0)
    by_org = {item["org_id"]: item for item in report["items"]}
    elm = by_org[world.elm]
    assert (elm["fees"], elm["cover"], elm["travel"], elm["committed"]) == (
        "50.00",
        "100.00",
        "10.00",
        "160.00",
    )
    assert (elm["spent"], elm["remaining"]) == ("0.00", "840.00")
    assert by_org[world.ash]["committed"] == "0.00"
    [trust] = report["trusts"]
    assert (trust["trust_id"], trust["committed"], trust["budget"]) == (
        world.trust,
        "160.00",
        "1500.00",
    )
    later = reports.spend_report(db, lead, {"year": 2029}, now=START + DAY)
    assert later["trusts"][0]["spent"] == "160.00"


def test_targets_report_lists_who_has_not_met_their_target(db, world, activity):
    """Target 2.5 h for teachers: Tara (2 h) is short; Tom (3 h) is not."""
    records.set_hours_target(
        db,
        world.lead.identity,
        world.elm,
        {"job_role": "teacher", "year": 2029, "hours": "2.5"},
    )
    report = reports.targets_report(db, world.lead.identity, {"year": 2029}, now=T0)
    people = [(i["user_id"], i["shortfall"]) for i in report["items"]]
    assert people == [("margo", 2.5), ("tara", 0.5)]


def test_reports_export_as_csv_with_a_header(db, world, activity):
    """The CSV parses back to the report's rows."""
    exported = reports.export_csv(
        db,
        world.trust_lead.identity,
        "hours",
        {"group_by": "school", "year": 2029},
        now=T0,
    )
    rows = list(csv.DictReader(io.StringIO(exported["csv"])))
    assert {(row["org_id"], row["hours"]) for row in rows} == {
        (world.elm, "5.0"),
        (world.ash, "4.0"),
    }
    assert exported["filename"] == "hours-report.csv"


def test_hours_cover_exactly_the_date_range_asked(db, world, activity):
    """From 1 June to 1 July 2029 only Amy's earlier 9 hours count."""
    report = reports.hours_report(
        db,
        world.trust_lead.identity,
        {"group_by": "person", "start": "2029-06-01", "end": "2029-07-01"},
        now=T0,
    )
    assert [(i["user_id"], i["hours"]) for i in report["items"]] == [("amy", 9.0)]
    assert (report["start"], report["end"]) == ("2029-06-01", "2029-07-01")
