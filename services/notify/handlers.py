"""From an event to the people it concerns.

Events carry ids, not the course title or the reviewer: those are asked of
the service that sent the event (``notification_context``, an RPC the notify
service makes on its own account) when the event is handled. So a message
says what is true when it is written: a request already decided when its
``booking_requested`` arrives asks nobody to decide it.

Each event is handled once: its id is stored with the notifications it
made, in one transaction, and each notification's ``dedupe_key`` is the
event id. When training or reviews cannot answer (down, slow) the handler
raises and the event goes back to the queue; an id they do not know (deleted
since) or refuse as invalid is logged and dropped.

Who is told of what (never the person who did it):

- ``training.booking_requested``: who decides it now (the line manager, or
  the CPD leads of the school and trust when it waits for them);
  ``booking_approved``: the requester if another stage is left, with the
  CPD leads to decide it (a final approval is told by ``booking_booked`` or
  ``booking_waitlisted``); ``booking_declined``, ``booking_expired``,
  ``booking_waitlisted``: the requester; ``booking_booked``,
  ``booking_promoted``: the requester with the invite;
  ``booking_cancelled``: the requester, with the cancellation if they held a
  place. ``training.event_cancelled`` cancels each booking, and each
  ``booking_cancelled`` says so.
- ``training.event_updated``: everyone booked (with the updated invite),
  waiting or asking.
- ``training.external_request_submitted``, ``_approved``, ``_declined``,
  ``_expired``: as for bookings (no invite: the training is elsewhere).
- ``training.follow_up_requested``: the person who attended.
- ``training.calendar_feed_created``: its owner (security).
- ``reviews.review_created``: the reviewee; ``reviewer_assigned``: the new
  reviewer; ``objectives_agreed``, ``interim_review_recorded``,
  ``final_review_recorded``, ``review_closed``: the reviewee;
  ``self_review_submitted``, ``review_signed_off``: the reviewer;
  ``observation_shared``: the person observed; ``comment_added``: the
  reviewer and (unless the comment is for reviewers only) the reviewee,
  never the author.
- ``auth.user_created``: the new user, in the app (their email is the
  invitation); ``auth.password_changed``, ``password_reset_completed``,
  ``account_locked``: the user (security, always emailed).
- ``audit.subject_key_erased`` of a user: erasure (:func:`contacts.erase`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from plumbing.database import ServiceSession
from plumbing.errors import NotFound, ValidationFailed
from services.notify import contacts
from services.notify.messages import name_of, tell
from services.notify.models import ProcessedEvent
from services.notify.render import day, session_line, when
from services.notify.settings import Settings

log = structlog.get_logger()

AUTH_EVENTS = (
    "organisation_created",
    "user_created",
    "user_updated",
    "user_deactivated",
    "user_reactivated",
    "role_granted",
    "role_revoked",
    "password_changed",
    "password_reset_completed",
    "account_locked",
    "sessions_revoked",
)
TRAINING_EVENTS = (
    "booking_requested",
    "booking_approved",
    "booking_declined",
    "booking_expired",
    "booking_booked",
    "booking_waitlisted",
    "booking_promoted",
    "booking_cancelled",
    "event_updated",
    "calendar_feed_created",
    "external_request_submitted",
    "external_request_approved",
    "external_request_declined",
    "external_request_expired",
    "follow_up_requested",
)
REVIEWS_EVENTS = (
    "review_created",
    "reviewer_assigned",
    "objectives_agreed",
    "interim_review_recorded",
    "self_review_submitted",
    "final_review_recorded",
    "review_signed_off",
    "review_closed",
    "observation_shared",
    "comment_added",
)
AUDIT_EVENTS = ("subject_key_erased",)
# What the notify queue is bound to: ``{source: routing keys}``.
SUBSCRIPTIONS = {
    "auth": AUTH_EVENTS,
    "training": TRAINING_EVENTS,
    "reviews": REVIEWS_EVENTS,
    "audit": AUDIT_EVENTS,
}

PENDING = ("pending_manager", "pending_cpd_lead")
ACTIVE = ("booked", "waitlisted", *PENDING)
REVIEWEE_STEPS = {
    "reviews.objectives_agreed": "objectives_agreed",
    "reviews.interim_review_recorded": "interim_review_recorded",
    "reviews.final_review_recorded": "final_review_recorded",
    "reviews.review_closed": "review_closed",
}
REVIEWER_STEPS = {
    "reviews.self_review_submitted": "self_review_submitted",
    "reviews.review_signed_off": "review_signed_off",
}
SECURITY_EVENTS = {
    "auth.password_changed": "password_changed",
    "auth.password_reset_completed": "password_changed",
    "auth.account_locked": "account_locked",
}
# ``auth.sessions_revoked`` tells the person only when it is news to them:
# an administrator signed them out, or a stolen sign-in was cut off. Ended
# by a password change or reset, the password message says it; ended by
# deactivation, they are told nothing.
SESSIONS_ENDED = {
    "revoked": "sessions_revoked",
    "refresh_token_reused": "session_token_reused",
}
# How long an event waits for a recipient's ``auth.user_created``.
CONTACT_GRACE = timedelta(minutes=2)
# Told even to the person who did it: it may not have been them.
SECURITY_KINDS = frozenset(
    {
        "password_changed",
        "account_locked",
        "calendar_feed_created",
        *SESSIONS_ENDED.values(),
    }
)


@dataclass
class Message:
    """One person to tell, and what."""

    user_id: str
    kind: str
    params: dict[str, Any]
    org_id: str | None
    subject_type: str | None = None
    subject_id: str | None = None
    about_user_id: str | None = None
    link: str | None = None
    attachments: list[dict[str, str]] | None = None


def is_repeat(db: ServiceSession, event_id: str) -> bool:
    return db.get(ProcessedEvent, event_id) is not None


def handle(
    db: ServiceSession,
    envelope: dict[str, Any],
    *,
    now: datetime,
    settings: Settings,
    training: Any,
    reviews: Any,
) -> int | None:
    """Handle one event and commit; the number of people told, or None for
    an event handled before."""
    event_id = str(envelope["event_id"])
    if is_repeat(db, event_id):
        return None
    # Ask the other services first, with no transaction open meanwhile: the
    # connection goes back to the pool while this worker waits on an RPC.
    db.rollback()
    messages = plan(db, envelope, training=training, reviews=reviews)
    _wait_for_contacts(db, envelope, messages, now)
    db.rollback()
    db.add(ProcessedEvent(event_id=event_id, processed_at=now))
    try:
        db.flush()
    except IntegrityError:
        db.rollback()  # another instance handled it meanwhile
        return None
    apply_side_effects(db, envelope, now=now)
    actor = (envelope.get("actor") or {}).get("user_id")
    told = 0
    # In one order everywhere: telling takes each recipient's rate-limit lock
    # (see ``messages.lock_recipient``), and two events telling the same
    # people must not wait on each other in a circle.
    for message in sorted(messages, key=lambda m: m.user_id):
        if message.user_id == actor and message.kind not in SECURITY_KINDS:
            continue
        notification = tell(
            db,
            user_id=message.user_id,
            kind=message.kind,
            params=message.params,
            dedupe_key=event_id,
            org_id=message.org_id,
            now=now,
            settings=settings,
            subject_type=message.subject_type,
            subject_id=message.subject_id,
            about_user_id=message.about_user_id,
            link=message.link,
            attachments=message.attachments,
        )
        told += notification is not None
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        return None
    return told


class ContactNotYetKnown(Exception):
    """A recipient's ``auth.user_created`` has not arrived yet; it travels on
    another queue and may come a moment after the event that names them."""


def _wait_for_contacts(
    db: ServiceSession, envelope: dict[str, Any], messages: list[Message], now: datetime
) -> None:
    """Send a fresh event back to wait (a fault that passes) while a
    recipient is unknown; after ``CONTACT_GRACE`` tell them in the app only
    (someone created before notify first listened: see ``sync_contacts``)."""
    if envelope["type"].startswith("auth.") or not messages:
        return
    unknown = sorted(
        {m.user_id for m in messages if db.get(contacts.Contact, m.user_id) is None}
    )
    if not unknown:
        return
    occurred = envelope["occurred_at"]
    if not isinstance(occurred, datetime):
        occurred = datetime.fromisoformat(str(occurred))
    if now - occurred < CONTACT_GRACE:
        raise ContactNotYetKnown(f"{len(unknown)} recipient(s) not known yet")
    log.warning(
        "notify_recipients_unknown", event_type=envelope["type"], user_ids=unknown
    )


def apply_side_effects(
    db: ServiceSession, envelope: dict[str, Any], *, now: datetime
) -> None:
    """Keep the copy of contacts; erase a person."""
    event_type = envelope["type"]
    if event_type.startswith("auth."):
        contacts.apply_auth_event(db, envelope)
        db.flush()
    elif event_type == "audit.subject_key_erased":
        if envelope["subject"]["type"] == "user":
            contacts.erase(db, envelope["subject"]["id"], now=now)


def plan(
    db: ServiceSession, envelope: dict[str, Any], *, training: Any, reviews: Any
) -> list[Message]:
    """Who to tell of this event, and what; asks training or reviews for
    the details. An unknown id (deleted since) tells nobody."""
    event_type = envelope["type"]
    planner = _PLANNERS.get(event_type)
    if planner is None:
        return []
    try:
        return planner(db, envelope, training, reviews)
    except (NotFound, ValidationFailed) as error:
        # Deleted since, or an id the service cannot read: waiting will not
        # help. Anything else (a service away or slow) is tried again.
        log.warning(
            "notify_event_unanswerable", event_type=event_type, error=error.code
        )
        return []


# -- auth -------------------------------------------------------------------


def _auth(db: ServiceSession, envelope: dict[str, Any], *_: Any) -> list[Message]:
    event_type = envelope["type"]
    user_id = envelope["subject"]["id"]
    after = {k: c.get("after") for k, c in (envelope.get("changes") or {}).items()}
    username = after.get("username")
    if username is None:
        known = db.get(contacts.Contact, user_id)
        username = known.username if known is not None else ""
    params: dict[str, Any] = {"username": username}
    if event_type == "auth.user_created":
        return [Message(user_id, "account_created", params, envelope.get("org_id"))]
    if event_type == "auth.sessions_revoked":
        reason = (envelope.get("data") or {}).get("reason_code")
        kind = SESSIONS_ENDED.get(reason) if isinstance(reason, str) else None
        if kind is None:
            return []
        return [Message(user_id, kind, params, envelope.get("org_id"), "user", user_id)]
    kind = SECURITY_EVENTS[event_type]
    until = (envelope.get("data") or {}).get("locked_until")
    if until:
        params["until"] = when(until, "UTC") + " UTC"
    return [Message(user_id, kind, params, envelope.get("org_id"), "user", user_id)]


# -- training ---------------------------------------------------------------


def _event_params(event: dict[str, Any]) -> dict[str, Any]:
    timezone = event.get("timezone")
    return {
        "course": event.get("title") or "a course",
        "facilitator": event.get("facilitator"),
        "sessions": [session_line(s, timezone) for s in event.get("sessions") or ()],
        "school": event.get("org_name") or "",
    }


def _invite(ics: str | None, cancel: bool = False) -> list[dict[str, str]]:
    if not ics:
        return []
    method = "CANCEL" if cancel else "REQUEST"
    return [
        {
            "filename": "cancel.ics" if cancel else "invite.ics",
            "content_type": f"text/calendar; method={method}",
            "content": ics,
        }
    ]


def _deciders_told(
    db: ServiceSession,
    context: dict[str, Any],
    requester: str,
    kind: str,
    params: dict[str, Any],
    common: dict[str, Any],
) -> list[Message]:
    """Tell whoever decides a pending request now (training's ``deciders``:
    the line manager, or the CPD leads of a school and its trust)."""
    people = list(context["deciders"]["user_ids"])
    lead_org = context["deciders"].get("cpd_lead_org_id")
    if lead_org:
        people += contacts.cpd_leads(db, lead_org)
    who = name_of(db, requester)
    return [
        Message(person, kind, {**params, "who": who}, about_user_id=requester, **common)
        for person in dict.fromkeys(people)
        if person != requester
    ]


def _booking(
    db: ServiceSession, envelope: dict[str, Any], training: Any, _reviews: Any
) -> list[Message]:
    event_type = envelope["type"]
    context = training.notification_context(booking_id=envelope["subject"]["id"])
    booking, event = context["booking"], context["event"]
    data = envelope.get("data") or {}
    before = ((envelope.get("changes") or {}).get("status") or {}).get("before")
    params = _event_params(event)
    requester = booking["user_id"]
    common = {
        "org_id": booking["org_id"],
        "subject_type": "booking",
        "subject_id": booking["id"],
        "link": f"/api/v1/training/bookings/{booking['id']}",
    }
    status = booking["status"]

    def deciders() -> list[Message]:
        return _deciders_told(
            db, context, requester, "booking_requested", params, common
        )

    def requester_told(kind: str, **extra: Any) -> list[Message]:
        attachments = extra.pop("attachments", None)
        return [
            Message(
                requester, kind, {**params, **extra}, attachments=attachments, **common
            )
        ]

    if event_type == "training.booking_requested":
        return deciders() if status in PENDING else []
    if event_type == "training.booking_approved":
        if status != "pending_cpd_lead":
            return []  # told by booking_booked or booking_waitlisted
        return (
            requester_told(
                "booking_approved", stage=data.get("stage"), waiting_for_lead=True
            )
            + deciders()
        )
    if event_type == "training.booking_declined":
        return requester_told("booking_declined", reason=data.get("reason"))
    if event_type == "training.booking_expired":
        return requester_told("booking_expired")
    if event_type == "training.booking_waitlisted":
        if status != "waitlisted":
            return []
        position = data.get("waitlist_position") or booking.get("waitlist_position")
        return requester_told("booking_waitlisted", position=position)
    if event_type in ("training.booking_booked", "training.booking_promoted"):
        if status != "booked":
            return []  # cancelled since; that event tells them
        kind = event_type.removeprefix("training.")
        return requester_told(kind, attachments=_invite(context.get("ics")))
    # training.booking_cancelled
    held_place = before == "booked"
    return requester_told(
        "booking_cancelled",
        reason=data.get("reason"),
        attachments=_invite(context.get("ics"), cancel=True) if held_place else [],
    )


def _event_updated(
    db: ServiceSession, envelope: dict[str, Any], training: Any, _reviews: Any
) -> list[Message]:
    context = training.notification_context(event_id=envelope["subject"]["id"])
    event = context["event"]
    params = _event_params(event)
    found = []
    for booking in context["bookings"]:
        if booking["status"] not in ACTIVE:
            continue
        attachments = _invite(booking.get("ics"))
        found.append(
            Message(
                booking["user_id"],
                "event_updated",
                {**params, "has_invite": bool(attachments)},
                org_id=event["org_id"],
                subject_type="event",
                subject_id=event["id"],
                link=f"/api/v1/training/events/{event['id']}",
                attachments=attachments,
            )
        )
    return found


def _external(
    db: ServiceSession, envelope: dict[str, Any], training: Any, _reviews: Any
) -> list[Message]:
    event_type = envelope["type"].removeprefix("training.")
    context = training.notification_context(
        external_request_id=envelope["subject"]["id"]
    )
    request = context["external_request"]
    requester = request["user_id"]
    params = {
        "course": request.get("title") or "a course",
        "provider": request.get("provider") or "",
        "dates": _dates(request.get("start_date"), request.get("end_date")),
        "school": request.get("org_name") or "",
        "reason": (envelope.get("data") or {}).get("reason") or request.get("reason"),
    }
    common = {
        "org_id": request["org_id"],
        "subject_type": "external_request",
        "subject_id": request["id"],
        "link": f"/api/v1/training/external-requests/{request['id']}",
    }

    def deciders() -> list[Message]:
        return _deciders_told(
            db, context, requester, "external_request_submitted", params, common
        )

    status = request["status"]
    if event_type == "external_request_submitted":
        return deciders() if status in PENDING else []
    if event_type == "external_request_approved":
        waiting = status == "pending_cpd_lead"
        told = [
            Message(
                requester,
                "external_request_approved",
                {**params, "waiting_for_lead": waiting},
                **common,
            )
        ]
        return told + (deciders() if waiting else [])
    return [Message(requester, event_type, params, **common)]


def _dates(start: str | None, end: str | None) -> str:
    if not start:
        return "dates to be confirmed"
    if not end or end == start:
        return day(start)
    return f"{day(start)} to {day(end)}"


def _follow_up(
    db: ServiceSession, envelope: dict[str, Any], training: Any, _reviews: Any
) -> list[Message]:
    context = training.notification_context(booking_id=envelope["subject"]["id"])
    booking = context["booking"]
    return [
        Message(
            booking["user_id"],
            "follow_up_requested",
            _event_params(context["event"]),
            org_id=booking["org_id"],
            subject_type="booking",
            subject_id=booking["id"],
            link=f"/api/v1/training/bookings/{booking['id']}",
        )
    ]


def _feed(db: ServiceSession, envelope: dict[str, Any], *_: Any) -> list[Message]:
    user_id = envelope["subject"]["id"]
    return [
        Message(
            user_id,
            "calendar_feed_created",
            {},
            envelope.get("org_id"),
            "user",
            user_id,
        )
    ]


# -- reviews ----------------------------------------------------------------


def _review_params(db: ServiceSession, review: dict[str, Any]) -> dict[str, Any]:
    milestones = review.get("milestones") or {}
    return {
        "cycle": review.get("cycle_name") or "this cycle",
        "school": review.get("org_name") or "",
        "reviewer": name_of(db, review["reviewer_id"])
        if review.get("reviewer_id")
        else None,
        "objectives_due": day(milestones["objectives_due"])
        if milestones.get("objectives_due")
        else "the date set",
    }


def _review(
    db: ServiceSession, envelope: dict[str, Any], _training: Any, reviews: Any
) -> list[Message]:
    event_type = envelope["type"]
    review = reviews.notification_context(review_id=envelope["subject"]["id"])["review"]
    params = _review_params(db, review)
    reviewee, reviewer = review["reviewee_id"], review.get("reviewer_id")
    common = {
        "org_id": review["org_id"],
        "subject_type": "review",
        "subject_id": review["id"],
        "link": f"/api/v1/reviews/reviews/{review['id']}",
    }
    if event_type == "reviews.review_created":
        return [Message(reviewee, "review_created", params, **common)]
    if event_type == "reviews.reviewer_assigned":
        if not reviewer:
            return []
        who = name_of(db, reviewee)
        return [
            Message(
                reviewer,
                "reviewer_assigned",
                {**params, "who": who},
                about_user_id=reviewee,
                **common,
            )
        ]
    if event_type in REVIEWEE_STEPS:
        who = name_of(db, reviewer) if reviewer else "your reviewer"
        return [
            Message(
                reviewee,
                REVIEWEE_STEPS[event_type],
                {**params, "who": who},
                about_user_id=reviewer,
                **common,
            )
        ]
    if not reviewer:
        return []
    return [
        Message(
            reviewer,
            REVIEWER_STEPS[event_type],
            {**params, "who": name_of(db, reviewee)},
            about_user_id=reviewee,
            **common,
        )
    ]


def _comment(
    db: ServiceSession, envelope: dict[str, Any], _training: Any, reviews: Any
) -> list[Message]:
    """The review's people other than the author: a comment for reviewers
    only never goes to the reviewee."""
    data = envelope.get("data") or {}
    review = reviews.notification_context(review_id=data["review_id"])["review"]
    author = (envelope.get("actor") or {}).get("user_id")
    reviewee, reviewer = review["reviewee_id"], review.get("reviewer_id")
    people = [reviewer]
    if data.get("visibility") != "reviewers":
        people.append(reviewee)
    params = _review_params(db, review)
    who = name_of(db, author)
    found = []
    for person in dict.fromkeys(p for p in people if p and p != author):
        whose = "your" if person == reviewee else f"{name_of(db, reviewee)}'s"
        found.append(
            Message(
                person,
                "comment_added",
                {**params, "who": who, "whose": whose},
                org_id=review["org_id"],
                subject_type="review",
                subject_id=review["id"],
                about_user_id=author,
                link=f"/api/v1/reviews/reviews/{review['id']}",
            )
        )
    return found


def _observation(
    db: ServiceSession, envelope: dict[str, Any], _training: Any, reviews: Any
) -> list[Message]:
    found = reviews.notification_context(observation_id=envelope["subject"]["id"])
    observation = found["observation"]
    observer = observation["observer_id"]
    return [
        Message(
            observation["observed_id"],
            "observation_shared",
            {
                "who": name_of(db, observer),
                "observation_type": str(observation.get("type") or "").replace(
                    "_", " "
                ),
                "observed_on": day(observation["observed_on"]),
                "school": observation.get("org_name") or "",
            },
            org_id=observation["org_id"],
            subject_type="observation",
            subject_id=observation["id"],
            about_user_id=observer,
            link=f"/api/v1/reviews/observations/{observation['id']}",
        )
    ]


Planner = Callable[[ServiceSession, dict[str, Any], Any, Any], list[Message]]
_PLANNERS: dict[str, Planner] = {
    "auth.user_created": _auth,
    **{event_type: _auth for event_type in SECURITY_EVENTS},
    "auth.sessions_revoked": _auth,
    **{
        f"training.{name}": _booking
        for name in TRAINING_EVENTS
        if name.startswith("booking_")
    },
    "training.event_updated": _event_updated,
    "training.calendar_feed_created": _feed,
    "reviews.review_created": _review,
    "reviews.reviewer_assigned": _review,
    **{event_type: _review for event_type in (*REVIEWEE_STEPS, *REVIEWER_STEPS)},
    "reviews.observation_shared": _observation,
    "reviews.comment_added": _comment,
    **{
        f"training.{name}": _external
        for name in TRAINING_EVENTS
        if name.startswith("external_request_")
    },
    "training.follow_up_requested": _follow_up,
}
