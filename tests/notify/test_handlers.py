"""From events to notifications and emails, at the domain level: who is
told, what the email holds, and what is never sent."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import eventlet
import pytest
from sqlalchemy import func, select

from plumbing.database import ServiceSession
from plumbing.envelope import make_event
from services.notify import handlers, messages, outbound, reminders
from services.notify.exceptions import EmailNotRetryable
from services.notify.mailer import Transport, send_due
from services.notify.models import (
    HELD,
    QUEUED,
    SUPPRESSED,
    Contact,
    Email,
    Notification,
)
from services.notify.settings import Settings
from tests.notify.conftest import (
    ICS_CANCEL,
    ICS_REQUEST,
    T0,
    FakeReviews,
    FakeTraining,
    MailSink,
    World,
    attachments,
    auth_event,
    body_html,
    body_text,
    booking_context,
    booking_event,
    event_info,
)
from tests.service_support import outbox, service_session


def notifications(
    db: ServiceSession, user_id: str, kind: str | None = None
) -> list[Notification]:
    db.rollback()
    query = select(Notification).where(Notification.user_id == user_id)
    if kind:
        query = query.where(Notification.kind == kind)
    return list(db.scalars(query.order_by(Notification.created_at)))


def emails(db: ServiceSession, user_id: str | None = None) -> list[Email]:
    db.rollback()
    query = select(Email).order_by(Email.created_at, Email.id)
    if user_id:
        query = query.where(Email.user_id == user_id)
    return list(db.scalars(query))


def elm_review(
    known: World, reviews: FakeReviews, state: str, **milestones: str
) -> str:
    """A review of Tom by Margo at Elm, as reviews would describe it; its id."""
    review_id = str(uuid.uuid4())
    reviews.reviews[review_id] = {
        "id": review_id,
        "org_id": known.elm,
        "org_name": "Elm Primary",
        "cycle_id": "c1",
        "cycle_name": "2030-31",
        "state": state,
        "reviewee_id": known.tom.id,
        "reviewer_id": known.margo.id,
        "milestones": milestones,
    }
    return review_id


def deliver(db: ServiceSession, settings: Settings) -> int:
    handled, _ = send_due(db, settings, Transport(settings), T0 + timedelta(days=1))
    return handled


def test_a_request_tells_the_line_manager_by_app_and_email(
    db: ServiceSession,
    known: World,
    training: FakeTraining,
    handle: Callable[..., Any],
    settings: Settings,
    mail_sink: MailSink,
) -> None:
    event = event_info(known)
    context = booking_context(
        known, event, "pending_manager", deciders=[known.margo.id]
    )
    training.bookings[context["booking"]["id"]] = context

    told = handle(
        booking_event("training.booking_requested", context, actor=known.tom.id)
    )

    assert told == 1
    [notice] = notifications(db, known.margo.id, "booking_requested")
    assert notice.title == "Tom Smith asks to attend Phonics in depth"
    assert notice.about_user_id == known.tom.id
    assert notifications(db, known.tom.id, "booking_requested") == []
    assert deliver(db, settings) == 1
    [message] = mail_sink.wait_for(1)
    assert message["To"] == "margo@example.org"
    assert message["Subject"] == "Tom Smith asks to attend Phonics in depth"
    text, html = body_text(message), body_html(message)
    assert "Hello Margo" in text and "Elm Primary" in text
    # Session times in the school's time zone (January: GMT).
    assert "Sun 13 Jan 2030, 09:00 to 12:00, Main hall" in text
    assert "<li>Sun 13 Jan 2030, 09:00 to 12:00, Main hall</li>" in html
    assert attachments(message) == []


def test_a_request_waiting_for_a_cpd_lead_tells_the_leads_of_school_and_trust(
    db: ServiceSession, known: World, training: FakeTraining, handle: Callable[..., Any]
) -> None:
    trust_lead, ash, ash_lead = (str(uuid.uuid4()) for _ in range(3))
    handle(
        auth_event(
            "auth.organisation_created",
            "organisation",
            ash,
            {"kind": "school", "name": "Ash Primary", "parent_trust_id": known.trust},
            org_id=ash,
        )
    )
    for user_id, name, org in (
        (trust_lead, "Tina", known.trust),
        (ash_lead, "Abe", ash),
    ):
        handle(
            auth_event(
                "auth.user_created",
                "user",
                user_id,
                {
                    "username": name.lower(),
                    "given_name": name,
                    "family_name": "Lead",
                    "email": f"{name.lower()}@example.org",
                    "org_id": org,
                    "roles": [{"role": "cpd_lead", "org_id": org}],
                },
            )
        )
    event = event_info(known)
    context = booking_context(known, event, "pending_cpd_lead", lead_org=known.elm)
    training.bookings[context["booking"]["id"]] = context

    handle(
        booking_event(
            "training.booking_approved", context, actor=known.margo.id, stage="manager"
        )
    )

    assert len(notifications(db, known.cleo.id, "booking_requested")) == 1
    assert len(notifications(db, trust_lead, "booking_requested")) == 1
    # The lead of another school of the same trust decides nothing at Elm.
    assert notifications(db, ash_lead, "booking_requested") == []
    [approved] = notifications(db, known.tom.id, "booking_approved")
    assert "a CPD lead decides next" in approved.body
    # Yves runs another school: never told.
    assert notifications(db, known.yves.id) == [
        n for n in notifications(db, known.yves.id) if n.kind == "account_created"
    ]


def test_a_booking_confirmation_carries_the_invite_and_a_cancellation_the_cancel(
    db: ServiceSession,
    known: World,
    training: FakeTraining,
    handle: Callable[..., Any],
    settings: Settings,
    mail_sink: MailSink,
) -> None:
    event = event_info(known)
    booked = booking_context(known, event, "booked", ics=ICS_REQUEST)
    training.bookings[booked["booking"]["id"]] = booked
    handle(booking_event("training.booking_booked", booked, before="approved"))
    deliver(db, settings)
    [message] = mail_sink.wait_for(1)
    assert message["Subject"] == "You are booked on Phonics in depth"
    [(filename, content_type, content)] = attachments(message)
    assert (filename, content_type) == ("invite.ics", "text/calendar")
    assert "METHOD:REQUEST" in content

    cancelled = dict(
        booked, booking=dict(booked["booking"], status="cancelled"), ics=ICS_CANCEL
    )
    training.bookings[booked["booking"]["id"]] = cancelled
    handle(
        booking_event(
            "training.booking_cancelled",
            cancelled,
            before="booked",
            reason="event_cancelled",
        )
    )
    deliver(db, settings)
    second = mail_sink.wait_for(2)[1]
    assert second["Subject"] == "Phonics in depth was cancelled"
    [(filename, _, content)] = attachments(second)
    assert filename == "cancel.ics" and "METHOD:CANCEL" in content


def test_declined_expired_and_waitlisted_tell_the_requester(
    db: ServiceSession, known: World, training: FakeTraining, handle: Callable[..., Any]
) -> None:
    event = event_info(known)
    for status, event_type, extra in (
        ("declined", "training.booking_declined", {"reason": "Budget spent"}),
        ("expired", "training.booking_expired", {}),
        ("waitlisted", "training.booking_waitlisted", {"waitlist_position": 3}),
    ):
        context = booking_context(known, event, status)
        training.bookings[context["booking"]["id"]] = context
        handle(booking_event(event_type, context, actor=known.margo.id, **extra))
    kinds = {
        n.kind: n
        for n in notifications(db, known.tom.id)
        if n.kind != "account_created"
    }
    assert kinds["booking_declined"].body.endswith("The reason given: Budget spent")
    assert "lapsed" in kinds["booking_expired"].body
    assert "number 3" in kinds["booking_waitlisted"].body


def test_the_same_event_twice_tells_once(
    db: ServiceSession, known: World, training: FakeTraining, handle: Callable[..., Any]
) -> None:
    event = event_info(known)
    context = booking_context(
        known, event, "pending_manager", deciders=[known.margo.id]
    )
    training.bookings[context["booking"]["id"]] = context
    envelope = booking_event("training.booking_requested", context)
    assert handle(envelope) == 1
    assert handle(envelope) is None
    assert len(notifications(db, known.margo.id, "booking_requested")) == 1
    assert len(emails(db, known.margo.id)) == 1


def test_a_request_already_decided_asks_nobody(
    db: ServiceSession, known: World, training: FakeTraining, handle: Callable[..., Any]
) -> None:
    event = event_info(known)
    context = booking_context(known, event, "booked")
    training.bookings[context["booking"]["id"]] = context
    assert handle(booking_event("training.booking_requested", context)) == 0


def test_an_unknown_booking_tells_nobody_and_training_down_raises(
    db: ServiceSession, known: World, training: FakeTraining, handle: Callable[..., Any]
) -> None:
    event = event_info(known)
    context = booking_context(
        known, event, "pending_manager", deciders=[known.margo.id]
    )
    envelope = booking_event("training.booking_requested", context)
    assert handle(envelope) == 0  # training does not know it

    other = booking_context(known, event, "pending_manager", deciders=[known.margo.id])
    training.bookings[other["booking"]["id"]] = other
    training.down = True
    second = booking_event("training.booking_requested", other)
    try:
        handle(second)
    except Exception as error:  # noqa: BLE001
        assert type(error).__name__ == "ServiceUnavailable"
    else:
        raise AssertionError("expected the handler to raise")
    db.rollback()
    # Nothing was kept: the event is handled in full when it comes back.
    training.down = False
    assert handle(second) == 1


def test_an_event_change_tells_everyone_on_it(
    db: ServiceSession, known: World, training: FakeTraining, handle: Callable[..., Any]
) -> None:
    event = event_info(known)
    training.events[event["id"]] = {
        "event": event,
        "bookings": [
            {
                "id": "b1",
                "user_id": known.tom.id,
                "status": "booked",
                "ics": ICS_REQUEST,
            },
            {
                "id": "b2",
                "user_id": known.margo.id,
                "status": "waitlisted",
                "ics": None,
            },
            {"id": "b3", "user_id": known.ada.id, "status": "cancelled", "ics": None},
        ],
    }
    envelope = make_event(
        "training.event_updated",
        subject_type="event",
        subject_id=event["id"],
        org_id=known.elm,
        changes={"sessions": {"before": [], "after": []}},
        actor={"user_id": known.cleo.id},
    )
    assert handle(envelope) == 2
    [tom] = emails(db, known.tom.id)
    assert tom.attachments[0]["content"] == ICS_REQUEST
    [margo] = emails(db, known.margo.id)
    assert margo.attachments == []
    assert notifications(db, known.ada.id, "event_updated") == []


def test_review_steps_and_shared_observations(
    db: ServiceSession, known: World, reviews: FakeReviews, handle: Callable[..., Any]
) -> None:
    review_id = elm_review(
        known,
        reviews,
        "self_review_submitted",
        objectives_due="2030-10-31",
        interim_due="2031-02-28",
        final_due="2031-07-15",
    )

    def review_event(event_type: str, actor: str) -> dict[str, Any]:
        return make_event(
            event_type,
            subject_type="review",
            subject_id=review_id,
            org_id=known.elm,
            data={"user_id": known.tom.id},
            actor={"user_id": actor},
        )

    handle(review_event("reviews.review_created", known.ada.id))
    handle(review_event("reviews.self_review_submitted", known.tom.id))
    handle(review_event("reviews.objectives_agreed", known.margo.id))
    [created] = notifications(db, known.tom.id, "review_created")
    assert created.title == "Your 2030-31 review has started"
    assert "Margo Smith is your reviewer" in created.body
    assert "Thu 31 Oct 2030" in created.body
    [submitted] = notifications(db, known.margo.id, "self_review_submitted")
    assert submitted.title == "Tom Smith submitted their self review"
    assert len(notifications(db, known.tom.id, "objectives_agreed")) == 1

    observation_id = str(uuid.uuid4())
    reviews.observations[observation_id] = {
        "id": observation_id,
        "org_id": known.elm,
        "org_name": "Elm Primary",
        "observer_id": known.margo.id,
        "observed_id": known.tom.id,
        "observed_on": "2030-11-04",
        "type": "drop_in",
        "visibility": "participants",
        "shared": True,
    }
    handle(
        make_event(
            "reviews.observation_shared",
            subject_type="observation",
            subject_id=observation_id,
            org_id=known.elm,
            actor={"user_id": known.margo.id},
        )
    )
    [shared] = notifications(db, known.tom.id, "observation_shared")
    assert shared.body.startswith(
        "Margo Smith shared their drop in observation of Mon 04 Nov 2030"
    )


def test_no_transaction_stays_open_while_notify_waits_on_another_service(
    db: ServiceSession, known: World, reviews: FakeReviews, settings: Settings
) -> None:
    """While a handler waits for reviews' answer its worker holds no database
    transaction, so its connection can serve other workers meanwhile."""
    review_id = elm_review(known, reviews, "planning")
    in_transaction_when_asked = []

    class WatchedReviews:
        def notification_context(self, **ids: Any) -> dict[str, Any]:
            in_transaction_when_asked.append(db.in_transaction())
            return reviews.notification_context(**ids)

    envelope = make_event(
        "reviews.review_created",
        subject_type="review",
        subject_id=review_id,
        org_id=known.elm,
        data={"user_id": known.tom.id},
        actor={"user_id": known.ada.id},
    )
    told = handlers.handle(
        db,
        envelope,
        now=T0,
        settings=settings,
        training=None,
        reviews=WatchedReviews(),
    )
    assert told == 1
    assert in_transaction_when_asked == [False]


def test_external_requests_follow_ups_and_comments(
    db: ServiceSession,
    known: World,
    training: FakeTraining,
    reviews: FakeReviews,
    handle: Callable[..., Any],
) -> None:
    request_id = str(uuid.uuid4())
    request = {
        "id": request_id,
        "status": "pending_manager",
        "user_id": known.tom.id,
        "org_id": known.elm,
        "org_name": "Elm Primary",
        "title": "Mastery conference",
        "provider": "Maths Hub",
        "start_date": "2030-03-04",
        "end_date": "2030-03-05",
        "reason": None,
    }
    training.external[request_id] = {
        "external_request": request,
        "deciders": {"user_ids": [known.margo.id], "cpd_lead_org_id": None},
    }

    def external_event(event_type: str, **data: Any) -> dict[str, Any]:
        return make_event(
            event_type,
            subject_type="external_request",
            subject_id=request_id,
            org_id=known.elm,
            data={"user_id": known.tom.id, **data},
        )

    handle(external_event("training.external_request_submitted"))
    [asked] = notifications(db, known.margo.id, "external_request_submitted")
    assert asked.title == "Tom Smith asks to attend Mastery conference"
    assert "Maths Hub, Mon 04 Mar 2030 to Tue 05 Mar 2030" in asked.body
    training.external[request_id] = {
        "external_request": dict(request, status="declined"),
        "deciders": {"user_ids": [], "cpd_lead_org_id": None},
    }
    handle(external_event("training.external_request_declined", reason="No budget"))
    [declined] = notifications(db, known.tom.id, "external_request_declined")
    assert declined.body.endswith("The reason given: No budget")

    event = event_info(known)
    attended = booking_context(known, event, "booked")
    training.bookings[attended["booking"]["id"]] = attended
    handle(
        make_event(
            "training.follow_up_requested",
            subject_type="booking",
            subject_id=attended["booking"]["id"],
            org_id=known.elm,
            data={"user_id": known.tom.id},
        )
    )
    [follow_up] = notifications(db, known.tom.id, "follow_up_requested")
    assert follow_up.title == "How has Phonics in depth changed your practice?"

    review_id = elm_review(known, reviews, "draft")

    def comment(author: str, visibility: str) -> dict[str, Any]:
        return make_event(
            "reviews.comment_added",
            subject_type="comment",
            subject_id=str(uuid.uuid4()),
            org_id=known.elm,
            changes={"text": {"before": None, "after": "private words"}},
            data={"review_id": review_id, "visibility": visibility},
            actor={"user_id": author},
        )

    handle(comment(known.tom.id, "shared"))
    handle(comment(known.ada.id, "reviewers"), now=T0 + timedelta(minutes=1))
    to_margo = notifications(db, known.margo.id, "comment_added")
    assert [n.title for n in to_margo] == [
        "Tom Smith commented on Tom Smith's 2030-31 review",
        "Ada Smith commented on Tom Smith's 2030-31 review",
    ]
    # Tom wrote the first and may not read the second.
    assert notifications(db, known.tom.id, "comment_added") == []
    handle(comment(known.margo.id, "shared"), now=T0 + timedelta(minutes=2))
    [to_tom] = notifications(db, known.tom.id, "comment_added")
    assert to_tom.title == "Margo Smith commented on your 2030-31 review"
    assert all("private words" not in n.body for n in to_margo + [to_tom])


def test_an_event_waits_a_little_for_a_recipient_not_known_yet(
    db: ServiceSession, known: World, training: FakeTraining, handle: Callable[..., Any]
) -> None:
    from services.notify.handlers import CONTACT_GRACE, ContactNotYetKnown

    newcomer = str(uuid.uuid4())
    context = booking_context(known, event_info(known), "expired")
    context["booking"]["user_id"] = newcomer
    training.bookings[context["booking"]["id"]] = context
    envelope = booking_event("training.booking_expired", context)
    occurred = datetime.fromisoformat(envelope["occurred_at"])
    with pytest.raises(ContactNotYetKnown):
        handle(envelope, now=occurred + timedelta(seconds=5))
    db.rollback()
    handle(
        auth_event(
            "auth.user_created",
            "user",
            newcomer,
            {"given_name": "Nia", "email": "nia@example.org", "org_id": known.elm},
        )
    )
    assert handle(envelope, now=occurred + timedelta(seconds=6)) == 1
    assert [e.to_address for e in emails(db, newcomer)] == ["nia@example.org"]

    # Someone never announced: after the grace, told in the app only.
    stranger = str(uuid.uuid4())
    other = booking_context(known, event_info(known), "expired")
    other["booking"]["user_id"] = stranger
    training.bookings[other["booking"]["id"]] = other
    late = booking_event("training.booking_expired", other)
    occurred = datetime.fromisoformat(late["occurred_at"])
    assert handle(late, now=occurred + CONTACT_GRACE + timedelta(seconds=1)) == 1
    assert emails(db, stranger) == []


def test_opting_out_keeps_the_app_notice_but_not_the_email(
    db: ServiceSession, known: World, training: FakeTraining, handle: Callable[..., Any]
) -> None:
    from services.notify import preferences

    preferences.update_preferences(
        db, known.tom.identity, {"email": {"bookings": False}}, now=T0
    )
    event = event_info(known)
    context = booking_context(known, event, "expired")
    training.bookings[context["booking"]["id"]] = context
    handle(booking_event("training.booking_expired", context))
    assert len(notifications(db, known.tom.id, "booking_expired")) == 1
    assert emails(db, known.tom.id) == []
    [changed] = outbox(db, "notify.preferences_updated")
    assert changed["changes"] == {"email_bookings": {"before": True, "after": False}}


def test_security_messages_go_whatever_the_choices(
    db: ServiceSession, known: World, handle: Callable[..., Any]
) -> None:
    from plumbing.errors import ValidationFailed
    from services.notify import preferences

    try:
        preferences.update_preferences(
            db, known.tom.identity, {"email": {"security": False}}, now=T0
        )
    except ValidationFailed as error:
        assert "security" in error.fields["email"]
    else:
        raise AssertionError("security must not be turned off")
    db.rollback()
    preferences.update_preferences(
        db, known.tom.identity, {"daily_digest": True}, now=T0
    )
    handle(
        auth_event(
            "auth.account_locked",
            "user",
            known.tom.id,
            org_id=known.elm,
            data={"locked_until": (T0 + timedelta(minutes=15)).isoformat()},
        )
    )
    handle(
        auth_event(
            "auth.password_changed",
            "user",
            known.tom.id,
            org_id=known.elm,
            actor=known.tom.id,
        )
    )
    statuses = {e.kind: e.status for e in emails(db, known.tom.id)}
    # Told even though Tom changed it himself, at once despite the digest.
    assert statuses == {"account_locked": QUEUED, "password_changed": QUEUED}


def test_sessions_ended_tell_the_person_only_when_it_is_news(
    db: ServiceSession, known: World, handle: Callable[..., Any]
) -> None:
    """An administrator's sign-out and a reused refresh token are security
    messages; sessions ended by a password change (told by its own message)
    or a deactivation tell nothing more."""
    for reason in ("revoked", "refresh_token_reused", "password_changed", "logout"):
        handle(
            auth_event(
                "auth.sessions_revoked",
                "user",
                known.tom.id,
                org_id=known.elm,
                data={"session_ids": [str(uuid.uuid4())], "reason_code": reason},
                actor=known.ada.id if reason == "revoked" else None,
            )
        )
    told = {e.kind: e for e in emails(db, known.tom.id)}
    assert set(told) == {"sessions_revoked", "session_token_reused"}
    assert all(e.status == QUEUED and e.category == "security" for e in told.values())
    assert told["sessions_revoked"].subject == "You were signed out everywhere"
    assert {n.kind for n in notifications(db, known.tom.id)} >= set(told)


def test_digest_choice_holds_emails(
    db: ServiceSession, known: World, training: FakeTraining, handle: Callable[..., Any]
) -> None:
    from services.notify import preferences

    preferences.update_preferences(
        db, known.tom.identity, {"daily_digest": True}, now=T0
    )
    event = event_info(known)
    context = booking_context(known, event, "expired")
    training.bookings[context["booking"]["id"]] = context
    handle(booking_event("training.booking_expired", context))
    [held] = emails(db, known.tom.id)
    assert held.status == HELD
    # Turning digests off sends what was held.
    preferences.update_preferences(
        db, known.tom.identity, {"daily_digest": False}, now=T0
    )
    assert emails(db, known.tom.id)[0].status == QUEUED


def test_rate_limit_holds_back_a_flood(
    db: ServiceSession,
    known: World,
    training: FakeTraining,
    handle: Callable[..., Any],
    settings: Settings,
) -> None:
    event = event_info(known)
    for _ in range(settings.emails_per_hour + 5):
        context = booking_context(known, event, "expired")
        training.bookings[context["booking"]["id"]] = context
        handle(booking_event("training.booking_expired", context))
    found = emails(db, known.tom.id)
    assert sum(e.status == QUEUED for e in found) == settings.emails_per_hour
    # Over the limit: held for the next digest, one email, not lost.
    assert sum(e.status == HELD for e in found) == 5
    assert (
        len(notifications(db, known.tom.id, "booking_expired"))
        == settings.emails_per_hour + 5
    )
    # An hour later the limit is free again.
    context = booking_context(known, event, "expired")
    training.bookings[context["booking"]["id"]] = context
    handle(
        booking_event("training.booking_expired", context),
        now=T0 + timedelta(hours=1, seconds=1),
    )
    assert emails(db, known.tom.id)[-1].status == QUEUED
    # The held five go out together in one digest, though Tom never chose one.
    evening = T0.replace(hour=settings.digest_hour + 1)
    assert reminders.send_digests(db, now=evening, settings=settings) == 1
    [digest] = [e for e in emails(db, known.tom.id) if e.kind == "digest"]
    assert digest.status == QUEUED and digest.subject == "Your CPD digest: 5 updates"


def test_two_workers_telling_one_person_at_once_keep_the_limit(
    db: ServiceSession, notify_db_url: str, known: World, settings: Settings
) -> None:
    """Each worker counts the emails of the hour, then adds one: without a
    lock both would count none and both send. The second waits for the
    first's transaction and counts its email."""
    settings = dataclasses.replace(settings, emails_per_hour=1)

    def tell(session: ServiceSession, key: str) -> None:
        messages.tell(
            session,
            user_id=known.tom.id,
            kind="booking_expired",
            params={"course": "Phonics"},
            dedupe_key=key,
            org_id=known.elm,
            now=T0,
            settings=settings,
        )

    with service_session(notify_db_url) as first:
        with service_session(notify_db_url) as second:
            tell(first, "first")
            waiting = eventlet.spawn(lambda: (tell(second, "second"), second.commit()))
            eventlet.sleep(0.5)
            assert not waiting.dead, "the second worker did not wait for the first"
            first.commit()
            with eventlet.Timeout(10):
                waiting.wait()
    assert sorted(e.status for e in emails(db, known.tom.id)) == [HELD, QUEUED]


