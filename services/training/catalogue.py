"""Courses (a school's or a trust's catalogue) and their events and sessions.

A course goes draft -> published -> archived. An event of a course goes
draft -> scheduled -> completed, or to cancelled from draft or scheduled.
Session times are stored in UTC; a time given without a zone is taken in the
event's school time zone, and answers show both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from plumbing.database import ServiceSession
from plumbing.envelope import diff
from plumbing.identity import Identity
from services.training import access, events
from services.training.directory import organisation
from services.training.exceptions import InvalidSessionTimes, InvalidState
from services.training.formatting import hours, local, money
from services.training.models import Booking, Course, Event, Session
from services.training.schemas import CourseSchema, EventSchema, EventUpdateSchema, load

ACTIVE_BOOKINGS = ("pending_manager", "pending_cpd_lead", "booked", "waitlisted")


# Courses


def dump_course(course: Course) -> dict[str, Any]:
    return {
        "id": course.id,
        "org_id": course.org_id,
        "title": course.title,
        "description": course.description,
        "provider_kind": course.provider_kind,
        "provider_name": course.provider_name,
        "category": course.category,
        "cpd_hours": hours(course.cpd_hours),
        "fee": money(course.fee),
        "audience": course.audience,
        "status": course.status,
    }


def _audited_course(course: Course) -> dict[str, Any]:
    # Without free-text description: the catalogue's changes stay readable.
    values = dump_course(course)
    values.pop("description")
    return values


def _emit_course(
    db: ServiceSession, event_type: str, course: Course, changes: dict[str, Any]
) -> None:
    db.emit(
        event_type,
        subject_type="course",
        subject_id=course.id,
        org_id=course.org_id,
        changes=changes,
    )


def create_course(
    db: ServiceSession, caller: Identity, data: Any, *, now: datetime
) -> dict[str, Any]:
    """A CPD lead covering ``org_id`` (a school, or a trust for a shared
    catalogue): add a draft course. Emits ``training.course_created``."""
    values = load(CourseSchema(), data)
    if values["org_id"] not in access.lead_orgs(caller):
        access.not_found(
            db, caller, "organisation", values["org_id"], "training.create_course"
        )
    organisation(db, values["org_id"])
    course = Course(**values, status="draft", created_at=now, updated_at=now)
    db.add(course)
    db.flush()
    after = _audited_course(course)
    _emit_course(
        db,
        events.COURSE_CREATED,
        course,
        {key: {"before": None, "after": value} for key, value in after.items()},
    )
    db.commit()
    return dump_course(course)


def visible_course(
    db: ServiceSession, caller: Identity, course_id: str, action: str
) -> Course:
    """A course the caller may see: published in a catalogue they reach, or
    any state for a CPD lead of its organisation."""
    course = db.get(Course, course_id)
    if course is None:
        access.not_found(db, caller, "course", course_id, action)
    managed = course.org_id in access.lead_orgs(caller)
    reachable = course.org_id in access.visible_orgs(db, caller)
    if not managed and not (reachable and course.status == "published"):
        access.not_found(db, caller, "course", course_id, action, course.org_id)
    return course


def managed_course(
    db: ServiceSession, caller: Identity, course_id: str, action: str
) -> Course:
    course = visible_course(db, caller, course_id, action)
    if course.org_id not in access.lead_orgs(caller):
        access.forbidden(db, caller, "course", course_id, action, course.org_id)
    return course


def get_course(db: ServiceSession, caller: Identity, course_id: str) -> dict[str, Any]:
    return dump_course(visible_course(db, caller, course_id, "training.get_course"))


def list_courses(
    db: ServiceSession, caller: Identity, status: str | None = None
) -> dict[str, Any]:
    """Published courses of every catalogue the caller reaches, and every
    course of the catalogues they run."""
    managed = access.lead_orgs(caller)
    reachable = access.visible_orgs(db, caller)
    query = (
        select(Course)
        .where(
            Course.org_id.in_(managed)
            | (Course.org_id.in_(reachable) & (Course.status == "published"))
        )
        .order_by(Course.title, Course.id)
    )
    if status is not None:
        query = query.where(Course.status == status)
    return {"items": [dump_course(course) for course in db.scalars(query)]}


def update_course(
    db: ServiceSession, caller: Identity, course_id: str, data: Any, *, now: datetime
) -> dict[str, Any]:
    """A CPD lead of the course's catalogue; not once archived. Emits
    ``training.course_updated`` with the changed fields."""
    values = load(CourseSchema(partial=True, exclude=("org_id",)), data)
    course = managed_course(db, caller, course_id, "training.update_course")
    if course.status == "archived":
        raise InvalidState("An archived course cannot be changed")
    before = _audited_course(course)
    for key, value in values.items():
        setattr(course, key, value)
    course.updated_at = now
    db.flush()
    changes = diff(before, _audited_course(course))
    if changes:
        _emit_course(db, events.COURSE_UPDATED, course, changes)
    db.commit()
    return dump_course(course)


COURSE_MOVES = {
    "published": ({"draft"}, events.COURSE_PUBLISHED),
    "archived": ({"draft", "published"}, events.COURSE_ARCHIVED),
}


def set_course_status(
    db: ServiceSession, caller: Identity, course_id: str, status: str, *, now: datetime
) -> dict[str, Any]:
    """Publish or archive a course (CPD lead of its catalogue)."""
    allowed_from, event_type = COURSE_MOVES[status]
    course = managed_course(db, caller, course_id, f"training.set_course_{status}")
    if course.status not in allowed_from:
        raise InvalidState(f"A {course.status} course cannot become {status}")
    changes = {"status": {"before": course.status, "after": status}}
    course.status = status
    course.updated_at = now
    _emit_course(db, event_type, course, changes)
    db.commit()
    return dump_course(course)


# Events and sessions


def dump_event(db: ServiceSession, event: Event) -> dict[str, Any]:
    timezone = organisation(db, event.org_id).timezone
    counts = dict(
        db.execute(
            select(Booking.status, func.count())
            .where(Booking.event_id == event.id)
            .group_by(Booking.status)
        )
        .tuples()
        .all()
    )
    return {
        "id": event.id,
        "course_id": event.course_id,
        "title": event.course.title,
        "org_id": event.org_id,
        "status": event.status,
        "capacity": event.capacity,
        "facilitator": event.facilitator,
        "timezone": timezone,
        "booking_deadline": _iso(event.booking_deadline),
        "starts_at": _iso(event.starts_at),
        "ends_at": _iso(event.ends_at),
        "booked": counts.get("booked", 0),
        "waitlisted": counts.get("waitlisted", 0),
        "sessions": [dump_session(session, timezone) for session in event.sessions],
    }


def dump_session(session: Session, timezone: str) -> dict[str, Any]:
    return {
        "id": session.id,
        "starts_at": _iso(session.starts_at),
        "ends_at": _iso(session.ends_at),
        "local_starts_at": local(session.starts_at, timezone),
        "local_ends_at": local(session.ends_at, timezone),
        "venue": session.venue,
        "online_link": session.online_link,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _in_zone(moment: datetime, timezone: str) -> datetime:
    """A time without a zone is the school's local time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=ZoneInfo(timezone))
    return moment


