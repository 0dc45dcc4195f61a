"""Cycle reports: states, overdue against milestones, objectives, CSV."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from plumbing.errors import NotFound
from services.reviews import cycles, events, objectives, reports
from tests.service_support import outbox

from .conftest import CYCLE, T0
from .support import add_objective, review_at, review_of, step


@pytest.fixture
def trust_cycle(db, world):
    """A trust-wide cycle in which Tom's review has one objective, agreed."""
    data = dict(CYCLE, org_id=world.trust)
    cycle = cycles.open_cycle(db, world.trust_admin.identity, data, now=T0)
    review_at(db, world, cycle, "objectives_agreed")
    return cycle


def by_org(report):
    return {part["org_id"]: part for part in report["organisations"]}


def test_a_trust_admin_sees_every_school_and_the_totals(db, world, trust_cycle):
    """Elm, Ash and the trust's team, each with states; totals add up."""
    report = reports.cycle_report(
        db, world.trust_admin.identity, trust_cycle["id"], today=date(2030, 9, 10)
    )
    parts = by_org(report)
    assert set(parts) == {world.elm, world.ash, world.trust}
    elm = parts[world.elm]
    assert elm["name"] == "Elm Primary"
    assert elm["reviews_by_state"]["draft"] == 3
    assert elm["reviews_by_state"]["objectives_agreed"] == 1
    assert elm["objectives_by_status"]["not_started"] == 1
    assert report["total"]["reviews"] == 7
    assert report["total"]["overdue"]["total"] == 0


def test_reviews_behind_a_passed_milestone_are_overdue(db, world, trust_cycle):
    """After objectives_due, drafts are overdue; after interim_due, Tom too."""
    admin = world.trust_admin.identity
    early = reports.cycle_report(db, admin, trust_cycle["id"], today=date(2030, 11, 1))
    assert by_org(early)[world.elm]["overdue"] == {
        "objectives": 3,
        "interim": 0,
        "final": 0,
        "total": 3,
    }
    later = reports.cycle_report(db, admin, trust_cycle["id"], today=date(2031, 3, 1))
    assert by_org(later)[world.elm]["overdue"]["interim"] == 4
    assert later["total"]["overdue"]["total"] == 7


def test_a_school_admin_sees_only_their_school(db, world, trust_cycle):
    """Eve's report of the trust cycle has Elm alone."""
    report = reports.cycle_report(
        db, world.elm_admin.identity, trust_cycle["id"], today=date(2030, 9, 10)
    )
    assert list(by_org(report)) == [world.elm]
    assert report["total"]["reviews"] == 4


def test_nobody_else_sees_the_report(db, world, trust_cycle):
    """A teacher, a line manager and Yew's admin get NotFound and authz.denied."""
    for person in (world.tom, world.margo, world.yew_admin):
        with pytest.raises(NotFound):
            reports.cycle_report(
                db, person.identity, trust_cycle["id"], today=date(2030, 9, 10)
            )
    assert len(outbox(db, events.AUTHZ_DENIED)) == 3


def test_objectives_are_counted_by_status(db, world, trust_cycle):
    """Progress at risk moves Tom's objective from not_started to at_risk."""
    review = review_of(db, trust_cycle, world.tom)
    objective = add_objective(db, world.margo, review)
    objectives.record_progress(
        db,
        world.margo.identity,
        objective["id"],
        {"on": "2030-12-01", "status": "at_risk"},
        now=T0,
    )
    report = reports.cycle_report(
        db, world.elm_admin.identity, trust_cycle["id"], today=date(2030, 9, 10)
    )
    statuses = report["total"]["objectives_by_status"]
    assert statuses["not_started"] == 1 and statuses["at_risk"] == 1


def test_the_csv_export_has_a_row_per_school_and_a_total(db, world, trust_cycle):
    """The CSV parses back to the report's figures; the export is an event."""
    exported = reports.export_cycle_report(
        db, world.trust_admin.identity, trust_cycle["id"], now=T0
    )
    rows = list(csv.DictReader(io.StringIO(exported["csv"])))
    assert [row["org_id"] for row in rows][-1] == "total"
    assert {row["name"] for row in rows[:-1]} == {
        "Elm Primary",
        "Ash Academy",
        "Oak Trust",
    }
    assert rows[-1]["reviews"] == "7"
    assert rows[-1]["objectives_agreed"] == "1"
    [event] = outbox(db, events.REPORT_EXPORTED)
    assert event["subject"] == {"type": "cycle", "id": trust_cycle["id"]}


def test_the_report_follows_reviews_through_their_states(db, world, trust_cycle):
    """Tom's review signed off shows in that column, not in objectives_agreed."""
    review = review_of(db, trust_cycle, world.tom)
    review = step(db, world.margo, review, "record_interim_review", "Fine")
    review = step(db, world.tom, review, "submit_self_review", "Mine")
    review = step(db, world.margo, review, "record_final_review", "Done")
    step(db, world.tom, review, "sign_off")
    report = reports.cycle_report(
        db, world.elm_admin.identity, trust_cycle["id"], today=date(2031, 7, 20)
    )
    states = report["total"]["reviews_by_state"]
    assert states["signed_off"] == 1 and states["objectives_agreed"] == 0
    assert report["total"]["overdue"]["final"] == 3
