"""Reminders and digests at the domain level: each once, whatever runs
them again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from plumbing.database import ServiceSession
from services.notify import preferences, reminders
from services.notify.mailer import Transport, send_due
from services.notify.models import DIGESTED, HELD, QUEUED, Digest, Email, Notification
from services.notify.settings import Settings
from tests.notify.conftest import (
    ICS_REQUEST,
    T0,
    FakeReviews,
    FakeTraining,
    MailSink,
    World,
    attachments,
    body_text,
    booking_context,
    booking_event,
    event_info,
)


def test_session_reminders_go_the_day_before_and_once(
    db: ServiceSession, known: World, training: FakeTraining, settings: Settings
) -> None:
    soon = T0 + timedelta(hours=20)
    later = T0 + timedelta(hours=30)
    for starts in (soon, later):
        training.sessions.append(
            {
                "session_id": str(uuid.uuid4()),
                "event_id": "e1",
                "org_id": known.elm,
                "org_name": "Elm Primary",
                "timezone": "Europe/London",
                "title": "Phonics in depth",
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=1)).isoformat(),
                "venue": "Hall",
                "online_link": None,
                "user_ids": [known.tom.id],
            }
        )
    assert reminders.session_reminders(db, training, now=T0, settings=settings) == 1
    assert reminders.session_reminders(db, training, now=T0, settings=settings) == 0
    # Ten hours on, the second session is within a day: its turn, once.
    assert (
        reminders.session_reminders(
            db, training, now=T0 + timedelta(hours=10), settings=settings
        )
        == 1
    )
    db.rollback()
    found = list(
        db.scalars(select(Notification).where(Notification.kind == "session_reminder"))
    )
    assert len(found) == 2
    assert found[0].title.startswith(
        "Reminder: Phonics in depth starts Mon 07 Jan 2030, 05:00"
    )


def test_milestone_reminders_name_whose_review_and_go_once(
    db: ServiceSession, known: World, reviews: FakeReviews, settings: Settings
) -> None:
    reviews.due.append(
        {
            "review_id": "r1",
            "cycle_id": "c1",
            "cycle_name": "2030-31",
            "org_id": known.elm,
            "org_name": "Elm Primary",
            "milestone": "objectives_due",
            "due_on": "2030-01-10",
            "reviewee_id": known.tom.id,
            "user_ids": [known.margo.id, known.tom.id],
        }
    )
    assert reminders.milestone_reminders(db, reviews, now=T0, settings=settings) == 2
    assert reminders.milestone_reminders(db, reviews, now=T0, settings=settings) == 0
    db.rollback()
    margo = db.scalar(
        select(Notification).where(
            Notification.user_id == known.margo.id,
            Notification.kind == "milestone_reminder",
        )
    )
    tom = db.scalar(
        select(Notification).where(
            Notification.user_id == known.tom.id,
            Notification.kind == "milestone_reminder",
        )
    )
    assert margo.title == "Agreeing objectives due Thu 10 Jan 2030: 2030-31"
    assert "of Tom Smith" in margo.body
    assert "of Tom Smith" not in tom.body


def test_a_daily_digest_gathers_held_emails_once(
    db: ServiceSession,
    known: World,
    training: FakeTraining,
    handle: Callable[..., Any],
    settings: Settings,
    mail_sink: MailSink,
) -> None:
    preferences.update_preferences(
        db, known.tom.identity, {"daily_digest": True}, now=T0
    )
    event = event_info(known)
    for minute, (status, event_type, ics) in enumerate(
        (
            ("booked", "training.booking_booked", ICS_REQUEST),
            ("expired", "training.booking_expired", None),
        )
    ):
        context = booking_context(known, event, status, ics=ics)
        training.bookings[context["booking"]["id"]] = context
        handle(booking_event(event_type, context), now=T0 + timedelta(minutes=minute))
    db.rollback()
    assert {e.status for e in db.scalars(select(Email))} == {HELD}

    digest_settings = replace(settings, digest_hour=16)
    morning = T0.replace(hour=9)
    assert reminders.send_digests(db, now=morning, settings=digest_settings) == 0
    evening = T0.replace(hour=17)
    assert reminders.send_digests(db, now=evening, settings=digest_settings) == 1
    assert reminders.send_digests(db, now=evening, settings=digest_settings) == 0
    db.rollback()
    statuses = sorted(e.status for e in db.scalars(select(Email)))
    assert statuses == [DIGESTED, DIGESTED, QUEUED]
    assert db.scalar(select(Digest).where(Digest.user_id == known.tom.id)).email_id

    send_due(db, settings, Transport(settings), evening)
    [message] = mail_sink.wait_for(1)
    assert message["Subject"] == "Your CPD digest: 2 updates"
    text = body_text(message)
    assert "You are booked on Phonics in depth" in text
    assert "Your request for Phonics in depth expired" in text
    assert [a[0] for a in attachments(message)] == ["1-invite.ics"]
