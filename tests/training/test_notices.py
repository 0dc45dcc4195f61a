"""What the notify service reads of training (notification_context and
sessions_starting), through the service container over real RabbitMQ and
PostgreSQL: only notify on its own account may ask, and asking emits
nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from icalendar import Calendar
from nameko.exceptions import RemoteError

from plumbing.errors import from_remote
from plumbing.identity import Identity, service_identity
from services.training import bookings, calendar, catalogue, costs, events, records
from services.training.bookings import calendar_uid
from services.training.models import Organisation
from services.training.service import TrainingService
from tests.service_support import outbox

from .conftest import DAY, T0, add_person, scheduled_event, sessions_from

NOTIFY = service_identity("notify")
START = T0 + 7 * DAY


def error_of(caught):
    error = from_remote(caught.value.value)
    assert error is not None, caught.value
    return error


@pytest.fixture
def notify(container_factory, training_config, training_rpc):
    """The training service running; ``with notify() as training: ...`` calls
    it as the notify service."""
    container_factory(TrainingService, training_config).start()
    return lambda: training_rpc(NOTIFY)


def _set(db, org_id, **values):
    org = db.get(Organisation, org_id)
    for key, value in values.items():
        setattr(org, key, value)
    db.commit()


def _method(ics):
    return str(Calendar.from_ical(ics)["METHOD"])


def _uids(ics):
    return {str(v["UID"]) for v in Calendar.from_ical(ics).walk("VEVENT")}


# notification_context, booking form


def test_a_pending_request_names_who_decides_it_now_and_has_no_invite(
    notify, world, db
):
    """pending_manager: the line manager from the staff copy; then, the
    school asking for its CPD lead's approval, pending_cpd_lead: the school."""
    _set(db, world.elm, cpd_lead_approval=True, name="Elm Primary")
    event = scheduled_event(
        db,
        world.lead,
        world.elm,
        sessions=sessions_from(START, (24, 2), (0, 3)),
    )
    asked = bookings.request_booking(db, world.tom.identity, event["id"], {}, now=T0)
    first, second = sorted(event["sessions"], key=lambda s: s["starts_at"])
    before = len(outbox(db))

    with notify() as training:
        pending = training.notification_context(booking_id=asked["id"])
    assert pending == {
        "booking": {
            "id": asked["id"],
            "status": "pending_manager",
            "user_id": "tom",
            "org_id": world.elm,
            "waitlist_position": None,
            "reason": None,
        },
        "event": {
            "id": event["id"],
            "org_id": world.elm,
            "org_name": "Elm Primary",
            "timezone": "Europe/London",
            "title": "Behaviour",
            "facilitator": "Fran",
            "status": "scheduled",
            "sessions": [
                {
                    "id": session["id"],
                    "starts_at": session["starts_at"],
                    "ends_at": session["ends_at"],
                    "venue": "Elm hall",
                    "online_link": None,
                }
                for session in (first, second)
            ],
        },
        "deciders": {"user_ids": ["margo"], "cpd_lead_org_id": None},
        "ics": None,
    }
    assert pending["event"]["sessions"][0]["starts_at"] == START.isoformat()
    assert pending["event"]["sessions"][0]["starts_at"].endswith("+00:00")

    bookings.approve_booking(db, world.manager.identity, asked["id"], now=T0)
    with notify() as training:
        lead_stage = training.notification_context(booking_id=asked["id"])
    assert lead_stage["booking"]["status"] == "pending_cpd_lead"
    assert lead_stage["deciders"] == {"user_ids": [], "cpd_lead_org_id": world.elm}
    assert lead_stage["ics"] is None
    # Reading changed nothing and emitted nothing (the approval did, before).
    assert [e["type"] for e in outbox(db)[before:]] == [events.BOOKING_APPROVED]