def test_a_reset_code_email_is_never_queued_again(
    db: ServiceSession, known: World, settings: Settings
) -> None:
    recipient = {
        "user_id": known.tom.id,
        "org_id": known.elm,
        "email": "tom@example.org",
        "given_name": "Tom",
        "family_name": "Smith",
        "username": "tom",
    }
    answer = outbound.send_password_reset(
        db,
        {
            "recipient": recipient,
            "code": "ABCD-EFGH-IJKL",
            "expires_at": T0.isoformat(),
        },
        now=T0,
        settings=settings,
    )
    email = db.get(Email, answer["email_id"])
    email.status = "failed"
    db.commit()
    with pytest.raises(EmailNotRetryable):
        outbound.requeue_email(db, known.ada.identity, email.id, now=T0)


def test_contacts_follow_auth_events_in_any_order(
    db: ServiceSession, known: World, handle: Callable[..., Any]
) -> None:
    newer = auth_event(
        "auth.user_updated", "user", known.tom.id, {"email": "tom.new@example.org"}
    )
    older = auth_event(
        "auth.user_updated", "user", known.tom.id, {"email": "tom.old@example.org"}
    )
    older["occurred_at"] = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    handle(newer)
    handle(older)
    db.rollback()
    assert db.get(Contact, known.tom.id).email == "tom.new@example.org"
    handle(auth_event("auth.user_deactivated", "user", known.tom.id))
    db.rollback()
    assert db.get(Contact, known.tom.id).active is False


