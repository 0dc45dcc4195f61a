"""Attendance, completing events, CPD records, hours targets and evaluation.

Completing an event turns each attendee's booking into an internal CPD
record: the course's hours in proportion to the sessions attended (a partial
session counts half). Anyone may add their own external or informal
activities. Only those who attended an event may evaluate it; the follow-up
about impact is asked ``followup_weeks`` (a school setting) later.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from plumbing.database import ServiceSession
from plumbing.errors import NotFound, ValidationFailed
from plumbing.identity import Identity
from services.training import access, approvals, events
from services.training.catalogue import managed_event
from services.training.costs import academic_year, year_bounds
from services.training.directory import organisation, staff_member
from services.training.exceptions import InvalidState, NotAnAttendee
from services.training.formatting import hours
from services.training.models import (
    Attendance,
    Booking,
    CpdRecord,
    Evaluation,
    HoursTarget,
    Staff,
)
from services.training.schemas import (
    AttendanceSchema,
    CpdRecordSchema,
    EvaluationSchema,
    FollowUpSchema,
    HoursTargetSchema,
    load,
)

SESSION_WEIGHT = {
    "attended": Decimal("1"),
    "partial": Decimal("0.5"),
    "absent": Decimal("0"),
}


def record_attendance(
    db: ServiceSession,
    caller: Identity,
    event_id: str,
    session_id: str,
    entries: Any,
    *,
    now: datetime,
) -> dict[str, Any]:
    """A CPD lead of the event's org, once the session has started: mark
    each booked person attended, partial or absent (a no-show). Emits
    ``training.attendance_recorded`` per person."""
    rows = [load(AttendanceSchema(), entry) for entry in (entries or [])]
    event = managed_event(db, caller, event_id, "training.record_attendance")
    session = next((s for s in event.sessions if s.id == session_id), None)
    if session is None:
        raise NotFound("No such session")
    if event.status != "scheduled":
        # Once completed, the CPD records were made from the marks as they were.
        raise InvalidState(f"A {event.status} event takes no attendance")
    if session.starts_at > now:
        raise InvalidState("Attendance is taken once the session has started")
    booked = set(
        db.scalars(
            select(Booking.id).where(
                Booking.event_id == event.id, Booking.status == "booked"
            )
        )
    )
    for row in rows:
        if row["booking_id"] not in booked:
            raise ValidationFailed(
                fields={row["booking_id"]: ["Not a booked place on this event."]}
            )
        mark = db.get(Attendance, (row["booking_id"], session.id))
        before = mark.status if mark else None
        if mark is None:
            mark = Attendance(booking_id=row["booking_id"], session_id=session.id)
            db.add(mark)
        mark.status = row["status"]
        mark.recorded_by = caller.user_id
        mark.recorded_at = now
        db.emit(
            events.ATTENDANCE_RECORDED,
            subject_type="booking",
            subject_id=row["booking_id"],
            org_id=event.org_id,
            changes={"attendance": {"before": before, "after": row["status"]}},
            data={"event_id": event.id, "session_id": session.id},
        )
    db.commit()
    return {"event_id": event.id, "session_id": session.id, "recorded": len(rows)}


def complete_event(
    db: ServiceSession, caller: Identity, event_id: str, *, now: datetime
) -> dict[str, Any]:
    """A CPD lead, after the last session ended: close the event and give
    each attendee a CPD record. Emits ``training.cpd_record_created`` per
    attendee and ``training.event_completed``."""
    event = managed_event(db, caller, event_id, "training.complete_event", lock=True)
    if event.status != "scheduled":
        raise InvalidState(f"A {event.status} event cannot be completed")
    if event.ends_at > now:
        raise InvalidState("The event has not finished yet")
    count = len(event.sessions)
    weights = db.execute(
        select(Attendance.booking_id, Attendance.status)
        .join(Booking, Booking.id == Attendance.booking_id)
        .where(Booking.event_id == event.id, Booking.status == "booked")
    ).all()
    attended: dict[str, Decimal] = {}
    for booking_id, status in weights:
        attended[booking_id] = (
            attended.get(booking_id, Decimal(0)) + SESSION_WEIGHT[status]
        )
    zone = ZoneInfo(organisation(db, event.org_id).timezone)
    created = 0
    for booking in db.scalars(
        select(Booking).where(Booking.event_id == event.id, Booking.status == "booked")
    ):
        share = attended.get(booking.id, Decimal(0))
        if share <= 0:
            continue
        record = CpdRecord(
            user_id=booking.user_id,
            org_id=booking.org_id,
            kind="internal",
            activity="course",
            title=event.course.title,
            activity_date=event.starts_at.astimezone(zone).date(),
            hours=(event.course.cpd_hours * share / count).quantize(Decimal("0.01")),
            evidence_links=[],
            booking_id=booking.id,
            created_at=now,
        )
        db.add(record)
        db.flush()
        _emit_record(db, record)
        created += 1
    db.emit(
        events.EVENT_COMPLETED,
        subject_type="event",
        subject_id=event.id,
        org_id=event.org_id,
        changes={"status": {"before": event.status, "after": "completed"}},
        data={"cpd_records": created},
    )
    event.status = "completed"
    event.updated_at = now
    db.commit()
    return {"event_id": event.id, "status": "completed", "cpd_records": created}


def dump_record(record: CpdRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "user_id": record.user_id,
        "org_id": record.org_id,
        "kind": record.kind,
        "activity": record.activity,
        "title": record.title,
        "activity_date": record.activity_date.isoformat(),
        "hours": hours(record.hours),
        "reflection": record.reflection,
        "evidence_links": list(record.evidence_links or []),
        "booking_id": record.booking_id,
    }


def _emit_record(db: ServiceSession, record: CpdRecord) -> None:
    db.emit(
        events.CPD_RECORD_CREATED,
        subject_type="cpd_record",
        subject_id=record.id,
        org_id=record.org_id,
        changes={
            key: {"before": None, "after": value}
            for key, value in dump_record(record).items()
            if key not in ("id", "org_id")
        },
    )


def add_cpd_record(
    db: ServiceSession, caller: Identity, data: Any, *, now: datetime
) -> dict[str, Any]:
    """Any member of staff, for themself: an external or informal activity
    (reading, webinar, coaching, visit) with hours, reflection and evidence
    links. Emits ``training.cpd_record_created``."""
    values = load(CpdRecordSchema(), data)
    staff = staff_member(db, caller.user_id, caller.org_id)
    record = CpdRecord(user_id=staff.user_id, org_id=staff.org_id, **values)
    record.created_at = now
    db.add(record)
    db.flush()
    _emit_record(db, record)
    db.commit()
    return dump_record(record)


def _readable_person(
    db: ServiceSession, caller: Identity, user_id: str, action: str
) -> Staff:
    staff = db.get(Staff, user_id)
    if user_id == caller.user_id:
        return staff_member(db, caller.user_id, caller.org_id)
    if staff is None or not approvals.may_read(db, caller, user_id, staff.org_id):
        access.not_found(db, caller, "user", user_id, action)
    return staff


def cpd_history(
    db: ServiceSession, caller: Identity, user_id: str | None = None
) -> dict[str, Any]:
    """The person themself, their line manager, or a CPD lead or reader of
    their org: every CPD record, with hours per academic year against the
    target for their job role."""
    staff = _readable_person(
        db, caller, user_id or caller.user_id, "training.cpd_history"
    )
    records = db.scalars(
        select(CpdRecord)
        .where(CpdRecord.user_id == staff.user_id)
        .order_by(CpdRecord.activity_date.desc(), CpdRecord.id)
    ).all()
    totals: dict[int, Decimal] = {}
    for record in records:
        year = academic_year(record.activity_date)
        totals[year] = totals.get(year, Decimal(0)) + record.hours
    years = []
    for year in sorted(totals, reverse=True):
        target = target_for(db, staff, year)
        years.append(
            {
                "year": year,
                "hours": hours(totals[year]),
                "target": hours(target) if target is not None else None,
                "met": target is not None and totals[year] >= target,
            }
        )
    return {
        "user_id": staff.user_id,
        "job_role": staff.job_role,
        "years": years,
        "records": [dump_record(record) for record in records],
    }


def target_for(db: ServiceSession, staff: Staff, year: int) -> Decimal | None:
    """The school's target for the job role, else its trust's."""
    org = organisation(db, staff.org_id)
    for org_id in (org.id, org.parent_trust_id):
        if org_id is None:
            continue
        target = db.get(HoursTarget, (org_id, staff.job_role, year))
        if target is not None:
            return target.hours
    return None


def target_progress(
    db: ServiceSession, caller: Identity, year: int, user_id: str | None = None
) -> dict[str, Any]:
    """Hours in the academic year against the person's target."""
    staff = _readable_person(
        db, caller, user_id or caller.user_id, "training.target_progress"
    )
    first, after = year_bounds(year)
    done = db.execute(
        select(func.coalesce(func.sum(CpdRecord.hours), 0)).where(
            CpdRecord.user_id == staff.user_id,
            CpdRecord.activity_date >= first,
            CpdRecord.activity_date < after,
        )
    ).scalar_one()
    target = target_for(db, staff, year)
    return {
        "user_id": staff.user_id,
        "year": year,
        "hours": hours(done),
        "target": hours(target) if target is not None else None,
        "remaining": (
            hours(max(target - done, Decimal(0))) if target is not None else None
        ),
        "met": target is not None and done >= target,
    }