def test_a_booked_booking_carries_its_invite_and_a_closed_one_the_cancel(
    notify, training_rpc, world, db
):
    """Booked: METHOD:REQUEST under the booking's UID, the very text
    get_invite answers; cancelled: METHOD:CANCEL; declined: the reason too."""
    event = scheduled_event(db, world.lead, world.elm)
    booked = bookings.book_staff(
        db, world.lead.identity, event["id"], "tom", {}, now=T0
    )

    with notify() as training:
        context = training.notification_context(booking_id=booked["id"])
    with training_rpc(world.lead.identity) as training:
        invite = training.get_invite(booked["id"])
    assert context["booking"]["status"] == "booked"
    assert context["deciders"] == {"user_ids": [], "cpd_lead_org_id": None}
    assert _method(context["ics"]) == "REQUEST"
    assert "METHOD:REQUEST" in context["ics"]
    assert _uids(context["ics"]) == {calendar_uid(booked["id"])}
    assert context["ics"] == invite["ics"]

    bookings.cancel_booking(db, world.tom.identity, booked["id"], now=T0)
    declined = bookings.request_booking(
        db, world.tara.identity, event["id"], {}, now=T0
    )
    bookings.decline_booking(
        db, world.manager.identity, declined["id"], {"reason": "Ofsted week"}, now=T0
    )
    with notify() as training:
        cancelled = training.notification_context(booking_id=booked["id"])
        refused = training.notification_context(booking_id=declined["id"])
    assert cancelled["booking"]["status"] == "cancelled"
    assert "METHOD:CANCEL" in cancelled["ics"]
    assert _uids(cancelled["ics"]) == {calendar_uid(booked["id"])}
    assert (
        cancelled["ics"]
        == calendar.invite(db, world.lead.identity, booked["id"])["ics"]
    )
    assert (refused["booking"]["status"], refused["booking"]["reason"]) == (
        "declined",
        "Ofsted week",
    )
    assert _method(refused["ics"]) == "CANCEL"


def test_a_waitlisted_booking_has_its_position_and_no_invite(notify, world, db):
    event = scheduled_event(db, world.lead, world.elm, capacity=1)
    bookings.book_staff(db, world.lead.identity, event["id"], "tom", {}, now=T0)
    waiting = bookings.book_staff(
        db, world.lead.identity, event["id"], "tara", {}, now=T0
    )
    with notify() as training:
        context = training.notification_context(booking_id=waiting["id"])
    assert context["booking"]["status"] == "waitlisted"
    assert context["booking"]["waitlist_position"] == 1
    assert context["ics"] is None


# notification_context, event form


