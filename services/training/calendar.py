"""iCalendar invites and private calendar feeds, built with ``icalendar``.

Each booking has one UID for its whole life. Its invite is one VEVENT for
the first session, with an RDATE per later session and an overriding VEVENT
(same UID, RECURRENCE-ID) giving each later session its own end and place.
Every change to the booking or its event raises SEQUENCE; a cancelled,
declined or expired booking, or a cancelled event, is sent as METHOD:CANCEL
with the same UID.

A feed is found by the SHA-256 of a random token that only the user knows;
making a new one revokes the old, and revoking leaves none.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from icalendar import Calendar
from icalendar import Event as VEvent
from sqlalchemy import select

from plumbing.database import ServiceSession
from plumbing.identity import Identity
from services.training import events
from services.training.bookings import calendar_uid, readable_booking
from services.training.exceptions import InvalidFeedToken
from services.training.models import Booking, CalendarFeed, Event, Session

PRODID = "-//CPD Platform//Training//EN"
CLOSED = ("cancelled", "declined", "expired")
# The token goes in the query string, which no access log line records.
FEED_PATH = "/api/v1/training/calendar-feed.ics?token={token}"


def _calendar(method: str | None = None) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    if method:
        calendar.add("method", method)
    return calendar


def _location(session: Session) -> str | None:
    return session.venue or session.online_link


def _vevent(
    booking: Booking, event: Event, session: Session, status: str, master: bool
) -> VEvent:
    vevent = VEvent()
    vevent.add("uid", calendar_uid(booking.id))
    vevent.add("sequence", booking.ical_sequence)
    vevent.add("dtstamp", booking.updated_at)
    vevent.add("dtstart", session.starts_at)
    vevent.add("dtend", session.ends_at)
    vevent.add("summary", event.course.title)
    vevent.add("status", status)
    location = _location(session)
    if location:
        vevent.add("location", location)
    if session.online_link:
        vevent.add("url", session.online_link)
    if event.facilitator:
        vevent.add("description", f"Facilitator: {event.facilitator}")
    if not master:
        vevent.add("recurrence-id", session.starts_at)
    return vevent


def booking_vevents(booking: Booking, event: Event) -> list[VEvent]:
    """The VEVENTs of one booking: the first session, then the others."""
    cancelled = booking.status in CLOSED or event.status == "cancelled"
    status = (
        "CANCELLED"
        if cancelled
        else "CONFIRMED"
        if booking.status == "booked"
        else "TENTATIVE"
    )
    sessions = list(event.sessions)
    master = _vevent(booking, event, sessions[0], status, master=True)
    if len(sessions) > 1:
        master.add("rdate", [session.starts_at for session in sessions[1:]])
    others = [_vevent(booking, event, s, status, master=False) for s in sessions[1:]]
    return [master, *others]


def invite(db: ServiceSession, caller: Identity, booking_id: str) -> dict[str, Any]:
    """The booking's current invite: METHOD:REQUEST, or METHOD:CANCEL once
    the booking or its event is cancelled. The booker, their line manager,
    or a CPD lead or reader of their org."""
    booking = readable_booking(db, caller, booking_id, "training.get_invite")
    return booking_invite(booking)


def booking_invite(booking: Booking) -> dict[str, Any]:
    """``{uid, sequence, method, ics}`` of a booking the caller has already
    been allowed to read (see :func:`invite`)."""
    event = booking.event
    cancelled = booking.status in CLOSED or event.status == "cancelled"
    method = "CANCEL" if cancelled else "REQUEST"
    calendar = _calendar(method)
    for vevent in booking_vevents(booking, event):
        calendar.add_component(vevent)
    return {
        "uid": calendar_uid(booking.id),
        "sequence": booking.ical_sequence,
        "method": method,
        "ics": calendar.to_ical().decode("utf-8"),
    }


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_feed(
    db: ServiceSession, caller: Identity, *, now: datetime
) -> dict[str, Any]:
    """Any user: a new private feed URL of their bookings; the old one stops
    working. The token is shown once. Emits ``training.calendar_feed_created``."""
    token = secrets.token_urlsafe(32)
    feed = db.get(CalendarFeed, caller.user_id)
    if feed is None:
        feed = CalendarFeed(user_id=caller.user_id)
        db.add(feed)
    feed.token_hash = _hash(token)
    feed.created_at = now
    db.emit(
        events.CALENDAR_FEED_CREATED,
        subject_type="user",
        subject_id=caller.user_id,
        org_id=caller.org_id,
    )
    db.commit()
    return {"token": token, "path": FEED_PATH.format(token=token)}


def revoke_feed(db: ServiceSession, caller: Identity) -> dict[str, Any]:
    """Any user: their feed URL stops working. Emits
    ``training.calendar_feed_revoked`` if there was one."""
    feed = db.get(CalendarFeed, caller.user_id)
    if feed is not None:
        db.delete(feed)
        db.emit(
            events.CALENDAR_FEED_REVOKED,
            subject_type="user",
            subject_id=caller.user_id,
            org_id=caller.org_id,
        )
        db.commit()
    return {"revoked": feed is not None}


def feed(db: ServiceSession, token: str) -> str:
    """The feed of the token's owner: every booked or waitlisted place.
    INVALID_FEED_TOKEN for an unknown or revoked token."""
    owner = db.scalar(
        select(CalendarFeed.user_id).where(CalendarFeed.token_hash == _hash(token))
    )
    if owner is None:
        raise InvalidFeedToken()
    calendar = _calendar()
    calendar.add("x-wr-calname", "My training")
    bookings = db.scalars(
        select(Booking)
        .where(Booking.user_id == owner, Booking.status.in_(("booked", "waitlisted")))
        .order_by(Booking.created_at)
    )
    for booking in bookings:
        for vevent in booking_vevents(booking, booking.event):
            calendar.add_component(vevent)
    return calendar.to_ical().decode("utf-8")