def set_hours_target(
    db: ServiceSession, caller: Identity, org_id: str, data: Any
) -> dict[str, Any]:
    """A CPD lead or admin covering the org: the hours a job role should do
    in a year. Emits ``training.hours_target_set``."""
    values = load(HoursTargetSchema(), data)
    if org_id not in caller.orgs_for(access.SETTINGS_ROLES):
        access.not_found(
            db, caller, "organisation", org_id, "training.set_hours_target"
        )
    key = (org_id, values["job_role"], values["year"])
    target = db.get(HoursTarget, key)
    before = hours(target.hours) if target else None
    if target is None:
        target = HoursTarget(org_id=org_id, job_role=key[1], year=key[2], hours=0)
        db.add(target)
    target.hours = values["hours"]
    db.emit(
        events.HOURS_TARGET_SET,
        subject_type="hours_target",
        subject_id=":".join(str(part) for part in key),
        org_id=org_id,
        changes={"hours": {"before": before, "after": hours(values["hours"])}},
        data={"job_role": key[1], "year": key[2]},
    )
    db.commit()
    return {"org_id": org_id, **values, "hours": hours(values["hours"])}


# Evaluation


def _own_booking(db: ServiceSession, caller: Identity, booking_id: str) -> Booking:
    booking = db.get(Booking, booking_id)
    if booking is None or booking.user_id != caller.user_id:
        org_id = booking.org_id if booking is not None else None
        access.not_found(
            db, caller, "booking", booking_id, "training.evaluate_event", org_id
        )
    return booking


