"""Absence and cover, external CPD requests, budgets and true cost.

A booking's true cost is its fee, plus cover (days out of school times the
school's daily cover rate, when cover is needed), plus travel. Cover lives on
the absence record, so that bookings, external requests and other absences
are added up the same way. A school's budget is per academic year (``2030``
is September 2030 to August 2031).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from plumbing.database import ServiceSession
from plumbing.identity import Identity
from services.training import access, approvals, events
from services.training.directory import (
    AuthLookup,
    ensure_manager,
    ensure_staff,
    organisation,
    staff_member,
)
from services.training.exceptions import BudgetExceeded, InvalidDates, RequestExpired
from services.training.formatting import money
from services.training.models import (
    Absence,
    Booking,
    Budget,
    Event,
    ExternalRequest,
    Organisation,
)
from services.training.schemas import (
    AbsenceSchema,
    BudgetSchema,
    DeclineSchema,
    ExternalRequestSchema,
    load,
)

HALF_DAY = timedelta(hours=4)


def academic_year(day: date) -> int:
    return day.year if day.month >= 9 else day.year - 1


def year_bounds(year: int) -> tuple[date, date]:
    """First day of the academic year and the first day after it."""
    return date(year, 9, 1), date(year + 1, 9, 1)


def event_absence(
    db: ServiceSession, event: Event, org: Organisation
) -> dict[str, Any]:
    """The days out of school an event takes, in the school's time zone: a
    day with at most four hours of sessions counts as a half day."""
    zone = ZoneInfo(org.timezone)
    per_day: dict[date, timedelta] = defaultdict(timedelta)
    for session in event.sessions:
        per_day[session.starts_at.astimezone(zone).date()] += (
            session.ends_at - session.starts_at
        )
    days = sum(
        (Decimal("0.5") if spent <= HALF_DAY else Decimal("1"))
        for spent in per_day.values()
    )
    return {
        "start_date": min(per_day),
        "end_date": max(per_day),
        "days": Decimal(days),
    }


def dump_absence(absence: Absence) -> dict[str, Any]:
    return {
        "id": absence.id,
        "user_id": absence.user_id,
        "org_id": absence.org_id,
        "booking_id": absence.booking_id,
        "external_request_id": absence.external_request_id,
        "start_date": absence.start_date.isoformat(),
        "end_date": absence.end_date.isoformat(),
        "days": float(absence.days),
        "reason": absence.reason,
        "cover_needed": absence.cover_needed,
        "cover_cost": money(absence.cover_cost),
        "status": absence.status,
    }


def _emit_absence(db: ServiceSession, event_type: str, absence: Absence) -> None:
    db.emit(
        event_type,
        subject_type="absence",
        subject_id=absence.id,
        org_id=absence.org_id,
        data={
            "user_id": absence.user_id,
            "start_date": absence.start_date.isoformat(),
            "end_date": absence.end_date.isoformat(),
            "days": float(absence.days),
            "cover_needed": absence.cover_needed,
            "cover_cost": money(absence.cover_cost),
            "reason": absence.reason,
        },
    )


def record_booking_absence(
    db: ServiceSession, booking: Booking, event: Event, *, now: datetime
) -> Absence:
    """The absence of a booked place (made again if it was cancelled).
    Emits ``training.absence_recorded``."""
    org = organisation(db, booking.org_id)
    span = event_absence(db, event, org)
    absence = db.scalar(select(Absence).where(Absence.booking_id == booking.id))
    if absence is None:
        absence = Absence(booking_id=booking.id, created_at=now)
        db.add(absence)
    absence.user_id = booking.user_id
    absence.org_id = booking.org_id
    absence.start_date = span["start_date"]
    absence.end_date = span["end_date"]
    absence.days = span["days"]
    absence.reason = f"Training: {event.course.title}"
    absence.cover_needed = booking.cover_needed
    absence.cover_cost = booking.cover_cost
    absence.status = "active"
    db.flush()
    _emit_absence(db, events.ABSENCE_RECORDED, absence)
    return absence


def cancel_booking_absence(db: ServiceSession, booking: Booking) -> None:
    absence = db.scalar(select(Absence).where(Absence.booking_id == booking.id))
    if absence is not None and absence.status == "active":
        absence.status = "cancelled"
        _emit_absence(db, events.ABSENCE_CANCELLED, absence)


def record_absence(
    db: ServiceSession, caller: Identity, data: Any, *, now: datetime
) -> dict[str, Any]:
    """Any member of staff, for themself: another PD-related absence (an
    exam board meeting, a school visit). Cover is costed at the school's
    daily rate. Emits ``training.absence_recorded``."""
    values = load(AbsenceSchema(), data)
    _check_dates(values["start_date"], values["end_date"])
    staff = staff_member(db, caller.user_id, caller.org_id)
    org = organisation(db, staff.org_id)
    cover = values["days"] * org.cover_daily_rate if values["cover_needed"] else 0
    absence = Absence(
        user_id=staff.user_id,
        org_id=staff.org_id,
        **values,
        cover_cost=Decimal(cover),
        status="active",
        created_at=now,
    )
    db.add(absence)
    db.flush()
    _emit_absence(db, events.ABSENCE_RECORDED, absence)
    db.commit()
    return dump_absence(absence)


def list_absences(
    db: ServiceSession, caller: Identity, org_id: str | None = None
) -> dict[str, Any]:
    """The caller's own absences, or (for a CPD lead or reader) an org's."""
    query = select(Absence).order_by(Absence.start_date, Absence.id)
    if org_id is None:
        query = query.where(Absence.user_id == caller.user_id)
    elif org_id in access.lead_orgs(caller) | access.reader_orgs(caller):
        query = query.where(Absence.org_id == org_id)
    else:
        access.not_found(db, caller, "organisation", org_id, "training.list_absences")
    return {"items": [dump_absence(absence) for absence in db.scalars(query)]}


def _check_dates(start: date, end: date) -> None:
    if end < start:
        raise InvalidDates(fields={"end_date": ["Must not be before start_date."]})


# Budgets


def committed(db: ServiceSession, org_ids: list[str], year: int) -> Decimal:
    """Fees and travel of booked places and approved external requests, and
    cover of active absences, in the academic year."""
    first, after = year_bounds(year)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(after.year, after.month, after.day, tzinfo=UTC)
    bookings = select(
        func.coalesce(func.sum(Booking.fee + Booking.travel_cost), 0)
    ).where(
        Booking.org_id.in_(org_ids),
        Booking.status == "booked",
        Booking.event_id.in_(
            select(Event.id).where(Event.starts_at >= start, Event.starts_at < end)
        ),
    )
    external = select(
        func.coalesce(func.sum(ExternalRequest.fee + ExternalRequest.travel_cost), 0)
    ).where(
        ExternalRequest.org_id.in_(org_ids),
        ExternalRequest.status == "approved",
        ExternalRequest.start_date >= first,
        ExternalRequest.start_date < after,
    )
    cover = select(func.coalesce(func.sum(Absence.cover_cost), 0)).where(
        Absence.org_id.in_(org_ids),
        Absence.status == "active",
        Absence.start_date >= first,
        Absence.start_date < after,
    )
    return Decimal(
        db.execute(bookings).scalar_one()
        + db.execute(external).scalar_one()
        + db.execute(cover).scalar_one()
    )


def check_budget(
    db: ServiceSession, org_id: str, cost: Decimal, when: Event | date
) -> list[str]:
    """``["BUDGET_EXCEEDED"]`` when adding ``cost`` passes the school's
    budget for the year and the school warns; BudgetExceeded if it refuses;
    ``[]`` within budget or with no budget set."""
    day = when.starts_at.date() if isinstance(when, Event) else when
    year = academic_year(day)
    budget = db.get(Budget, (org_id, year))
    if budget is None or cost <= 0:
        return []
    spent = committed(db, [org_id], year)
    if spent + cost <= budget.amount:
        return []
    if organisation(db, org_id).budget_policy == "refuse":
        raise BudgetExceeded(
            fields={
                "budget": money(budget.amount),
                "committed": money(spent),
                "cost": money(cost),
            }
        )
    return ["BUDGET_EXCEEDED"]


def set_budget(
    db: ServiceSession, caller: Identity, org_id: str, data: Any
) -> dict[str, Any]:
    """A CPD lead or admin covering the school: set its budget for a year.
    Emits ``training.budget_set``."""
    values = load(BudgetSchema(), data)
    if org_id not in caller.orgs_for(access.SETTINGS_ROLES):
        access.not_found(db, caller, "organisation", org_id, "training.set_budget")
    organisation(db, org_id)
    budget = db.get(Budget, (org_id, values["year"]))
    before = money(budget.amount) if budget else None
    if budget is None:
        budget = Budget(org_id=org_id, year=values["year"], amount=values["amount"])
        db.add(budget)
    budget.amount = values["amount"]
    db.emit(
        events.BUDGET_SET,
        subject_type="budget",
        subject_id=f"{org_id}:{values['year']}",
        org_id=org_id,
        changes={"amount": {"before": before, "after": money(values["amount"])}},
        data={"year": values["year"]},
    )
    db.commit()
    return {"org_id": org_id, "year": budget.year, "amount": money(budget.amount)}


# External CPD requests


def dump_external(request: ExternalRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "user_id": request.user_id,
        "org_id": request.org_id,
        "provider": request.provider,
        "title": request.title,
        "start_date": request.start_date.isoformat(),
        "end_date": request.end_date.isoformat(),
        "days": float(request.days),
        "hours": float(request.hours),
        "fee": money(request.fee),
        "travel_cost": money(request.travel_cost),
        "cover_needed": request.cover_needed,
        "cover_cost": money(request.cover_cost),
        "total_cost": money(request.fee + request.travel_cost + request.cover_cost),
        "rationale": request.rationale,
        "intended_impact": request.intended_impact,
        "status": request.status,
        "decline_reason": request.decline_reason,
    }


def _emit_external(
    db: ServiceSession,
    event_type: str,
    request: ExternalRequest,
    before: str | None,
    **data: Any,
) -> None:
    db.emit(
        event_type,
        subject_type="external_request",
        subject_id=request.id,
        org_id=request.org_id,
        changes={"status": {"before": before, "after": request.status}},
        data={"user_id": request.user_id, **data},
    )


def submit_external_request(
    db: ServiceSession,
    caller: Identity,
    data: Any,
    *,
    now: datetime,
    auth: AuthLookup | None = None,
) -> dict[str, Any]:
    """Any member of staff, for themself: ask to attend training elsewhere.
    Decided like a booking (line manager, then CPD lead if the school asks).
    Emits ``training.external_request_submitted`` with the rationale and
    intended impact."""
    values = load(ExternalRequestSchema(), data)
    _check_dates(values["start_date"], values["end_date"])
    if values["start_date"] <= now.date():
        raise InvalidDates(
            "The training must start after today",
            fields={"start_date": ["Must be in the future."]},
        )
    ensure_staff(db, caller, auth)
    staff = staff_member(db, caller.user_id, caller.org_id)
    org = organisation(db, staff.org_id)
    cover = values["days"] * org.cover_daily_rate if values["cover_needed"] else 0
    status = "pending_manager" if staff.line_manager_id else "pending_cpd_lead"
    request = ExternalRequest(
        user_id=staff.user_id,
        org_id=staff.org_id,
        **values,
        cover_cost=Decimal(cover),
        status=status,
        created_at=now,
        updated_at=now,
    )
    db.add(request)
    db.flush()
    _emit_external(
        db,
        events.EXTERNAL_REQUEST_SUBMITTED,
        request,
        None,
        rationale=request.rationale,
        intended_impact=request.intended_impact,
    )
    db.commit()
    return dump_external(request)


def _pending_external(
    db: ServiceSession,
    caller: Identity,
    request_id: str,
    action: str,
    now: datetime,
    auth: AuthLookup | None,
) -> ExternalRequest:
    request = db.get(ExternalRequest, request_id)
    if request is None:
        access.not_found(db, caller, "external_request", request_id, action)
    ensure_manager(db, caller, request.user_id, auth)
    if not approvals.may_read(db, caller, request.user_id, request.org_id):
        approvals.refuse_unreadable(db, caller, "external_request", request, action)
    if request.status in approvals.PENDING and request.start_date <= now.date():
        before = request.status
        request.status = "expired"
        _emit_external(db, events.EXTERNAL_REQUEST_EXPIRED, request, before)
        db.commit()
        raise RequestExpired()
    return request


def approve_external_request(
    db: ServiceSession,
    caller: Identity,
    request_id: str,
    *,
    now: datetime,
    auth: AuthLookup | None = None,
) -> dict[str, Any]:
    """The requester's line manager, then a CPD lead when the school asks
    for it (a request from someone with no line manager goes to the CPD lead
    alone). On the last approval the absence is recorded and the budget
    checked (warned or refused per school). Emits
    ``training.external_request_approved`` with ``data.stage``."""
    action = "training.approve_external_request"
    request = _pending_external(db, caller, request_id, action, now, auth)
    stage = approvals.stage_of(db, caller, "external_request", request, action)
    before = request.status
    request.updated_at = now
    warnings: list[str] = []
    needs_lead = organisation(db, request.org_id).cpd_lead_approval
    if stage == "manager" and needs_lead:
        request.manager_decided_by = caller.user_id
        request.status = "pending_cpd_lead"
    else:
        if stage == "manager":
            request.manager_decided_by = caller.user_id
        else:
            request.lead_decided_by = caller.user_id
        cost = request.fee + request.travel_cost + request.cover_cost
        warnings = check_budget(db, request.org_id, cost, request.start_date)
        request.status = "approved"
        absence = Absence(
            user_id=request.user_id,
            org_id=request.org_id,
            external_request_id=request.id,
            start_date=request.start_date,
            end_date=request.end_date,
            days=request.days,
            reason=f"External training: {request.title}",
            cover_needed=request.cover_needed,
            cover_cost=request.cover_cost,
            status="active",
            created_at=now,
        )
        db.add(absence)
        db.flush()
        _emit_absence(db, events.ABSENCE_RECORDED, absence)
    _emit_external(db, events.EXTERNAL_REQUEST_APPROVED, request, before, stage=stage)
    db.commit()
    return {**dump_external(request), "warnings": warnings}


def decline_external_request(
    db: ServiceSession,
    caller: Identity,
    request_id: str,
    data: Any,
    *,
    now: datetime,
    auth: AuthLookup | None = None,
) -> dict[str, Any]:
    """Whoever may approve it at its stage, with a reason. Emits
    ``training.external_request_declined`` with ``data.reason``."""
    action = "training.decline_external_request"
    values = load(DeclineSchema(), data)
    request = _pending_external(db, caller, request_id, action, now, auth)
    stage = approvals.stage_of(db, caller, "external_request", request, action)
    before = request.status
    request.status = "declined"
    request.decline_reason = values["reason"]
    request.updated_at = now
    _emit_external(
        db,
        events.EXTERNAL_REQUEST_DECLINED,
        request,
        before,
        stage=stage,
        reason=values["reason"],
    )
    db.commit()
    return dump_external(request)


def get_external_request(
    db: ServiceSession, caller: Identity, request_id: str
) -> dict[str, Any]:
    request = db.get(ExternalRequest, request_id)
    action = "training.get_external_request"
    if request is None:
        access.not_found(db, caller, "external_request", request_id, action)
    if not approvals.may_read(db, caller, request.user_id, request.org_id):
        access.not_found(
            db, caller, "external_request", request_id, action, request.org_id
        )
    return dump_external(request)
