"""Bookings: requests, approvals, places, the waitlist and cancellations.

A member of staff requests a place; their line manager decides, then the
school's CPD lead when the school asks for it (``cpd_lead_approval``). A CPD
lead may also book staff directly. A request not decided before its deadline
(the event's booking deadline, else its first session) expires.

Every decision about an event's places is taken with the event's row locked
(``SELECT ... FOR UPDATE``), so that instances racing for the last place
serialise: an approved request is booked while places remain, otherwise it
joins the waitlist with the next position. Cancelling a booked place gives it
to the lowest waitlist position, but never once the first session started.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update

from plumbing.database import ServiceSession
from plumbing.identity import Identity
from services.training import access, approvals, costs, events
from services.training.catalogue import lock_event, visible_event
from services.training.directory import (
    AuthLookup,
    ensure_manager,
    ensure_staff,
    organisation,
    staff_member,
)
from services.training.exceptions import (
    AlreadyBooked,
    EventNotBookable,
    InvalidState,
    RequestExpired,
)
from services.training.formatting import money
from services.training.models import Booking, Event, Staff
from services.training.schemas import BookingCostSchema, DeclineSchema, load

PENDING = approvals.PENDING
ACTIVE = (*PENDING, "booked", "waitlisted")


def dump_booking(booking: Booking) -> dict[str, Any]:
    total = booking.fee + booking.cover_cost + booking.travel_cost
    return {
        "id": booking.id,
        "event_id": booking.event_id,
        "user_id": booking.user_id,
        "org_id": booking.org_id,
        "status": booking.status,
        "waitlist_position": booking.waitlist_position,
        "deadline": booking.deadline.isoformat() if booking.deadline else None,
        "decline_reason": booking.decline_reason,
        "fee": money(booking.fee),
        "cover_cost": money(booking.cover_cost),
        "travel_cost": money(booking.travel_cost),
        "total_cost": money(total),
        "cover_needed": booking.cover_needed,
        "calendar_uid": calendar_uid(booking.id),
        "calendar_sequence": booking.ical_sequence,
    }


def calendar_uid(booking_id: str) -> str:
    """The invite's UID: the same for the booking's whole life."""
    return f"booking-{booking_id}@cpd-platform"


def _emit(
    db: ServiceSession,
    event_type: str,
    booking: Booking,
    before: str | None = None,
    **data: Any,
) -> None:
    db.emit(
        event_type,
        subject_type="booking",
        subject_id=booking.id,
        org_id=booking.org_id,
        changes={"status": {"before": before, "after": booking.status}},
        data={"event_id": booking.event_id, "user_id": booking.user_id, **data},
    )


def _check_bookable(event: Event, now: datetime) -> None:
    if event.status != "scheduled":
        raise EventNotBookable(f"The event is {event.status}, not open for booking")
    if event.starts_at <= now:
        raise EventNotBookable("The event has already started")


def _check_not_booked(db: ServiceSession, event_id: str, user_id: str) -> None:
    existing = db.scalar(
        select(Booking.id).where(
            Booking.event_id == event_id,
            Booking.user_id == user_id,
            Booking.status.in_(ACTIVE),
        )
    )
    if existing is not None:
        raise AlreadyBooked()


def _new_booking(
    db: ServiceSession,
    event: Event,
    staff: Staff,
    requested_by: str,
    values: dict[str, Any],
    now: datetime,
) -> Booking:
    org = organisation(db, staff.org_id)
    cover = costs.event_absence(db, event, org)
    deadline = event.booking_deadline or event.starts_at
    booking = Booking(
        event_id=event.id,
        user_id=staff.user_id,
        org_id=staff.org_id,
        status="new",
        requested_by=requested_by,
        deadline=min(deadline, event.starts_at),
        fee=event.course.fee,
        travel_cost=values["travel_cost"],
        cover_needed=values["cover_needed"],
        cover_cost=cover["days"] * org.cover_daily_rate
        if values["cover_needed"]
        else Decimal("0"),
        ical_sequence=0,
        created_at=now,
        updated_at=now,
    )
    db.add(booking)
    return booking


def request_booking(
    db: ServiceSession,
    caller: Identity,
    event_id: str,
    data: Any,
    *,
    now: datetime,
    auth: AuthLookup | None = None,
) -> dict[str, Any]:
    """Any member of staff, for themself, on a scheduled event they can see.

    Goes to their line manager, else to the CPD lead when the school asks
    for it, else straight to a place. Emits ``training.booking_requested``
    (then ``training.booking_booked`` or ``training.booking_waitlisted`` when
    no approval is needed).
    """
    values = load(BookingCostSchema(), data)
    ensure_staff(db, caller, auth)
    event = visible_event(db, caller, event_id, "training.request_booking")
    event = lock_event(db, event.id)
    _check_bookable(event, now)
    if event.booking_deadline is not None and event.booking_deadline <= now:
        raise EventNotBookable("The booking deadline has passed")
    staff = staff_member(db, caller.user_id, caller.org_id)
    _check_not_booked(db, event.id, staff.user_id)
    booking = _new_booking(db, event, staff, caller.user_id, values, now)
    if staff.line_manager_id:
        booking.status = "pending_manager"
    elif organisation(db, staff.org_id).cpd_lead_approval:
        booking.status = "pending_cpd_lead"
    else:
        booking.status = "requested"
    db.flush()
    _emit(db, events.BOOKING_REQUESTED, booking)
    warnings: list[str] = []
    if booking.status == "requested":
        # Nobody to ask: the request is approved as it stands.
        warnings = _approve_and_place(db, booking, event, now)
    db.commit()
    return {**dump_booking(booking), "warnings": warnings}


def book_staff(
    db: ServiceSession,
    caller: Identity,
    event_id: str,
    user_id: str,
    data: Any,
    *,
    now: datetime,
) -> dict[str, Any]:
    """A CPD lead covering the member of staff's school: give them a place
    (or a waitlist position) without approvals. Emits
    ``training.booking_booked`` or ``training.booking_waitlisted``."""
    values = load(BookingCostSchema(), data)
    event = visible_event(db, caller, event_id, "training.book_staff")
    staff = db.get(Staff, user_id)
    if staff is None or staff.org_id not in access.lead_orgs(caller):
        access.not_found(db, caller, "user", user_id, "training.book_staff")
    event = lock_event(db, event.id)
    _check_bookable(event, now)
    _check_not_booked(db, event.id, staff.user_id)
    booking = _new_booking(db, event, staff, caller.user_id, values, now)
    booking.lead_decided_by = caller.user_id
    db.flush()
    warnings = costs.check_budget(db, booking.org_id, _booking_cost(booking), event)
    _place(db, booking, event, now, before=None, direct=True)
    db.commit()
    return {**dump_booking(booking), "warnings": warnings}


def _booking_cost(booking: Booking) -> Decimal:
    return booking.fee + booking.cover_cost + booking.travel_cost


def _place(
    db: ServiceSession,
    booking: Booking,
    event: Event,
    now: datetime,
    before: str | None,
    **data: Any,
) -> None:
    """Book the place if one is free, else join the waitlist. The event row
    must be locked by the caller."""
    booked = db.execute(
        select(func.count()).where(
            Booking.event_id == event.id, Booking.status == "booked"
        )
    ).scalar_one()
    if booked < event.capacity:
        booking.status = "booked"
        booking.updated_at = now
        db.flush()
        costs.record_booking_absence(db, booking, event, now=now)
        _emit(db, events.BOOKING_BOOKED, booking, before, **data)
        return
    last = db.scalar(
        select(func.max(Booking.waitlist_position)).where(Booking.event_id == event.id)
    )
    booking.status = "waitlisted"
    booking.waitlist_position = (last or 0) + 1
    booking.updated_at = now
    db.flush()
    _emit(
        db,
        events.BOOKING_WAITLISTED,
        booking,
        before,
        waitlist_position=booking.waitlist_position,
        **data,
    )


def fill_from_waitlist(db: ServiceSession, event: Event, *, now: datetime) -> int:
    """Give free places to the waitlist in the order it was joined; nothing
    once the event's first session has started. The event must be locked."""
    if event.status != "scheduled" or event.starts_at <= now:
        return 0
    booked = db.execute(
        select(func.count()).where(
            Booking.event_id == event.id, Booking.status == "booked"
        )
    ).scalar_one()
    free = max(event.capacity - booked, 0)
    if not free:
        return 0
    waiting = db.scalars(
        select(Booking)
        .where(Booking.event_id == event.id, Booking.status == "waitlisted")
        .order_by(Booking.waitlist_position)
        .limit(free)
    ).all()
    for booking in waiting:
        booking.status = "booked"
        booking.ical_sequence += 1
        booking.updated_at = now
        db.flush()
        costs.record_booking_absence(db, booking, event, now=now)
        _emit(db, events.BOOKING_PROMOTED, booking, "waitlisted")
    return len(waiting)