def dump_evaluation(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "booking_id": evaluation.booking_id,
        "rating": evaluation.rating,
        "will_change": evaluation.will_change,
        "followup_due": evaluation.followup_due.isoformat(),
        "impact": evaluation.impact,
        "impact_rating": evaluation.impact_rating,
    }


def submit_evaluation(
    db: ServiceSession, caller: Identity, booking_id: str, data: Any, *, now: datetime
) -> dict[str, Any]:
    """The attendee themself, having attended (fully or partly) at least one
    session: rate the event and say what they will change. Emits
    ``training.evaluation_submitted``."""
    values = load(EvaluationSchema(), data)
    booking = _own_booking(db, caller, booking_id)
    attended = db.scalar(
        select(func.count()).where(
            Attendance.booking_id == booking.id,
            Attendance.status.in_(("attended", "partial")),
        )
    )
    if not attended:
        raise NotAnAttendee()
    if db.get(Evaluation, booking.id) is not None:
        raise InvalidState("This event is already evaluated")
    weeks = organisation(db, booking.org_id).followup_weeks
    evaluation = Evaluation(
        booking_id=booking.id,
        **values,
        followup_due=now.date() + timedelta(weeks=weeks),
        created_at=now,
    )
    db.add(evaluation)
    db.emit(
        events.EVALUATION_SUBMITTED,
        subject_type="booking",
        subject_id=booking.id,
        org_id=booking.org_id,
        data={"event_id": booking.event_id, **values},
    )
    db.commit()
    return dump_evaluation(evaluation)


def submit_follow_up(
    db: ServiceSession, caller: Identity, booking_id: str, data: Any, *, now: datetime
) -> dict[str, Any]:
    """The attendee, once the follow-up is due: the impact the training had.
    Emits ``training.evaluation_followed_up``."""
    values = load(FollowUpSchema(), data)
    booking = _own_booking(db, caller, booking_id)
    evaluation = db.get(Evaluation, booking.id)
    if evaluation is None:
        raise InvalidState("Evaluate the event first")
    if evaluation.followup_due > now.date():
        raise InvalidState("The follow-up is not due yet")
    if evaluation.followed_up_at is not None:
        raise InvalidState("The follow-up is already answered")
    evaluation.impact = values["impact"]
    evaluation.impact_rating = values["impact_rating"]
    evaluation.followed_up_at = now
    db.emit(
        events.EVALUATION_FOLLOWED_UP,
        subject_type="booking",
        subject_id=booking.id,
        org_id=booking.org_id,
        data={"event_id": booking.event_id, **values},
    )
    db.commit()
    return dump_evaluation(evaluation)


def request_due_follow_ups(db: ServiceSession, *, now: datetime) -> int:
    """Ask once for each follow-up that fell due: emits
    ``training.follow_up_requested`` (for notify to send); commits."""
    due = db.execute(
        select(Evaluation, Booking)
        .join(Booking, Booking.id == Evaluation.booking_id)
        .where(
            Evaluation.followup_due <= now.date(),
            Evaluation.followup_requested_at.is_(None),
        )
        .limit(500)
        .with_for_update(of=Evaluation, skip_locked=True)
    ).all()
    for evaluation, booking in due:
        evaluation.followup_requested_at = now
        db.emit(
            events.FOLLOW_UP_REQUESTED,
            subject_type="booking",
            subject_id=booking.id,
            org_id=booking.org_id,
            data={"event_id": booking.event_id, "user_id": booking.user_id},
        )
    db.commit()
    return len(due)


def list_follow_ups(db: ServiceSession, caller: Identity, *, now: datetime) -> Any:
    """The caller's evaluations whose follow-up is due and unanswered."""
    query = (
        select(Evaluation)
        .join(Booking, Booking.id == Evaluation.booking_id)
        .where(
            Booking.user_id == caller.user_id,
            Evaluation.followup_due <= now.date(),
            Evaluation.followed_up_at.is_(None),
        )
    )
    return {"items": [dump_evaluation(item) for item in db.scalars(query)]}