def test_the_event_form_lists_active_bookings_with_invites_for_places_only(
    notify, world, db
):
    """Booked (with its REQUEST), waitlisted, pending_manager and
    pending_cpd_lead are listed; a cancelled booking is not. Once the event
    is cancelled, none is active and its status says so."""
    _set(db, world.yew, timezone="Europe/Dublin")
    yan = add_person(db, "yan", world.yew, {"staff": [world.yew]}, manager="yves")
    yvo = add_person(db, "yvo", world.yew, {"staff": [world.yew]})
    for user_id in ("yara", "yuri", "yoko"):
        add_person(db, user_id, world.yew, {"staff": [world.yew]})
    event = scheduled_event(db, world.yew_lead, world.yew, capacity=1)
    lead = world.yew_lead.identity
    booked = bookings.book_staff(db, lead, event["id"], "yara", {}, now=T0)
    waiting = bookings.book_staff(db, lead, event["id"], "yuri", {}, now=T0)
    gone = bookings.book_staff(db, lead, event["id"], "yoko", {}, now=T0)
    bookings.cancel_booking(db, lead, gone["id"], now=T0)
    manager_stage = bookings.request_booking(db, yan.identity, event["id"], {}, now=T0)
    _set(db, world.yew, cpd_lead_approval=True)
    lead_stage = bookings.request_booking(db, yvo.identity, event["id"], {}, now=T0)

    with notify() as training:
        context = training.notification_context(event_id=event["id"])
    assert context["event"]["id"] == event["id"]
    assert (context["event"]["org_name"], context["event"]["timezone"]) == (
        "School-Yew",
        "Europe/Dublin",
    )
    assert [s["id"] for s in context["event"]["sessions"]] == [
        s["id"] for s in event["sessions"]
    ]
    listed = {b["id"]: b for b in context["bookings"]}
    assert {b["id"]: b["status"] for b in context["bookings"]} == {
        booked["id"]: "booked",
        waiting["id"]: "waitlisted",
        manager_stage["id"]: "pending_manager",
        lead_stage["id"]: "pending_cpd_lead",
    }
    assert set(listed[booked["id"]]) == {"id", "user_id", "status", "ics"}
    assert listed[booked["id"]]["user_id"] == "yara"
    assert _method(listed[booked["id"]]["ics"]) == "REQUEST"
    assert _uids(listed[booked["id"]]["ics"]) == {calendar_uid(booked["id"])}
    others = [b["ics"] for b in context["bookings"] if b["id"] != booked["id"]]
    assert others == [None, None, None]

    catalogue.cancel_event(db, lead, event["id"], now=T0)
    with notify() as training:
        after = training.notification_context(event_id=event["id"])
        closed = training.notification_context(booking_id=booked["id"])
    assert (after["event"]["status"], after["bookings"]) == ("cancelled", [])
    assert closed["event"]["status"] == "cancelled"
    assert _method(closed["ics"]) == "CANCEL"


# sessions_starting


def test_sessions_starting_takes_start_in_and_end_out_of_the_window(notify, world, db):
    """Two sessions a day apart: a window from the first start to the second
    start holds the first only; one a second later holds the second only."""
    event = scheduled_event(
        db,
        world.lead,
        world.elm,
        capacity=2,
        sessions=sessions_from(START, (0, 3), (24, 2)),
    )
    bookings.book_staff(db, world.lead.identity, event["id"], "tom", {}, now=T0)
    bookings.book_staff(db, world.lead.identity, event["id"], "margo", {}, now=T0)
    first, second = event["sessions"]
    second_start = START + timedelta(hours=24)
    before = len(outbox(db))

    with notify() as training:
        at_start = training.sessions_starting(
            START.isoformat(), second_start.isoformat()
        )
        after_start = training.sessions_starting(
            (START + timedelta(seconds=1)).isoformat(),
            (second_start + timedelta(seconds=1)).isoformat(),
        )
        just_before = training.sessions_starting(
            (START - DAY).isoformat(), START.isoformat()
        )
        zulu = training.sessions_starting(
            START.strftime("%Y-%m-%dT%H:%M:%SZ"), (START + DAY * 2).isoformat()
        )
    assert at_start == {
        "items": [
            {
                "session_id": first["id"],
                "event_id": event["id"],
                "org_id": world.elm,
                "org_name": "School-Elm",
                "timezone": "Europe/London",
                "title": "Behaviour",
                "starts_at": START.isoformat(),
                "ends_at": (START + timedelta(hours=3)).isoformat(),
                "venue": "Elm hall",
                "online_link": None,
                "user_ids": ["margo", "tom"],
            }
        ],
        "total": 1,
    }
    assert [i["session_id"] for i in after_start["items"]] == [second["id"]]
    assert just_before == {"items": [], "total": 0}
    assert [i["session_id"] for i in zulu["items"]] == [first["id"], second["id"]]
    assert len(outbox(db)) == before