def bump_invites(db: ServiceSession, event_id: str, *, now: datetime) -> None:
    """Every active booking's invite changed: raise its SEQUENCE."""
    db.execute(
        update(Booking)
        .where(Booking.event_id == event_id, Booking.status.in_(ACTIVE))
        .values(ical_sequence=Booking.ical_sequence + 1, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )


def close_booking(
    db: ServiceSession, booking: Booking, reason: str, *, now: datetime
) -> None:
    """Cancel a booking or request (its invite is cancelled, its absence
    too) and emit ``training.booking_cancelled`` with ``data.reason``."""
    before = booking.status
    booking.status = "cancelled"
    booking.waitlist_position = None
    booking.ical_sequence += 1
    booking.updated_at = now
    costs.cancel_booking_absence(db, booking)
    _emit(db, events.BOOKING_CANCELLED, booking, before, reason=reason)


# Reading


def _readable(db: ServiceSession, caller: Identity, booking: Booking) -> bool:
    """As :func:`approvals.may_read`, or a CPD lead of the event's org (a
    trust event run at one school takes staff of the others)."""
    if booking.event.org_id in access.lead_orgs(caller):
        return True
    return approvals.may_read(db, caller, booking.user_id, booking.org_id)


def readable_booking(
    db: ServiceSession, caller: Identity, booking_id: str, action: str
) -> Booking:
    booking = db.get(Booking, booking_id)
    if booking is None or not _readable(db, caller, booking):
        org_id = booking.org_id if booking is not None else None
        access.not_found(db, caller, "booking", booking_id, action, org_id)
    return booking


def get_booking(
    db: ServiceSession, caller: Identity, booking_id: str
) -> dict[str, Any]:
    """The booker, their line manager, or a CPD lead or reader of their org."""
    booking = readable_booking(db, caller, booking_id, "training.get_booking")
    return dump_booking(booking)


def list_bookings(
    db: ServiceSession,
    caller: Identity,
    event_id: str | None = None,
    status: str | None = None,
    mine: bool = False,
) -> dict[str, Any]:
    """The caller's bookings, their reports', and those of the orgs they run
    or read; ``mine`` keeps only the caller's own."""
    reports = select(Staff.user_id).where(Staff.line_manager_id == caller.user_id)
    orgs = access.lead_orgs(caller) | access.reader_orgs(caller)
    query = select(Booking)
    if mine:
        query = query.where(Booking.user_id == caller.user_id)
    else:
        query = query.where(
            (Booking.user_id == caller.user_id)
            | Booking.user_id.in_(reports)
            | Booking.org_id.in_(orgs)
            | Booking.event_id.in_(
                select(Event.id).where(Event.org_id.in_(access.lead_orgs(caller)))
            )
        )
    if event_id is not None:
        query = query.where(Booking.event_id == event_id)
    if status is not None:
        query = query.where(Booking.status == status)
    query = query.order_by(Booking.created_at, Booking.waitlist_position, Booking.id)
    return {"items": [dump_booking(booking) for booking in db.scalars(query)]}


# Deciding


def _lock_booking(db: ServiceSession, booking: Booking) -> None:
    """Hold the booking's row too (the expiry timer skips locked rows), and
    read it afresh."""
    db.execute(select(Booking.id).where(Booking.id == booking.id).with_for_update())
    db.refresh(booking)


def _pending_booking(
    db: ServiceSession,
    caller: Identity,
    booking_id: str,
    action: str,
    now: datetime,
    auth: AuthLookup | None,
) -> tuple[Booking, Event]:
    booking = db.get(Booking, booking_id)
    if booking is None:
        access.not_found(db, caller, "booking", booking_id, action)
    ensure_manager(db, caller, booking.user_id, auth)
    if not _readable(db, caller, booking):
        approvals.refuse_unreadable(db, caller, "booking", booking, action)
    event = lock_event(db, booking.event_id)
    _lock_booking(db, booking)
    if booking.status in PENDING and booking.deadline and booking.deadline <= now:
        _expire(db, booking, now)
        db.commit()
        raise RequestExpired()
    return booking, event


def approve_booking(
    db: ServiceSession,
    caller: Identity,
    booking_id: str,
    *,
    now: datetime,
    auth: AuthLookup | None = None,
) -> dict[str, Any]:
    """The requester's line manager, then (if the school asks for it) a CPD
    lead of the requester's school. Never the requester (SELF_APPROVAL);
    someone else's report is NOT_YOUR_REPORT. Emits
    ``training.booking_approved`` with ``data.stage``, then on the last
    approval ``training.booking_booked`` or ``training.booking_waitlisted``.
    Answers ``warnings`` (``BUDGET_EXCEEDED``) when the school's budget
    would be passed and its policy is to warn; refused if it is to refuse.
    """
    booking, event = _pending_booking(
        db, caller, booking_id, "training.approve_booking", now, auth
    )
    stage = approvals.stage_of(
        db, caller, "booking", booking, "training.approve_booking"
    )
    warnings: list[str] = []
    if stage == "manager":
        booking.manager_decided_by = caller.user_id
        if organisation(db, booking.org_id).cpd_lead_approval:
            before = booking.status
            booking.status = "pending_cpd_lead"
            booking.updated_at = now
            _emit(db, events.BOOKING_APPROVED, booking, before, stage=stage)
            db.commit()
            return {**dump_booking(booking), "warnings": warnings}
    else:
        booking.lead_decided_by = caller.user_id
    warnings = _approve_and_place(db, booking, event, now, stage=stage)
    db.commit()
    return {**dump_booking(booking), "warnings": warnings}


def _approve_and_place(
    db: ServiceSession,
    booking: Booking,
    event: Event,
    now: datetime,
    stage: str = "none",
) -> list[str]:
    _check_bookable(event, now)
    warnings = costs.check_budget(db, booking.org_id, _booking_cost(booking), event)
    before = booking.status
    booking.status = "approved"
    _emit(db, events.BOOKING_APPROVED, booking, before, stage=stage)
    _place(db, booking, event, now, before="approved")
    return warnings


def decline_booking(
    db: ServiceSession,
    caller: Identity,
    booking_id: str,
    data: Any,
    *,
    now: datetime,
    auth: AuthLookup | None = None,
) -> dict[str, Any]:
    """Whoever may approve the request at its stage, with a reason. Emits
    ``training.booking_declined`` with ``data.reason`` and ``data.stage``."""
    values = load(DeclineSchema(), data)
    booking, _event = _pending_booking(
        db, caller, booking_id, "training.decline_booking", now, auth
    )
    stage = approvals.stage_of(
        db, caller, "booking", booking, "training.decline_booking"
    )
    before = booking.status
    booking.status = "declined"
    booking.decline_reason = values["reason"]
    booking.updated_at = now
    if stage == "manager":
        booking.manager_decided_by = caller.user_id
    else:
        booking.lead_decided_by = caller.user_id
    _emit(
        db,
        events.BOOKING_DECLINED,
        booking,
        before,
        stage=stage,
        reason=values["reason"],
    )
    db.commit()
    return dump_booking(booking)


def cancel_booking(
    db: ServiceSession, caller: Identity, booking_id: str, *, now: datetime
) -> dict[str, Any]:
    """The booker, or a CPD lead of their school: cancel a request, place or
    waitlist position. A freed place goes to the first on the waitlist
    unless the event has started. Emits ``training.booking_cancelled`` and
    ``training.booking_promoted`` for the one promoted."""
    booking = db.get(Booking, booking_id)
    action = "training.cancel_booking"
    if booking is None:
        access.not_found(db, caller, "booking", booking_id, action)
    own = booking.user_id == caller.user_id
    if not own and booking.org_id not in access.lead_orgs(caller):
        if _readable(db, caller, booking):
            access.forbidden(db, caller, "booking", booking_id, action, booking.org_id)
        access.not_found(db, caller, "booking", booking_id, action, booking.org_id)
    event = lock_event(db, booking.event_id)
    _lock_booking(db, booking)
    if booking.status not in ACTIVE:
        raise InvalidState(f"The booking is already {booking.status}")
    if event.status != "scheduled" and event.status != "draft":
        raise InvalidState(f"The event is {event.status}")
    close_booking(db, booking, "cancelled_by_lead" if not own else "withdrawn", now=now)
    db.flush()
    fill_from_waitlist(db, event, now=now)
    db.commit()
    return dump_booking(booking)


# Expiry


def _expire(db: ServiceSession, booking: Booking, now: datetime) -> None:
    before = booking.status
    booking.status = "expired"
    booking.updated_at = now
    _emit(db, events.BOOKING_EXPIRED, booking, before)


def expire_overdue(db: ServiceSession, *, now: datetime, limit: int = 500) -> int:
    """Expire requests whose deadline passed undecided; commits. Rows another
    instance is working on are skipped and expired on a later round."""
    overdue = db.scalars(
        select(Booking)
        .where(Booking.status.in_(PENDING), Booking.deadline <= now)
        .order_by(Booking.deadline)
        .limit(limit)
        .with_for_update(of=Booking, skip_locked=True)
    ).all()
    for booking in overdue:
        _expire(db, booking, now)
    db.commit()
    return len(overdue)
