"""The training routes over HTTP, in front of the real training service and
its PostgreSQL database, on the test's RabbitMQ vhost."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from gateway_support import SECRET
from icalendar import Calendar
from sqlalchemy.orm import sessionmaker

from gateway.openapi import _routes, build_spec, openapi_path
from gateway.service import GatewayService
from gateway.training_routes import TrainingRoutes
from plumbing.database import ServiceSession, make_engine
from plumbing.tokens import issue_access_token
from services.training.models import Organisation, Staff
from services.training.service import TrainingService

ELM, YEW = "school-elm", "school-yew"


ROLES = {
    "lena": (ELM, {"cpd_lead": [ELM]}),
    "margo": (ELM, {"staff": [ELM], "line_manager": [ELM]}),
    "tom": (ELM, {"staff": [ELM]}),
    "yves": (YEW, {"cpd_lead": [YEW]}),
}


class Client:
    """``requests`` against one gateway; the base URL is prefixed."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 20)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)


def token(user_id: str) -> dict[str, str]:
    org_id, scopes = ROLES[user_id]
    value, _ = issue_access_token(
        SECRET,
        user_id=user_id,
        org_id=org_id,
        session_id=uuid.uuid4().hex,
        scopes=scopes,
    )
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def training_url(make_database: Callable[[str], str]) -> str:
    """A training database with Elm (Lena, Margo managing Tom) and Yew."""
    url = make_database("training")
    engine = make_engine(url)
    db = sessionmaker(bind=engine, class_=ServiceSession)()
    try:
        for org_id in (ELM, YEW):
            db.add(Organisation(id=org_id, kind="school", name=org_id))
        for user_id, (org_id, _) in ROLES.items():
            manager = "margo" if user_id == "tom" else None
            db.add(Staff(user_id=user_id, org_id=org_id, line_manager_id=manager))
        db.commit()
    finally:
        db.close()
        engine.dispose()
    return url


@pytest.fixture
def client(runner_factory, gateway_config: dict[str, Any], training_url: str) -> Client:
    config = {
        **gateway_config,
        "TRAINING_DATABASE_URL": training_url,
        "RPC_TIMEOUT": 10,
    }
    runner = runner_factory(config, GatewayService, TrainingService)
    runner.start()
    return Client(f"http://{config['WEB_SERVER_ADDRESS']}")


def test_the_training_routes_are_documented_in_openapi():
    """Every training route is in the OpenAPI document with a summary."""
    assert issubclass(GatewayService, TrainingRoutes)
    spec = build_spec(GatewayService)
    training = {
        (method, path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if path.startswith("/api/v1/training/") and operation["summary"]
    }
    declared = {
        (route.method.lower(), openapi_path(route.url))
        for _, _, route in _routes(TrainingRoutes)
    }
    assert declared == training
    assert len(training) == 44


def session_at(start: datetime, hours: int = 3) -> dict[str, str]:
    return {
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=hours)).isoformat(),
        "venue": "Elm hall",
    }


def test_a_course_is_booked_approved_and_invited_over_http(client):
    """Lead publishes and schedules; Tom asks; Margo approves; the invite parses."""
    lena, tom, margo = token("lena"), token("tom"), token("margo")
    course = client.post(
        "/api/v1/training/courses",
        json={"org_id": ELM, "title": "Behaviour", "cpd_hours": "3", "fee": "25"},
        headers=lena,
    )
    assert course.status_code == 201, course.text
    course_id = course.json()["id"]
    assert (
        client.post(
            f"/api/v1/training/courses/{course_id}/publish", headers=lena
        ).json()["status"]
        == "published"
    )
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    event = client.post(
        "/api/v1/training/events",
        json={"course_id": course_id, "capacity": 5, "sessions": [session_at(start)]},
        headers=lena,
    )
    assert event.status_code == 201, event.text
    event_id = event.json()["id"]
    client.post(f"/api/v1/training/events/{event_id}/schedule", headers=lena)

    asked = client.post(
        f"/api/v1/training/events/{event_id}/bookings",
        json={"cover_needed": False},
        headers=tom,
    )
    assert (asked.status_code, asked.json()["status"]) == (201, "pending_manager")
    booking_id = asked.json()["id"]
    own = client.post(f"/api/v1/training/bookings/{booking_id}/approve", headers=tom)
    assert (own.status_code, own.json()["code"]) == (403, "SELF_APPROVAL")
    approved = client.post(
        f"/api/v1/training/bookings/{booking_id}/approve", headers=margo
    )
    assert approved.json()["status"] == "booked", approved.text

    invite = client.get(
        f"/api/v1/training/bookings/{booking_id}/invite.ics", headers=tom
    )
    assert invite.headers["Content-Type"].startswith("text/calendar")
    parsed = Calendar.from_ical(invite.text)
    assert parsed["METHOD"] == "REQUEST"
    assert parsed.walk("VEVENT")[0].decoded("DTSTART") == start

    hidden = client.get(f"/api/v1/training/events/{event_id}", headers=token("yves"))
    assert (hidden.status_code, hidden.json()["code"]) == (404, "NOT_FOUND")