def test_sessions_starting_lists_only_scheduled_events_and_booked_people(
    notify, world, db
):
    """Waitlisted, pending and cancelled people are left out; cancelled,
    draft and completed events too, as is a session nobody is booked on.
    Sessions at the same time come in session id order; pages keep total."""
    lead = world.lead.identity
    listed = scheduled_event(db, world.lead, world.elm, capacity=1)
    bookings.book_staff(db, lead, listed["id"], "tom", {}, now=T0)
    bookings.book_staff(db, lead, listed["id"], "tara", {}, now=T0)  # waitlisted
    tia = add_person(db, "tia", world.elm, {"staff": [world.elm]}, manager="margo")
    bookings.request_booking(db, tia.identity, listed["id"], {}, now=T0)
    also = scheduled_event(db, world.lead, world.elm, capacity=3)
    bookings.book_staff(db, lead, also["id"], "tara", {}, now=T0)
    gone = bookings.book_staff(db, lead, also["id"], "margo", {}, now=T0)
    bookings.cancel_booking(db, lead, gone["id"], now=T0)

    cancelled = scheduled_event(db, world.lead, world.elm)
    bookings.book_staff(db, lead, cancelled["id"], "eve", {}, now=T0)
    catalogue.cancel_event(db, lead, cancelled["id"], now=T0)
    completed = scheduled_event(db, world.lead, world.elm)
    bookings.book_staff(db, lead, completed["id"], "eve", {}, now=T0)
    records.complete_event(db, lead, completed["id"], now=START + DAY)
    scheduled_event(db, world.lead, world.elm)  # nobody booked
    course = catalogue.create_course(
        db, lead, {"org_id": world.elm, "title": "Draft", "cpd_hours": "1"}, now=T0
    )
    catalogue.create_event(
        db,
        lead,
        {
            "course_id": course["id"],
            "capacity": 5,
            "sessions": sessions_from(START, (0, 1)),
        },
        now=T0,
    )

    window = (START.isoformat(), (START + DAY).isoformat())
    with notify() as training:
        everything = training.sessions_starting(*window)
        page = training.sessions_starting(*window, offset=1, limit=1)
        past_the_end = training.sessions_starting(*window, offset=5)
    expected = sorted(
        [
            (listed["sessions"][0]["id"], listed["id"], ["tom"]),
            (also["sessions"][0]["id"], also["id"], ["tara"]),
        ]
    )
    assert [
        (i["session_id"], i["event_id"], i["user_ids"]) for i in everything["items"]
    ] == expected
    assert everything["total"] == 2
    assert page == {"items": [everything["items"][1]], "total": 2}
    assert past_the_end == {"items": [], "total": 2}


# Who may ask, and bad input


@pytest.mark.parametrize(
    "identity",
    [
        Identity("tom", "school-elm", scopes={"staff": ["school-elm"]}),
        service_identity("gateway"),
        # Claiming to be notify without its service identity's user.
        Identity("tom", "school-elm", service="notify"),
        Identity("service:notify", "", service=None),
    ],
    ids=["staff", "gateway", "user-as-notify", "notify-user-without-service"],
)
def test_anyone_but_notify_on_its_own_account_is_refused_and_recorded(
    container_factory, training_config, training_rpc, world, db, identity
):
    container_factory(TrainingService, training_config).start()
    event = scheduled_event(db, world.lead, world.elm)
    booked = bookings.book_staff(
        db, world.lead.identity, event["id"], "tom", {}, now=T0
    )
    before = len(outbox(db))
    with training_rpc(identity) as training:
        with pytest.raises(RemoteError) as context:
            training.notification_context(booking_id=booked["id"])
        with pytest.raises(RemoteError) as starting:
            training.sessions_starting(START.isoformat(), (START + DAY).isoformat())
    for caught in (context, starting):
        assert (error_of(caught).code, error_of(caught).status) == ("FORBIDDEN", 403)
    assert [e["type"] for e in outbox(db)[before:]] == [events.AUTHZ_DENIED] * 2
    denied = outbox(db, events.AUTHZ_DENIED)
    assert [e["data"]["action"] for e in denied] == [
        "training.notification_context",
        "training.sessions_starting",
    ]
    assert {e["actor"]["user_id"] for e in denied} == {identity.user_id}