def checked_sessions(
    sessions: list[dict[str, Any]], timezone: str
) -> list[dict[str, Any]]:
    """Sessions in UTC order; InvalidSessionTimes if one ends before it
    starts or two overlap."""
    if not sessions:
        raise InvalidSessionTimes(
            "An event needs at least one session", {"sessions": ["Give a session."]}
        )
    placed = []
    for index, values in enumerate(sessions):
        starts = _in_zone(values["starts_at"], timezone)
        ends = _in_zone(values["ends_at"], timezone)
        if ends <= starts:
            raise InvalidSessionTimes(
                "A session ends before it starts",
                {f"sessions.{index}": ["The end must be after the start."]},
            )
        placed.append({**values, "starts_at": starts, "ends_at": ends})
    placed.sort(key=lambda session: session["starts_at"])
    for earlier, later in zip(placed, placed[1:], strict=False):
        if later["starts_at"] < earlier["ends_at"]:
            raise InvalidSessionTimes(
                "Two sessions of the event overlap",
                {"sessions": ["Sessions must not overlap."]},
            )
    return placed


def _event_org(db: ServiceSession, course: Course, org_id: str | None) -> str:
    """An event runs in the course's organisation or, for a trust course, in
    one of the trust's schools."""
    if org_id is None or org_id == course.org_id:
        return course.org_id
    school = organisation(db, org_id)
    if school.parent_trust_id != course.org_id:
        raise InvalidState("The event must run where the course's catalogue is")
    return org_id


