"""What the notify service reads to write its emails; it changes nothing.

Notify hears training's events (a booking requested, approved, booked,
declined, cancelled; an event changed or cancelled) and asks here for what an
envelope does not carry: the course title and sessions, the school's name and
time zone, who must decide a pending request, and the invite to attach. On
its own timer it asks for the sessions about to start and who holds a place
on them, to send reminders.

Only the notify service calling on its own account may ask; the entrypoints
check that (``require_service``) before handing over. Notify may read every
booking and event, so an unknown id is NotFound without an ``authz.denied``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from plumbing.database import ServiceSession
from plumbing.errors import NotFound
from services.training import calendar
from services.training.bookings import ACTIVE
from services.training.models import (
    Booking,
    Course,
    Event,
    ExternalRequest,
    Organisation,
    Session,
    Staff,
)
from services.training.schemas import NoticeContextSchema, SessionWindowSchema, load

# The zone of an organisation training has not heard of, as a new row gets.
DEFAULT_TIMEZONE = "Europe/London"
# Bookings with an invite: a place (REQUEST), or one closed (CANCEL). A
# waitlisted or pending booking has none yet.
WITH_INVITE = ("booked", *calendar.CLOSED)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _session(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "starts_at": _iso(session.starts_at),
        "ends_at": _iso(session.ends_at),
        "venue": session.venue,
        "online_link": session.online_link,
    }


def _event(db: ServiceSession, event: Event) -> dict[str, Any]:
    """The event as every notice about it shows it, its sessions in order."""
    org = db.get(Organisation, event.org_id)
    sessions = sorted(event.sessions, key=lambda s: (s.starts_at, s.id))
    return {
        "id": event.id,
        "org_id": event.org_id,
        "org_name": (org.name or "") if org is not None else "",
        "timezone": org.timezone if org is not None else DEFAULT_TIMEZONE,
        "title": event.course.title,
        "facilitator": event.facilitator,
        "status": event.status,
        "sessions": [_session(session) for session in sessions],
    }


def _ics(booking: Booking) -> str | None:
    """The booking's invite as ``get_invite`` gives it, if it has one."""
    if booking.status not in WITH_INVITE:
        return None
    return calendar.booking_invite(booking)["ics"]


def _deciders(db: ServiceSession, request: Booking | ExternalRequest) -> dict[str, Any]:
    """Who must decide a booking or external request now: its requester's
    line manager, or (named by org, for notify to resolve) a CPD lead of its
    school."""
    if request.status == "pending_manager":
        staff = db.get(Staff, request.user_id)
        manager = staff.line_manager_id if staff is not None else None
        return {"user_ids": [manager] if manager else [], "cpd_lead_org_id": None}
    if request.status == "pending_cpd_lead":
        return {"user_ids": [], "cpd_lead_org_id": request.org_id}
    return {"user_ids": [], "cpd_lead_org_id": None}


def _external_context(db: ServiceSession, request_id: str) -> dict[str, Any]:
    request = db.get(ExternalRequest, request_id)
    if request is None:
        raise NotFound("No such external request")
    organisation = db.get(Organisation, request.org_id)
    return {
        "external_request": {
            "id": request.id,
            "status": request.status,
            "user_id": request.user_id,
            "org_id": request.org_id,
            "org_name": organisation.name if organisation is not None else "",
            "title": request.title,
            "provider": request.provider,
            "start_date": request.start_date.isoformat(),
            "end_date": request.end_date.isoformat(),
            "reason": request.decline_reason,
        },
        "deciders": _deciders(db, request),
    }


def _booking_context(db: ServiceSession, booking_id: str) -> dict[str, Any]:
    booking = db.get(Booking, booking_id)
    if booking is None:
        raise NotFound("No such booking")
    return {
        "booking": {
            "id": booking.id,
            "status": booking.status,
            "user_id": booking.user_id,
            "org_id": booking.org_id,
            "waitlist_position": booking.waitlist_position,
            # The only close reason kept on the row; a cancellation's reason
            # travels in ``training.booking_cancelled`` alone.
            "reason": booking.decline_reason,
        },
        "event": _event(db, booking.event),
        "deciders": _deciders(db, booking),
        "ics": _ics(booking),
    }