def test_bad_input_is_answered_with_codes_over_http(client):
    """Negative capacity is 422 at the gateway; overlapping sessions get the
    service's code."""
    lena = token("lena")
    course_id = client.post(
        "/api/v1/training/courses",
        json={"org_id": ELM, "title": "Phonics", "cpd_hours": "2"},
        headers=lena,
    ).json()["id"]
    start = datetime.now(UTC) + timedelta(days=3)
    negative = client.post(
        "/api/v1/training/events",
        json={"course_id": course_id, "capacity": -1, "sessions": [session_at(start)]},
        headers=lena,
    )
    assert (negative.status_code, negative.json()["code"]) == (422, "VALIDATION_FAILED")
    overlapping = client.post(
        "/api/v1/training/events",
        json={
            "course_id": course_id,
            "capacity": 4,
            "sessions": [session_at(start), session_at(start + timedelta(hours=1))],
        },
        headers=lena,
    )
    assert (overlapping.status_code, overlapping.json()["code"]) == (
        422,
        "INVALID_SESSION_TIMES",
    )


def test_the_calendar_feed_needs_only_its_token_until_revoked(client):
    """The feed answers to its token without a login; revoked, it is 404."""
    tom = token("tom")
    made = client.post("/api/v1/training/calendar-feed", headers=tom)
    assert made.status_code == 201, made.text
    feed = client.get(made.json()["path"])
    assert (feed.status_code, feed.headers["Content-Type"][:13]) == (
        200,
        "text/calendar",
    )
    client.request("DELETE", "/api/v1/training/calendar-feed", headers=tom)
    gone = client.get(made.json()["path"])
    assert (gone.status_code, gone.json()["code"]) == (404, "INVALID_FEED_TOKEN")


def test_a_report_downloads_as_csv(client):
    """The lead's hours report by person comes back as CSV with a header."""
    tom = token("tom")
    record = client.post(
        "/api/v1/training/cpd-records",
        json={
            "activity": "reading",
            "title": "Making every lesson count",
            "activity_date": datetime.now(UTC).date().isoformat(),
            "hours": "2.5",
        },
        headers=tom,
    )
    assert record.status_code == 201, record.text
    exported = client.get(
        "/api/v1/training/reports/hours/csv?group_by=person", headers=token("lena")
    )
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(row["user_id"], row["hours"]) for row in rows] == [("tom", "2.5")]


def _until(moment: datetime) -> None:
    while datetime.now(UTC) < moment:
        time.sleep(0.2)