def test_a_role_event_grants_only_a_named_role_of_a_named_school(
    db: ServiceSession, known: World, handle: Callable[..., Any]
) -> None:
    before = list(db.get(Contact, known.tom.id).roles)
    handle(auth_event("auth.role_granted", "user", known.tom.id, data={}))
    handle(auth_event("auth.role_granted", "user", known.tom.id, data={"role": "x"}))
    db.rollback()
    assert db.get(Contact, known.tom.id).roles == before
    grant = {"role": "cpd_lead", "role_org_id": known.elm}
    handle(auth_event("auth.role_granted", "user", known.tom.id, data=grant))
    db.rollback()
    roles = db.get(Contact, known.tom.id).roles
    assert roles == [*before, {"role": "cpd_lead", "org_id": known.elm}]


def test_erasure_forgets_the_person_and_their_name_in_others_notices(
    db: ServiceSession, known: World, training: FakeTraining, handle: Callable[..., Any]
) -> None:
    event = event_info(known)
    context = booking_context(
        known, event, "pending_manager", deciders=[known.margo.id]
    )
    training.bookings[context["booking"]["id"]] = context
    handle(booking_event("training.booking_requested", context))
    expired = booking_context(known, event, "expired")
    training.bookings[expired["booking"]["id"]] = expired
    handle(booking_event("training.booking_expired", expired))

    handle(
        make_event(
            "audit.subject_key_erased",
            subject_type="user",
            subject_id=known.tom.id,
            org_id=known.elm,
            data={"key_id": "k1"},
            actor={"user_id": known.ada.id},
        )
    )

    db.rollback()
    contact = db.get(Contact, known.tom.id)
    assert (contact.email, contact.given_name, contact.family_name) == (
        None,
        None,
        None,
    )
    assert notifications(db, known.tom.id) == []
    assert all(
        e.to_address is None and e.text_body == "" for e in emails(db, known.tom.id)
    )
    [margo] = notifications(db, known.margo.id, "booking_requested")
    assert "Tom" not in margo.title + margo.body
    [unsent] = emails(db, known.margo.id)
    assert unsent.status == SUPPRESSED and "Tom" not in unsent.text_body
    assert unsent.to_address is None  # so no admin can queue it again
    with pytest.raises(EmailNotRetryable):
        outbound.requeue_email(db, known.ada.identity, unsent.id, now=T0)
    count = db.scalar(
        select(func.count()).select_from(Email).where(Email.text_body.contains("Tom"))
    )
    assert count == 0
