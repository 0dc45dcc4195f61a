"""Reports, each one SQL aggregate query, and their CSV export.

- CPD hours per person, department, school or trust for a date range;
- attendance and no-show rates per event;
- spend by school (fees, cover, travel) against budget for an academic year;
- who has not met their hours target for an academic year.

A report covers the organisations the caller reads (CPD lead, school or
trust admin, auditor), or one of them and its schools when ``org_id`` is
given. The database adds up; Python only formats the rows.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    and_,
    case,
    cast,
    func,
    literal,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.orm import QueryableAttribute, aliased

from plumbing.database import ServiceSession
from plumbing.identity import Identity
from services.training import access
from services.training.costs import academic_year, year_bounds
from services.training.formatting import hours, money
from services.training.models import (
    Absence,
    Attendance,
    Booking,
    Budget,
    Course,
    CpdRecord,
    Event,
    ExternalRequest,
    HoursTarget,
    Organisation,
    Session,
    Staff,
)
from services.training.schemas import ReportSchema, load

REPORTS = ("hours", "attendance", "spend", "targets")


def scope(
    db: ServiceSession, caller: Identity, org_id: str | None, name: str
) -> list[str]:
    """The organisations a report covers; NotFound for one out of reach."""
    readable = access.reader_orgs(caller)
    if org_id is None:
        if not readable:
            access.forbidden(
                db, caller, "report", name, f"training.report_{name}", caller.org_id
            )
        return sorted(readable)
    if org_id not in readable:
        access.not_found(db, caller, "organisation", org_id, f"training.report_{name}")
    schools = db.scalars(
        select(Organisation.id).where(Organisation.parent_trust_id == org_id)
    )
    return sorted({org_id, *(s for s in schools if s in readable)})


def _range(params: dict[str, Any], today: date) -> tuple[date, date]:
    year = params.get("year") or academic_year(today)
    first, after = year_bounds(year)
    return params.get("start") or first, params.get("end") or after


def hours_report(
    db: ServiceSession, caller: Identity, data: Any, *, now: datetime
) -> dict[str, Any]:
    """CPD hours from ``start`` (inclusive) to ``end`` (exclusive), default
    the current academic year, grouped by ``person``, ``department``,
    ``school`` or ``trust``."""
    params = load(ReportSchema(), data)
    orgs = scope(db, caller, params["org_id"], "hours")
    start, end = _range(params, now.date())
    group = params["group_by"]
    department = func.coalesce(Staff.department, "")
    trust = func.coalesce(Organisation.parent_trust_id, CpdRecord.org_id)
    columns: dict[str, list[ColumnElement[Any] | QueryableAttribute[Any]]] = {
        "person": [CpdRecord.user_id, Staff.display_name, CpdRecord.org_id],
        "department": [CpdRecord.org_id, department.label("department")],
        "school": [CpdRecord.org_id],
        "trust": [trust.label("trust_id")],
    }
    keys = columns[group]
    query = (
        select(
            *keys,
            func.sum(CpdRecord.hours).label("hours"),
            func.count(func.distinct(CpdRecord.user_id)).label("people"),
            func.count().label("activities"),
        )
        .select_from(CpdRecord)
        .outerjoin(Staff, Staff.user_id == CpdRecord.user_id)
        .outerjoin(Organisation, Organisation.id == CpdRecord.org_id)
        .where(
            CpdRecord.org_id.in_(orgs),
            CpdRecord.activity_date >= start,
            CpdRecord.activity_date < end,
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    items = []
    for row in db.execute(query).mappings():
        item = {key: row[key] for key in row.keys() if key not in ("hours",)}
        item["hours"] = hours(row["hours"])
        items.append(item)
    return {
        "report": "hours",
        "group_by": group,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "items": items,
    }


def attendance_report(
    db: ServiceSession, caller: Identity, data: Any, *, now: datetime
) -> dict[str, Any]:
    """Per event in the range: places booked, and of the attendance marks
    how many attended, partial and absent (no-show), with the rates."""
    params = load(ReportSchema(), data)
    orgs = scope(db, caller, params["org_id"], "attendance")
    start, end = _range(params, now.date())
    sessions = (
        select(Session.event_id, func.count().label("sessions"))
        .group_by(Session.event_id)
        .subquery()
    )

    def marks(status: str) -> Any:
        return func.count(Attendance.status).filter(Attendance.status == status)

    query = (
        select(
            Event.id.label("event_id"),
            Course.title,
            Event.org_id,
            Event.starts_at,
            sessions.c.sessions,
            func.count(func.distinct(Booking.id)).label("booked"),
            marks("attended").label("attended"),
            marks("partial").label("partial"),
            marks("absent").label("absent"),
        )
        .select_from(Event)
        .join(Course, Course.id == Event.course_id)
        .join(sessions, sessions.c.event_id == Event.id)
        .outerjoin(
            Booking, and_(Booking.event_id == Event.id, Booking.status == "booked")
        )
        .outerjoin(Attendance, Attendance.booking_id == Booking.id)
        .where(
            Event.org_id.in_(orgs),
            Event.status.in_(("scheduled", "completed")),
            Event.starts_at >= _midnight(start),
            Event.starts_at < _midnight(end),
        )
        .group_by(
            Event.id, Course.title, Event.org_id, Event.starts_at, sessions.c.sessions
        )
        .order_by(Event.starts_at, Event.id)
    )
    items = []
    for row in db.execute(query).mappings():
        marked = row["attended"] + row["partial"] + row["absent"]
        items.append(
            {
                "event_id": row["event_id"],
                "title": row["title"],
                "org_id": row["org_id"],
                "starts_at": row["starts_at"].isoformat(),
                "sessions": row["sessions"],
                "booked": row["booked"],
                "attended": row["attended"],
                "partial": row["partial"],
                "absent": row["absent"],
                "attendance_rate": _rate(row["attended"] + row["partial"], marked),
                "no_show_rate": _rate(row["absent"], marked),
            }
        )
    return {"report": "attendance", "items": items}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def spend_query(orgs: list[str], year: int, now: datetime) -> Any:
    """One statement: per school and per trust, the fees, cover and travel
    committed in the academic year, how much of it is spent (the training
    has begun), and the budget."""
    first, after = year_bounds(year)
    today = now.date()
    zero = cast(literal(0), Numeric(12, 2))
    bookings = (
        select(
            Booking.org_id.label("org_id"),
            Booking.fee.label("fees"),
            zero.label("cover"),
            Booking.travel_cost.label("travel"),
            (Event.starts_at <= now).label("happened"),
        )
        .join(Event, Event.id == Booking.event_id)
        .where(
            Booking.org_id.in_(orgs),
            Booking.status == "booked",
            Event.starts_at >= _midnight(first),
            Event.starts_at < _midnight(after),
        )
    )
    external = select(
        ExternalRequest.org_id,
        ExternalRequest.fee,
        zero,
        ExternalRequest.travel_cost,
        ExternalRequest.start_date <= today,
    ).where(
        ExternalRequest.org_id.in_(orgs),
        ExternalRequest.status == "approved",
        ExternalRequest.start_date >= first,
        ExternalRequest.start_date < after,
    )
    cover = select(
        Absence.org_id, zero, Absence.cover_cost, zero, Absence.start_date <= today
    ).where(
        Absence.org_id.in_(orgs),
        Absence.status == "active",
        Absence.start_date >= first,
        Absence.start_date < after,
    )
    costs = union_all(bookings, external, cover).subquery()
    amount = costs.c.fees + costs.c.cover + costs.c.travel
    totals = (
        select(
            costs.c.org_id,
            func.sum(costs.c.fees).label("fees"),
            func.sum(costs.c.cover).label("cover"),
            func.sum(costs.c.travel).label("travel"),
            func.sum(case((costs.c.happened, amount), else_=0)).label("spent"),
        )
        .group_by(costs.c.org_id)
        .subquery()
    )
    every = (
        select(Budget.org_id)
        .where(Budget.org_id.in_(orgs), Budget.year == year)
        .union(select(totals.c.org_id))
        .subquery()
    )
    schools = (
        select(
            every.c.org_id,
            func.coalesce(Organisation.parent_trust_id, every.c.org_id).label(
                "trust_id"
            ),
            func.coalesce(totals.c.fees, 0).label("fees"),
            func.coalesce(totals.c.cover, 0).label("cover"),
            func.coalesce(totals.c.travel, 0).label("travel"),
            func.coalesce(totals.c.spent, 0).label("spent"),
            Budget.amount.label("budget"),
        )
        .select_from(every)
        .outerjoin(totals, totals.c.org_id == every.c.org_id)
        .outerjoin(Organisation, Organisation.id == every.c.org_id)
        .outerjoin(Budget, and_(Budget.org_id == every.c.org_id, Budget.year == year))
        .subquery()
    )
    # Each school's row, and each trust's roll-up (org_id NULL), in one pass
    # over the per-school sums.
    return (
        select(
            schools.c.trust_id,
            schools.c.org_id,
            func.sum(schools.c.fees).label("fees"),
            func.sum(schools.c.cover).label("cover"),
            func.sum(schools.c.travel).label("travel"),
            func.sum(schools.c.spent).label("spent"),
            func.sum(schools.c.budget).label("budget"),
        )
        .group_by(
            func.grouping_sets(
                tuple_(schools.c.trust_id, schools.c.org_id),
                tuple_(schools.c.trust_id),
            )
        )
        .order_by(schools.c.trust_id, schools.c.org_id.nulls_first())
    )


def _spend_item(row: Any) -> dict[str, Any]:
    total = row["fees"] + row["cover"] + row["travel"]
    budget = row["budget"]
    return {
        "org_id": row["org_id"],
        "trust_id": row["trust_id"],
        "fees": money(row["fees"]),
        "cover": money(row["cover"]),
        "travel": money(row["travel"]),
        "committed": money(total),
        "spent": money(row["spent"]),
        "budget": money(budget) if budget is not None else None,
        "remaining": money(budget - total) if budget is not None else None,
        "over_budget": budget is not None and total > budget,
    }


def spend_report(
    db: ServiceSession, caller: Identity, data: Any, *, now: datetime
) -> dict[str, Any]:
    """Per school for an academic year (default the current one): fees,
    cover and travel committed, how much is already spent, the budget and
    what remains; ``trusts`` rolls the same up per trust."""
    params = load(ReportSchema(), data)
    orgs = scope(db, caller, params["org_id"], "spend")
    year = params["year"] or academic_year(now.date())
    items, trusts = [], []
    for row in db.execute(spend_query(orgs, year, now)).mappings():
        if row["org_id"] is None:
            trusts.append(_spend_item(row))
        else:
            items.append(_spend_item(row))
    return {"report": "spend", "year": year, "items": items, "trusts": trusts}


def targets_report(
    db: ServiceSession, caller: Identity, data: Any, *, now: datetime
) -> dict[str, Any]:
    """Active staff whose CPD hours in the academic year are below the
    target for their job role (the school's, else the trust's)."""
    params = load(ReportSchema(), data)
    orgs = scope(db, caller, params["org_id"], "targets")
    year = params["year"] or academic_year(now.date())
    first, after = year_bounds(year)
    done = (
        select(CpdRecord.user_id, func.sum(CpdRecord.hours).label("hours"))
        .where(
            CpdRecord.org_id.in_(orgs),
            CpdRecord.activity_date >= first,
            CpdRecord.activity_date < after,
        )
        .group_by(CpdRecord.user_id)
        .subquery()
    )
    school_target = aliased(HoursTarget)
    trust_target = aliased(HoursTarget)
    target = func.coalesce(school_target.hours, trust_target.hours)
    achieved = func.coalesce(done.c.hours, 0)
    query = (
        select(
            Staff.user_id,
            Staff.display_name,
            Staff.org_id,
            Staff.department,
            Staff.job_role,
            achieved.label("hours"),
            target.label("target"),
        )
        .join(Organisation, Organisation.id == Staff.org_id, isouter=True)
        .outerjoin(done, done.c.user_id == Staff.user_id)
        .outerjoin(
            school_target,
            and_(
                school_target.org_id == Staff.org_id,
                school_target.job_role == Staff.job_role,
                school_target.year == year,
            ),
        )
        .outerjoin(
            trust_target,
            and_(
                trust_target.org_id == Organisation.parent_trust_id,
                trust_target.job_role == Staff.job_role,
                trust_target.year == year,
            ),
        )
        .where(Staff.org_id.in_(orgs), Staff.active.is_(True), target.is_not(None))
        .where(achieved < target)
        .order_by(
            Staff.org_id,
            case((Staff.display_name == "", 1), else_=0),
            Staff.display_name,
            Staff.user_id,
        )
    )
    items = [
        {
            "user_id": row["user_id"],
            "display_name": row["display_name"],
            "org_id": row["org_id"],
            "department": row["department"],
            "job_role": row["job_role"],
            "hours": hours(row["hours"]),
            "target": hours(row["target"]),
            "shortfall": hours(row["target"] - row["hours"]),
        }
        for row in db.execute(query).mappings()
    ]
    return {"report": "targets", "year": year, "items": items}


RUNNERS = {
    "hours": hours_report,
    "attendance": attendance_report,
    "spend": spend_report,
    "targets": targets_report,
}


def run_report(
    db: ServiceSession, caller: Identity, name: str, data: Any, *, now: datetime
) -> dict[str, Any]:
    runner = RUNNERS.get(name)
    if runner is None:
        from plumbing.errors import NotFound

        raise NotFound(f"No report {name!r}")
    return runner(db, caller, data, now=now)


def export_csv(
    db: ServiceSession, caller: Identity, name: str, data: Any, *, now: datetime
) -> dict[str, Any]:
    """The report's rows as CSV text, with a header line."""
    report = run_report(db, caller, name, data, now=now)
    rows = report["items"]
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return {
        "filename": f"{name}-report.csv",
        "content_type": "text/csv",
        "csv": buffer.getvalue(),
    }