def create_event(
    db: ServiceSession, caller: Identity, data: Any, *, now: datetime
) -> dict[str, Any]:
    """A CPD lead covering the event's organisation: add a draft event with
    its sessions. Emits ``training.event_created``."""
    values = load(EventSchema(), data)
    course = visible_course(db, caller, values["course_id"], "training.create_event")
    org_id = _event_org(db, course, values["org_id"])
    if org_id not in access.lead_orgs(caller):
        access.forbidden(db, caller, "course", course.id, "training.create_event")
    if course.status == "archived":
        raise InvalidState("An archived course has no new events")
    timezone = organisation(db, org_id).timezone
    sessions = checked_sessions(values["sessions"], timezone)
    deadline = values["booking_deadline"]
    event = Event(
        course_id=course.id,
        org_id=org_id,
        status="draft",
        capacity=values["capacity"],
        facilitator=values["facilitator"],
        booking_deadline=_in_zone(deadline, timezone) if deadline else None,
        starts_at=sessions[0]["starts_at"],
        ends_at=max(session["ends_at"] for session in sessions),
        created_at=now,
        updated_at=now,
    )
    event.sessions = [Session(**session) for session in sessions]
    db.add(event)
    db.flush()
    dumped = dump_event(db, event)
    db.emit(
        events.EVENT_CREATED,
        subject_type="event",
        subject_id=event.id,
        org_id=org_id,
        changes={
            key: {"before": None, "after": dumped[key]}
            for key in ("course_id", "capacity", "facilitator", "sessions")
        },
    )
    db.commit()
    return dumped


def visible_event(
    db: ServiceSession, caller: Identity, event_id: str, action: str
) -> Event:
    """An event the caller may see: scheduled or later in an org they reach,
    or any state for a CPD lead of its organisation."""
    event = db.get(Event, event_id)
    if event is None:
        access.not_found(db, caller, "event", event_id, action)
    managed = event.org_id in access.lead_orgs(caller)
    reachable = event.org_id in access.visible_orgs(db, caller)
    if not managed and not (reachable and event.status != "draft"):
        access.not_found(db, caller, "event", event_id, action, event.org_id)
    return event


def managed_event(
    db: ServiceSession, caller: Identity, event_id: str, action: str, lock: bool = False
) -> Event:
    event = visible_event(db, caller, event_id, action)
    if event.org_id not in access.lead_orgs(caller):
        access.forbidden(db, caller, "event", event_id, action, event.org_id)
    if lock:
        lock_event(db, event.id)
    return event


def lock_event(db: ServiceSession, event_id: str) -> Event:
    """Hold the event's row until commit: every decision about its places
    (booking, waitlisting, promotion, cancellation) is taken under this lock,
    so two instances never give away the same place."""
    db.execute(select(Event.id).where(Event.id == event_id).with_for_update())
    event = db.get(Event, event_id, populate_existing=True)
    assert event is not None
    return event


def get_event(db: ServiceSession, caller: Identity, event_id: str) -> dict[str, Any]:
    return dump_event(db, visible_event(db, caller, event_id, "training.get_event"))