CONTEXT_IDS = ("booking_id", "event_id", "external_request_id")


def test_an_external_request_names_its_title_and_who_decides_it(notify, world, db):
    """Asked: the line manager decides; declined: the reason, nobody to ask."""
    _set(db, world.elm, name="Elm Primary")
    asked = costs.submit_external_request(
        db,
        world.tom.identity,
        {
            "provider": "Maths Hub",
            "title": "Mastery conference",
            "start_date": "2030-03-04",
            "end_date": "2030-03-05",
            "days": "2",
            "hours": "10",
            "fee": "150",
            "travel_cost": "40",
            "cover_needed": False,
            "rationale": "Fractions",
            "intended_impact": "Better fraction teaching",
        },
        now=T0,
    )
    with notify() as training:
        pending = training.notification_context(external_request_id=asked["id"])
    assert pending == {
        "external_request": {
            "id": asked["id"],
            "status": "pending_manager",
            "user_id": "tom",
            "org_id": world.elm,
            "org_name": "Elm Primary",
            "title": "Mastery conference",
            "provider": "Maths Hub",
            "start_date": "2030-03-04",
            "end_date": "2030-03-05",
            "reason": None,
        },
        "deciders": {"user_ids": ["margo"], "cpd_lead_org_id": None},
    }
    costs.decline_external_request(
        db, world.manager.identity, asked["id"], {"reason": "No budget"}, now=T0
    )
    with notify() as training:
        declined = training.notification_context(external_request_id=asked["id"])
        with pytest.raises(RemoteError) as caught:
            training.notification_context(external_request_id="missing")
    assert declined["external_request"]["status"] == "declined"
    assert declined["external_request"]["reason"] == "No budget"
    assert declined["deciders"] == {"user_ids": [], "cpd_lead_org_id": None}
    assert error_of(caught).code == "NOT_FOUND"


def test_bad_input_fails_with_the_fields_and_unknown_ids_are_not_found(
    notify, world, db
):
    window = (START.isoformat(), (START + DAY).isoformat())
    bad_calls = [
        ("notification_context", (), {}, set(CONTEXT_IDS)),
        (
            "notification_context",
            (),
            {"booking_id": "b", "event_id": "e"},
            set(CONTEXT_IDS),
        ),
        ("notification_context", (), {"booking_id": 5}, {"booking_id"}),
        ("sessions_starting", ("soon", window[1]), {}, {"start"}),
        ("sessions_starting", ("2030-01-13T09:00:00", window[1]), {}, {"start"}),
        ("sessions_starting", (window[0], None), {}, {"end"}),
        ("sessions_starting", (window[1], window[0]), {}, {"end"}),
        ("sessions_starting", (window[0], window[0]), {}, {"end"}),
        ("sessions_starting", window, {"limit": 0}, {"limit"}),
        ("sessions_starting", window, {"limit": 1001}, {"limit"}),
        ("sessions_starting", window, {"limit": "10"}, {"limit"}),
        ("sessions_starting", window, {"offset": -1}, {"offset"}),
    ]
    with notify() as training:
        assert training.sessions_starting(*window, limit=1000)["total"] == 0
        for method, args, kwargs, fields in bad_calls:
            with pytest.raises(RemoteError) as caught:
                getattr(training, method)(*args, **kwargs)
            error = error_of(caught)
            assert (error.code, error.status) == ("VALIDATION_FAILED", 422), method
            assert set(error.fields) == fields, (args, kwargs, error.fields)
        for kwargs in ({"booking_id": "no-such"}, {"event_id": "no-such"}):
            with pytest.raises(RemoteError) as caught:
                training.notification_context(**kwargs)
            assert (error_of(caught).code, error_of(caught).status) == (
                "NOT_FOUND",
                404,
            )
    assert outbox(db) == []
