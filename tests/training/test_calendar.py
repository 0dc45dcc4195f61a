"""Calendar invites and private feeds, parsed back with icalendar."""

from __future__ import annotations

import pytest
from icalendar import Calendar

from services.training import bookings, calendar, catalogue
from services.training.exceptions import InvalidFeedToken

from .conftest import DAY, T0, scheduled_event, sessions_from

START = T0 + 7 * DAY


def parse(ics):
    parsed = Calendar.from_ical(ics)
    return parsed, [c for c in parsed.walk("VEVENT")]


def test_an_invite_keeps_its_uid_and_raises_sequence_on_change_then_cancels(db, world):
    """REQUEST with SEQUENCE 0; moved sessions: 1; cancelled: METHOD:CANCEL, 2."""
    event = scheduled_event(db, world.lead, world.elm)
    booking = bookings.book_staff(
        db, world.lead.identity, event["id"], "tom", {}, now=T0
    )
    first = calendar.invite(db, world.tom.identity, booking["id"])
    parsed, vevents = parse(first["ics"])
    assert parsed["METHOD"] == "REQUEST"
    uid = str(vevents[0]["UID"])
    assert (len(vevents), vevents[0]["SEQUENCE"], vevents[0]["STATUS"]) == (
        1,
        0,
        "CONFIRMED",
    )
    assert vevents[0].decoded("DTSTART") == START

    catalogue.update_event(
        db,
        world.lead.identity,
        event["id"],
        {"sessions": sessions_from(START + DAY, (0, 3))},
        now=T0,
    )
    _, moved = parse(calendar.invite(db, world.tom.identity, booking["id"])["ics"])
    assert (str(moved[0]["UID"]), moved[0]["SEQUENCE"]) == (uid, 1)
    assert moved[0].decoded("DTSTART") == START + DAY

    bookings.cancel_booking(db, world.tom.identity, booking["id"], now=T0)
    parsed, cancelled = parse(
        calendar.invite(db, world.tom.identity, booking["id"])["ics"]
    )
    assert parsed["METHOD"] == "CANCEL"
    assert (str(cancelled[0]["UID"]), cancelled[0]["SEQUENCE"]) == (uid, 2)
    assert cancelled[0]["STATUS"] == "CANCELLED"


def test_a_multi_session_invite_lists_each_session_under_one_uid(db, world):
    """Two sessions: a master with RDATE and an override with RECURRENCE-ID."""
    sessions = sessions_from(START, (0, 3), (24, 2))
    event = scheduled_event(db, world.lead, world.elm, sessions=sessions)
    booking = bookings.book_staff(
        db, world.lead.identity, event["id"], "tom", {}, now=T0
    )
    _, vevents = parse(calendar.invite(db, world.tom.identity, booking["id"])["ics"])
    assert len({str(v["UID"]) for v in vevents}) == 1
    assert vevents[1].decoded("RECURRENCE-ID") == START + DAY
    assert vevents[1].decoded("DTEND") - vevents[1].decoded("DTSTART") == DAY / 12


def test_a_cancelled_event_sends_cancel_for_every_booking(db, world):
    """Cancelling the event makes the booking's invite METHOD:CANCEL."""
    event = scheduled_event(db, world.lead, world.elm)
    booking = bookings.book_staff(
        db, world.lead.identity, event["id"], "tom", {}, now=T0
    )
    catalogue.cancel_event(db, world.lead.identity, event["id"], now=T0)
    assert calendar.invite(db, world.tom.identity, booking["id"])["method"] == "CANCEL"


def test_a_feed_shows_the_owners_places_until_it_is_revoked(db, world):
    """The token opens Tom's feed; a new token or a revoke closes the old."""
    event = scheduled_event(db, world.lead, world.elm)
    bookings.book_staff(db, world.lead.identity, event["id"], "tom", {}, now=T0)
    bookings.book_staff(db, world.lead.identity, event["id"], "tara", {}, now=T0)
    made = calendar.create_feed(db, world.tom.identity, now=T0)
    _, vevents = parse(calendar.feed(db, made["token"]))
    assert [str(v["SUMMARY"]) for v in vevents] == ["Behaviour"]

    renewed = calendar.create_feed(db, world.tom.identity, now=T0)
    with pytest.raises(InvalidFeedToken):
        calendar.feed(db, made["token"])
    assert calendar.revoke_feed(db, world.tom.identity) == {"revoked": True}
    with pytest.raises(InvalidFeedToken):
        calendar.feed(db, renewed["token"])