def list_events(
    db: ServiceSession,
    caller: Identity,
    course_id: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Events the caller may see, soonest first."""
    managed = access.lead_orgs(caller)
    reachable = access.visible_orgs(db, caller)
    query = (
        select(Event)
        .where(
            Event.org_id.in_(managed)
            | (Event.org_id.in_(reachable) & (Event.status != "draft"))
        )
        .order_by(Event.starts_at, Event.id)
    )
    if course_id is not None:
        query = query.where(Event.course_id == course_id)
    if status is not None:
        query = query.where(Event.status == status)
    return {"items": [dump_event(db, event) for event in db.scalars(query)]}


def update_event(
    db: ServiceSession, caller: Identity, event_id: str, data: Any, *, now: datetime
) -> dict[str, Any]:
    """A CPD lead of the event's org: change capacity, facilitator, deadline
    or sessions of a draft or scheduled event. Every active booking's invite
    gets a higher SEQUENCE; places freed by a larger capacity go to the
    waitlist. Emits ``training.event_updated``."""
    from services.training import bookings

    values = load(EventUpdateSchema(), data)
    event = managed_event(db, caller, event_id, "training.update_event", lock=True)
    if event.status not in ("draft", "scheduled"):
        raise InvalidState(f"A {event.status} event cannot be changed")
    timezone = organisation(db, event.org_id).timezone
    before = dump_event(db, event)
    if values.get("capacity", event.capacity) < before["booked"]:
        raise InvalidState(
            f"{before['booked']} places are booked; cancel some before lowering "
            "the capacity below that"
        )
    if "sessions" in values and event.starts_at <= now:
        raise InvalidState("The sessions cannot change once the event has begun")
    if "sessions" in values:
        sessions = checked_sessions(values.pop("sessions"), timezone)
        event.sessions = [Session(**session) for session in sessions]
        event.starts_at = sessions[0]["starts_at"]
        event.ends_at = max(session["ends_at"] for session in sessions)
    if values.get("booking_deadline") is not None:
        values["booking_deadline"] = _in_zone(values["booking_deadline"], timezone)
    for key, value in values.items():
        setattr(event, key, value)
    event.updated_at = now
    db.flush()
    db.expire(event, ["sessions"])
    after = dump_event(db, event)
    changes = diff(
        {key: before[key] for key in ("capacity", "facilitator", "sessions")},
        {key: after[key] for key in ("capacity", "facilitator", "sessions")},
    )
    if changes:
        db.emit(
            events.EVENT_UPDATED,
            subject_type="event",
            subject_id=event.id,
            org_id=event.org_id,
            changes=changes,
        )
        bookings.bump_invites(db, event.id, now=now)
        bookings.fill_from_waitlist(db, event, now=now)
    db.commit()
    return dump_event(db, event)


def schedule_event(
    db: ServiceSession, caller: Identity, event_id: str, *, now: datetime
) -> dict[str, Any]:
    """A CPD lead: open a draft event of a published course for booking.
    Emits ``training.event_scheduled``."""
    event = managed_event(db, caller, event_id, "training.schedule_event", lock=True)
    if event.status != "draft":
        raise InvalidState(f"A {event.status} event cannot be scheduled")
    if event.course.status != "published":
        raise InvalidState("Publish the course before scheduling its events")
    return _move_event(db, event, "scheduled", events.EVENT_SCHEDULED, now)


def _move_event(
    db: ServiceSession, event: Event, status: str, event_type: str, now: datetime
) -> dict[str, Any]:
    db.emit(
        event_type,
        subject_type="event",
        subject_id=event.id,
        org_id=event.org_id,
        changes={"status": {"before": event.status, "after": status}},
    )
    event.status = status
    event.updated_at = now
    db.commit()
    return dump_event(db, event)


def cancel_event(
    db: ServiceSession, caller: Identity, event_id: str, *, now: datetime
) -> dict[str, Any]:
    """A CPD lead: cancel a draft or scheduled event and every booking and
    request on it. Emits ``training.event_cancelled`` and, per booking,
    ``training.booking_cancelled`` (``data.reason`` ``event_cancelled``), from
    which those booked are told and their calendars get METHOD:CANCEL."""
    from services.training import bookings

    event = managed_event(db, caller, event_id, "training.cancel_event", lock=True)
    if event.status not in ("draft", "scheduled"):
        raise InvalidState(f"A {event.status} event cannot be cancelled")
    active = db.scalars(
        select(Booking)
        .where(Booking.event_id == event.id, Booking.status.in_(ACTIVE_BOOKINGS))
        .order_by(Booking.created_at, Booking.id)
    )
    for booking in active:
        bookings.close_booking(db, booking, "event_cancelled", now=now)
    return _move_event(db, event, "cancelled", events.EVENT_CANCELLED, now)