def test_every_kind_of_training_route_answers_over_http(client):
    """Settings, budget, targets, courses, events, direct booking, attendance,
    completion, evaluation, history, external requests, absences and reports."""
    lena, tom, margo = token("lena"), token("tom"), token("margo")
    base = "/api/v1/training"

    def call(method, path, who, status, **kwargs):
        answer = client.request(method, base + path, headers=who, **kwargs)
        assert answer.status_code == status, (path, answer.text)
        return answer.json() if answer.content else None

    call(
        "PATCH",
        f"/organisations/{ELM}/settings",
        lena,
        200,
        json={"cover_daily_rate": "150", "followup_weeks": 4},
    )
    year = datetime.now(UTC).year - (datetime.now(UTC).month < 9)
    call(
        "PUT",
        f"/organisations/{ELM}/budget",
        lena,
        200,
        json={"year": year, "amount": "5000"},
    )
    call(
        "PUT",
        f"/organisations/{ELM}/hours-target",
        lena,
        200,
        json={"job_role": "teacher", "year": year, "hours": "20"},
    )
    call(
        "PATCH",
        "/staff/tom",
        lena,
        200,
        json={"department": "Maths", "job_role": "teacher"},
    )
    assert (
        call("GET", f"/organisations/{ELM}/settings", tom, 200)["cover_daily_rate"]
        == "150.00"
    )

    course = call(
        "POST",
        "/courses",
        lena,
        201,
        json={"org_id": ELM, "title": "Questioning", "cpd_hours": "2", "fee": "30"},
    )
    call("PATCH", f"/courses/{course['id']}", lena, 200, json={"category": "Pedagogy"})
    call("POST", f"/courses/{course['id']}/publish", lena, 200)
    assert call("GET", f"/courses/{course['id']}", tom, 200)["category"] == "Pedagogy"
    assert len(call("GET", "/courses?status=published", tom, 200)["items"]) == 1
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    event = call(
        "POST",
        "/events",
        lena,
        201,
        json={
            "course_id": course["id"],
            "capacity": 2,
            "sessions": [
                session_at(start, hours=0)
                | {"ends_at": (start + timedelta(seconds=2)).isoformat()}
            ],
        },
    )
    call("POST", f"/events/{event['id']}/schedule", lena, 200)
    call("PATCH", f"/events/{event['id']}", lena, 200, json={"facilitator": "Fay"})
    assert call("GET", "/events", tom, 200)["items"][0]["facilitator"] == "Fay"
    booked = call(
        "POST",
        f"/events/{event['id']}/bookings/direct",
        lena,
        201,
        json={"user_id": "tom", "cover_needed": True},
    )
    assert booked["status"] == "booked"
    assert (
        call("GET", "/bookings?mine=true", tom, 200)["items"][0]["id"] == (booked["id"])
    )
    assert call("GET", f"/bookings/{booked['id']}", margo, 200)["user_id"] == "tom"

    _until(start)
    session_id = event["sessions"][0]["id"]
    call(
        "PUT",
        f"/events/{event['id']}/sessions/{session_id}/attendance",
        lena,
        200,
        json={"entries": [{"booking_id": booked["id"], "status": "attended"}]},
    )
    _until(start + timedelta(seconds=2))
    assert (
        call("POST", f"/events/{event['id']}/complete", lena, 200)["cpd_records"] == 1
    )
    call(
        "POST",
        f"/bookings/{booked['id']}/evaluation",
        tom,
        201,
        json={"rating": 5, "will_change": "Wait time"},
    )
    assert call("GET", "/follow-ups", tom, 200) == {"items": []}
    early = call(
        "POST",
        f"/bookings/{booked['id']}/follow-up",
        tom,
        409,
        json={"impact": "Too soon"},
    )
    assert early["code"] == "INVALID_STATE"
    history = call("GET", "/cpd-history", tom, 200)
    assert history["years"][0]["hours"] == 2.0
    progress = call("GET", f"/cpd-progress?year={year}&user_id=tom", margo, 200)
    assert (progress["hours"], progress["target"]) == (2.0, 20.0)

    day = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    external = {
        "provider": "Hub",
        "title": "Conference",
        "start_date": day,
        "end_date": day,
        "days": "1",
        "hours": "6",
        "fee": "100",
        "cover_needed": True,
        "rationale": "Why",
        "intended_impact": "What",
    }
    first = call("POST", "/external-requests", tom, 201, json=external)
    assert (
        call("POST", f"/external-requests/{first['id']}/approve", margo, 200)["status"]
        == "approved"
    )
    second = call("POST", "/external-requests", tom, 201, json=external)
    call(
        "POST",
        f"/external-requests/{second['id']}/decline",
        margo,
        200,
        json={"reason": "One is enough"},
    )
    assert (
        call("GET", f"/external-requests/{second['id']}", tom, 200)["status"]
        == "declined"
    )
    call(
        "POST",
        "/absences",
        tom,
        201,
        json={
            "start_date": day,
            "end_date": day,
            "days": "0.5",
            "reason": "Moderation",
            "cover_needed": False,
        },
    )
    assert len(call("GET", "/absences", tom, 200)["items"]) == 3
    assert len(call("GET", f"/absences?org_id={ELM}", lena, 200)["items"]) == 3

    for name in ("hours", "attendance", "spend", "targets"):
        assert call("GET", f"/reports/{name}", lena, 200)["report"] == name
    assert call("GET", "/reports/nonsense", lena, 404)["code"] == "NOT_FOUND"

    later = call(
        "POST",
        "/events",
        lena,
        201,
        json={
            "course_id": course["id"],
            "capacity": 1,
            "sessions": [session_at(start + timedelta(days=9))],
        },
    )
    call("POST", f"/events/{later['id']}/schedule", lena, 200)
    place = call("POST", f"/events/{later['id']}/bookings", tom, 201, json={})
    call(
        "POST", f"/bookings/{place['id']}/decline", margo, 200, json={"reason": "Clash"}
    )
    again = call("POST", f"/events/{later['id']}/bookings", tom, 201, json={})
    call("POST", f"/bookings/{again['id']}/cancel", tom, 200)
    assert (
        call("POST", f"/events/{later['id']}/cancel", lena, 200)["status"]
        == "cancelled"
    )
    call("POST", f"/courses/{course['id']}/archive", lena, 200)