def _event_context(db: ServiceSession, event_id: str) -> dict[str, Any]:
    event = db.get(Event, event_id)
    if event is None:
        raise NotFound("No such event")
    active = db.scalars(
        select(Booking)
        .where(Booking.event_id == event.id, Booking.status.in_(ACTIVE))
        .order_by(Booking.created_at, Booking.id)
    )
    return {
        "event": _event(db, event),
        "bookings": [
            {
                "id": booking.id,
                "user_id": booking.user_id,
                "status": booking.status,
                "ics": _ics(booking) if booking.status == "booked" else None,
            }
            for booking in active
        ],
    }


def notification_context(
    db: ServiceSession,
    booking_id: str | None = None,
    event_id: str | None = None,
    external_request_id: str | None = None,
) -> dict[str, Any]:
    """A booking's notice: ``{booking, event, deciders, ics}``; an event's:
    ``{event, bookings}`` for its active bookings; or an external request's:
    ``{external_request, deciders}``. Exactly one id (VALIDATION_FAILED
    otherwise); NOT_FOUND for an unknown one."""
    values = load(
        NoticeContextSchema(),
        {
            "booking_id": booking_id,
            "event_id": event_id,
            "external_request_id": external_request_id,
        },
    )
    if values["booking_id"]:
        return _booking_context(db, values["booking_id"])
    if values["external_request_id"]:
        return _external_context(db, values["external_request_id"])
    return _event_context(db, values["event_id"])


def sessions_starting(
    db: ServiceSession, start: Any, end: Any, offset: Any = 0, limit: Any = 500
) -> dict[str, Any]:
    """``{items, total}``: sessions of scheduled events starting in
    ``[start, end)``, soonest first (then by session id), each with the
    sorted ids of those booked on its event. Sessions nobody is booked on
    are left out (of ``total`` too)."""
    values = load(
        SessionWindowSchema(),
        {"start": start, "end": end, "offset": offset, "limit": limit},
    )
    anyone_booked = (
        select(Booking.id)
        .where(Booking.event_id == Session.event_id, Booking.status == "booked")
        .exists()
    )
    window = (
        select(
            Session.id,
            Session.event_id,
            Event.org_id,
            Organisation.name,
            Organisation.timezone,
            Course.title,
            Session.starts_at,
            Session.ends_at,
            Session.venue,
            Session.online_link,
        )
        .join(Event, Event.id == Session.event_id)
        .join(Course, Course.id == Event.course_id)
        .outerjoin(Organisation, Organisation.id == Event.org_id)
        .where(
            Event.status == "scheduled",
            Session.starts_at >= values["start"],
            Session.starts_at < values["end"],
            anyone_booked,
        )
    )
    total = db.scalar(select(func.count()).select_from(window.subquery()))
    rows = db.execute(
        window.order_by(Session.starts_at, Session.id)
        .offset(values["offset"])
        .limit(values["limit"])
    ).all()
    booked: dict[str, list[str]] = defaultdict(list)
    if rows:
        pairs = db.execute(
            select(Booking.event_id, Booking.user_id).where(
                Booking.event_id.in_({row.event_id for row in rows}),
                Booking.status == "booked",
            )
        )
        for event_id, user_id in pairs:
            booked[event_id].append(user_id)
    return {
        "items": [
            {
                "session_id": row.id,
                "event_id": row.event_id,
                "org_id": row.org_id,
                "org_name": row.name or "",
                "timezone": row.timezone or DEFAULT_TIMEZONE,
                "title": row.title,
                "starts_at": _iso(row.starts_at),
                "ends_at": _iso(row.ends_at),
                "venue": row.venue,
                "online_link": row.online_link,
                "user_ids": sorted(booked[row.event_id]),
            }
            for row in rows
        ],
        "total": total,
    }
