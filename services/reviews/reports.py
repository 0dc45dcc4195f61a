"""Per-cycle reports: reviews in each state and overdue against the
milestones, per school and in total; objectives by status; a CSV export.

Who sees what: the admins of a school see their school; a trust admin sees
every school of the trust; nobody else sees others' reviews. A review is
overdue when today is past a milestone and it has not reached the state
that milestone asks for: objectives agreed by ``objectives_due``, the
interim review by ``interim_due``, the final review by ``final_due``. All
reviews of a cycle share its milestones, so the report needs only two
grouped queries, whatever the size of the trust.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select

from plumbing.database import ServiceSession
from plumbing.identity import Identity
from services.reviews import directory, events
from services.reviews.access import admin_orgs, refuse
from services.reviews.models import (
    OBJECTIVE_STATUSES,
    REVIEW_STATES,
    Cycle,
    DirectoryOrganisation,
    Objective,
    Review,
)

# Milestone, and the state a review must have reached by then.
MILESTONE_STATES = (
    ("objectives_due", "objectives_agreed"),
    ("interim_due", "interim_review_done"),
    ("final_due", "final_review_done"),
)
OVERDUE_KEYS = {
    "objectives_due": "objectives",
    "interim_due": "interim",
    "final_due": "final",
}


def _scope(
    db: ServiceSession, caller: Identity, cycle_id: Any, action: str
) -> tuple[Cycle, set[str]]:
    cycle = db.get(Cycle, cycle_id) if isinstance(cycle_id, str) else None
    orgs = set()
    if cycle is not None:
        orgs = directory.schools_of(db, cycle.org_id) & admin_orgs(caller)
    if cycle is None or not orgs:
        raise refuse(db, caller, "cycle", cycle_id, action)
    return cycle, orgs


def _overdue(cycle: Cycle, states: dict[str, int], today: date) -> dict[str, int]:
    """How many reviews are behind each milestone already passed; ``total``
    counts each late review once (behind the latest passed milestone)."""
    answer = {"objectives": 0, "interim": 0, "final": 0, "total": 0}
    for milestone, needed in MILESTONE_STATES:
        if today <= getattr(cycle, milestone):
            continue
        behind = REVIEW_STATES[: REVIEW_STATES.index(needed)]
        count = sum(states.get(state, 0) for state in behind)
        answer[OVERDUE_KEYS[milestone]] = count
        answer["total"] = count
    return answer


def cycle_report(
    db: ServiceSession, caller: Identity, cycle_id: Any, *, today: date
) -> dict[str, Any]:
    """Per organisation in the caller's reach: reviews per state, overdue,
    objectives per status; and the totals across them."""
    cycle, orgs = _scope(db, caller, cycle_id, "reviews.get_cycle_report")
    states: dict[str, dict[str, int]] = {org: {} for org in orgs}
    rows = db.execute(
        select(Review.org_id, Review.state, func.count())
        .where(Review.cycle_id == cycle.id, Review.org_id.in_(orgs))
        .group_by(Review.org_id, Review.state)
    )
    for org_id, state, count in rows:
        states[org_id][state] = count
    statuses: dict[str, dict[str, int]] = {org: {} for org in orgs}
    rows = db.execute(
        select(Review.org_id, Objective.status, func.count())
        .join(Review, Objective.review_id == Review.id)
        .where(Review.cycle_id == cycle.id, Review.org_id.in_(orgs))
        .group_by(Review.org_id, Objective.status)
    )
    for org_id, status, count in rows:
        statuses[org_id][status] = count
    names = dict(
        db.execute(
            select(DirectoryOrganisation.id, DirectoryOrganisation.name).where(
                DirectoryOrganisation.id.in_(orgs)
            )
        )
        .tuples()
        .all()
    )
    parts = [
        _part(cycle, org, names.get(org), states[org], statuses[org], today)
        for org in sorted(orgs, key=lambda o: (names.get(o) or "", o))
        if states[org]
    ]
    total_states = _sum(p["reviews_by_state"] for p in parts)
    total_statuses = _sum(p["objectives_by_status"] for p in parts)
    return {
        "cycle": {"id": cycle.id, "org_id": cycle.org_id, "name": cycle.name},
        "today": today.isoformat(),
        "organisations": parts,
        "total": _part(cycle, None, None, total_states, total_statuses, today),
    }


def _sum(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in counts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


def _part(
    cycle: Cycle,
    org_id: str | None,
    name: str | None,
    states: dict[str, int],
    statuses: dict[str, int],
    today: date,
) -> dict[str, Any]:
    return {
        "org_id": org_id,
        "name": name,
        "reviews": sum(states.values()),
        "reviews_by_state": {state: states.get(state, 0) for state in REVIEW_STATES},
        "overdue": _overdue(cycle, states, today),
        "objectives_by_status": {
            status: statuses.get(status, 0) for status in OBJECTIVE_STATUSES
        },
    }


CSV_COLUMNS = (
    "org_id",
    "name",
    "reviews",
    *REVIEW_STATES,
    "overdue_objectives",
    "overdue_interim",
    "overdue_final",
    "overdue_total",
    *(f"objectives_{status}" for status in OBJECTIVE_STATUSES),
)


def export_cycle_report(
    db: ServiceSession, caller: Identity, cycle_id: Any, *, now: datetime
) -> dict[str, Any]:
    """The report as CSV, one row per organisation and a ``total`` row;
    emits ``reviews.report_exported``."""
    report = cycle_report(db, caller, cycle_id, today=now.date())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for part in [*report["organisations"], report["total"]]:
        writer.writerow(
            [
                part["org_id"] or "total",
                _safe_cell(part["name"] or ""),
                part["reviews"],
                *(part["reviews_by_state"][s] for s in REVIEW_STATES),
                *(part["overdue"][k] for k in ("objectives", "interim", "final")),
                part["overdue"]["total"],
                *(part["objectives_by_status"][s] for s in OBJECTIVE_STATUSES),
            ]
        )
    db.emit(
        events.REPORT_EXPORTED,
        subject_type="cycle",
        subject_id=report["cycle"]["id"],
        org_id=report["cycle"]["org_id"],
        data={"organisations": [p["org_id"] for p in report["organisations"]]},
    )
    db.commit()
    return {
        "filename": f"cycle-{report['cycle']['id']}-report.csv",
        "content_type": "text/csv",
        "csv": buffer.getvalue(),
    }


def _safe_cell(text: str) -> str:
    """Keep a spreadsheet from reading a name as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
