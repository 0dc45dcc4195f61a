"""The notification routes of the gateway in front of the real notify service
and its PostgreSQL database, over real HTTP and RabbitMQ.

Notifications, emails and contacts are written straight into notify's
database, as its event handlers and mailer would have left them. The SMTP
port is one nobody listens on: an email queued again fails to connect and
waits for its next attempt, which these tests do not need.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from gateway_support import SECRET

from gateway.notify_routes import NotifyRoutes
from gateway.openapi import build_spec
from gateway.service import GatewayService
from plumbing.tokens import issue_access_token
from tests.service_support import outbox, service_session

NOW = datetime.now(UTC).replace(microsecond=0)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """HTTP calls to the gateway as one user (a real signed access token)."""

    def __init__(self, base_url: str, user_id: str, org_id: str, scopes: Any) -> None:
        self.base_url = base_url
        self.user_id = user_id
        token, _ = issue_access_token(
            SECRET,
            user_id=user_id,
            org_id=org_id,
            session_id=str(uuid.uuid4()),
            scopes=scopes,
        )
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(self.headers, **kwargs.pop("headers", {}))
        return requests.request(
            method,
            self.base_url + "/api/v1/notifications" + path,
            headers=headers,
            timeout=15,
            **kwargs,
        )


@pytest.fixture
def seeded(make_database: Callable[[str], str]) -> dict[str, Any]:
    """Elm (Eve its admin, Tom on its staff) and Yew (Yves its admin), with
    Tom's three notifications, Eve's one, and emails of both schools."""
    from services.notify.models import Contact, Email, Notification, Organisation

    url = make_database("notify")
    ids = {name: str(uuid.uuid4()) for name in ("elm", "yew", "eve", "tom", "yves")}

    def note(key: str, user: str, org: str, age: int, read: bool) -> Notification:
        ids[key] = str(uuid.uuid4())
        return Notification(
            id=ids[key],
            user_id=ids[user],
            org_id=ids[org],
            category="bookings",
            kind="booking_booked",
            title=f"Title {key}",
            body=f"Body {key}",
            link="/training/bookings",
            subject_type="booking" if key != "tom_read" else None,
            subject_id=str(uuid.uuid4()) if key != "tom_read" else None,
            dedupe_key=f"test:{key}",
            created_at=NOW - timedelta(minutes=age),
            read_at=NOW - timedelta(minutes=1) if read else None,
        )

    def email(key: str, user: str, org: str, status: str, age: int) -> Email:
        ids[key] = str(uuid.uuid4())
        return Email(
            id=ids[key],
            user_id=ids[user],
            org_id=ids[org],
            category="bookings",
            kind="booking_booked",
            to_address=f"{user}@{org}.example",
            subject=f"Subject {key}",
            text_body="Text",
            html_body="<p>Text</p>",
            attachments=[],
            status=status,
            attempts=8 if status == "failed" else 1,
            next_attempt_at=None,
            last_error="SMTP 550: mailbox unavailable" if status == "failed" else None,
            message_id=f"<{ids[key]}@test>",
            created_at=NOW - timedelta(minutes=age),
            sent_at=NOW if status == "sent" else None,
        )

    with service_session(url) as db:
        db.add_all(
            [
                Organisation(id=ids["elm"], kind="school", name="Elm Primary"),
                Organisation(id=ids["yew"], kind="school", name="Yew School"),
                Contact(
                    user_id=ids["tom"],
                    org_id=ids["elm"],
                    username="tom",
                    email="tom@elm.example",
                    given_name="Tom",
                    family_name="Thumb",
                    roles=[{"role": "staff", "org_id": ids["elm"]}],
                    versions={},
                ),
                # Unread first (newest first), then read, whatever their age.
                note("tom_read", "tom", "elm", 1, read=True),
                note("tom_new", "tom", "elm", 10, read=False),
                note("tom_old", "tom", "elm", 20, read=False),
                note("eve_note", "eve", "elm", 5, read=False),
            ]
        )
        db.flush()
        db.add_all(
            [
                email("elm_failed", "tom", "elm", "failed", 30),
                email("elm_failed_older", "eve", "elm", "failed", 60),
                email("elm_sent", "tom", "elm", "sent", 40),
                email("yew_failed", "yves", "yew", "failed", 30),
            ]
        )
        db.commit()
    return dict(ids, url=url)


@pytest.fixture
def apis(
    runner_factory: Any, gateway_config: dict[str, Any], seeded: dict[str, Any]
) -> dict[str, Any]:
    """The gateway and the real notify service, running; one client per person."""
    from services.notify.service import NotifyService

    config = dict(
        gateway_config,
        NOTIFY_DATABASE_URL=seeded["url"],
        NOTIFY_TIMER_SECONDS=3600,
        NOTIFY_SMTP_HOST="127.0.0.1",
        NOTIFY_SMTP_PORT=unused_port(),
        NOTIFY_SMTP_TIMEOUT=2,
        READY_SERVICES="notify",
        RPC_TIMEOUT=10,
    )
    runner = runner_factory(config, GatewayService, NotifyService)
    runner.start()
    base = f"http://{config['WEB_SERVER_ADDRESS']}"
    elm, yew = seeded["elm"], seeded["yew"]
    return {
        "eve": Api(base, seeded["eve"], elm, {"school_admin": [elm], "staff": [elm]}),
        "tom": Api(base, seeded["tom"], elm, {"staff": [elm]}),
        "yves": Api(base, seeded["yves"], yew, {"school_admin": [yew]}),
        "ids": seeded,
        "base": base,
    }


def test_the_inbox_lists_unread_first_and_pages(apis):
    """Tom sees his own three, unread newest first then read; pages and filter."""
    tom, ids = apis["tom"], apis["ids"]
    page = tom.call("GET", "")
    assert page.status_code == 200, page.text
    body = page.json()
    assert [n["id"] for n in body["items"]] == [
        ids["tom_new"],
        ids["tom_old"],
        ids["tom_read"],
    ]
    assert (body["total"], body["unread"], body["offset"], body["limit"]) == (
        3,
        2,
        0,
        20,
    )
    first = body["items"][0]
    assert first["title"] == "Title tom_new" and first["read_at"] is None
    assert first["subject"]["type"] == "booking"
    assert body["items"][2]["subject"] is None and body["items"][2]["read_at"]

    second = tom.call("GET", "", params={"offset": 1, "limit": 1}).json()
    assert [n["id"] for n in second["items"]] == [ids["tom_old"]]
    assert (second["total"], second["offset"], second["limit"]) == (3, 1, 1)

    unread = tom.call("GET", "", params={"unread_only": "true"}).json()
    assert [n["id"] for n in unread["items"]] == [ids["tom_new"], ids["tom_old"]]
    assert unread["total"] == 2

    eve = apis["eve"].call("GET", "").json()
    assert [n["id"] for n in eve["items"]] == [ids["eve_note"]]
    assert apis["yves"].call("GET", "").json()["items"] == []


def test_marking_read_one_by_one_and_all_at_once(apis):
    """Own notification marked read; another's is 404 and recorded; read-all."""
    tom, eve, ids = apis["tom"], apis["eve"], apis["ids"]
    marked = tom.call("POST", f"/{ids['tom_new']}/read")
    assert marked.status_code == 200, marked.text
    assert marked.json()["id"] == ids["tom_new"] and marked.json()["read_at"]
    again = tom.call("POST", f"/{ids['tom_new']}/read")
    assert again.json()["read_at"] == marked.json()["read_at"]

    theirs = tom.call("POST", f"/{ids['eve_note']}/read")
    assert (theirs.status_code, theirs.json()["code"]) == (404, "NOT_FOUND")
    unknown = tom.call("POST", f"/{uuid.uuid4()}/read")
    assert unknown.status_code == 404
    too_long = tom.call("POST", f"/{'x' * 80}/read")
    assert too_long.status_code == 404
    with service_session(ids["url"]) as db:
        denied = [
            e["data"]["action"]
            for e in outbox(db, "authz.denied")
            if e["subject"]["id"] == ids["eve_note"]
        ]
    assert denied == ["notify.mark_read"]
    assert eve.call("GET", "").json()["unread"] == 1

    everything = tom.call("POST", "/read-all")
    assert everything.status_code == 200, everything.text
    assert everything.json() == {"marked": 1}
    after = tom.call("GET", "").json()
    assert after["unread"] == 0 and all(n["read_at"] for n in after["items"])
    assert tom.call("POST", "/read-all").json() == {"marked": 0}
    assert eve.call("GET", "").json()["unread"] == 1


def test_preferences_are_read_and_changed_but_security_stays_on(apis):
    """Defaults, a change that sticks, and the refusals."""
    tom, eve = apis["tom"], apis["eve"]
    got = tom.call("GET", "/preferences")
    assert got.status_code == 200, got.text
    prefs = got.json()
    assert prefs["daily_digest"] is False
    by_category = {c["category"]: c for c in prefs["categories"]}
    assert len(by_category) == 7
    assert all(c["email"] for c in prefs["categories"])
    assert by_category["security"]["locked"] is True
    assert by_category["reminders"]["locked"] is False
    assert by_category["reminders"]["label"]

    changed = tom.call(
        "PUT",
        "/preferences",
        json={"daily_digest": True, "email": {"reminders": False, "security": True}},
    )
    assert changed.status_code == 200, changed.text
    emailed = {c["category"]: c["email"] for c in changed.json()["categories"]}
    assert changed.json()["daily_digest"] is True
    assert emailed["reminders"] is False and emailed["security"] is True
    assert tom.call("GET", "/preferences").json() == changed.json()
    assert eve.call("GET", "/preferences").json() == prefs

    security = tom.call("PUT", "/preferences", json={"email": {"security": False}})
    assert (security.status_code, security.json()["code"]) == (
        422,
        "VALIDATION_FAILED",
    )
    assert "security" in security.json()["errors"]["email"]
    for bad in (
        {"email": {"gossip": False}},
        {"email": {"reminders": "perhaps"}},
        {"daily_digest": "often"},
        {"colour": "blue"},
        {"email": ["reminders"]},
    ):
        answer = tom.call("PUT", "/preferences", json=bad)
        assert (answer.status_code, answer.json()["code"]) == (
            422,
            "VALIDATION_FAILED",
        ), bad
    assert tom.call("GET", "/preferences").json() == changed.json()


def test_admins_list_and_requeue_the_emails_of_their_school_only(apis):
    """Eve sees Elm's failed emails, Tom none; requeue, 409 when sent, 404 elsewhere."""
    eve, tom, yves, ids = apis["eve"], apis["tom"], apis["yves"], apis["ids"]
    failed = eve.call("GET", "/emails")
    assert failed.status_code == 200, failed.text
    body = failed.json()
    assert [e["id"] for e in body["items"]] == [
        ids["elm_failed"],
        ids["elm_failed_older"],
    ]
    assert (body["total"], body["offset"], body["limit"]) == (2, 0, 20)
    first = body["items"][0]
    assert first["recipient_name"] == "Tom Thumb" and first["to"] == "tom@elm.example"
    assert first["status"] == "failed" and first["last_error"].startswith("SMTP 550")
    assert body["items"][1]["recipient_name"] is None

    paged = eve.call("GET", "/emails", params={"offset": 1, "limit": 1}).json()
    assert [e["id"] for e in paged["items"]] == [ids["elm_failed_older"]]
    sent = eve.call("GET", "/emails", params={"status": "sent"}).json()
    assert [e["id"] for e in sent["items"]] == [ids["elm_sent"]]
    elsewhere = eve.call("GET", "/emails", params={"org_id": ids["yew"]}).json()
    assert elsewhere["items"] == [] and elsewhere["total"] == 0
    mine = eve.call("GET", "/emails", params={"org_id": ids["elm"]}).json()
    assert mine["total"] == 2
    assert [e["id"] for e in yves.call("GET", "/emails").json()["items"]] == [
        ids["yew_failed"]
    ]
    staff = tom.call("GET", "/emails")
    assert staff.status_code == 200 and staff.json()["items"] == []

    requeued = eve.call("POST", f"/emails/{ids['elm_failed']}/requeue")
    assert requeued.status_code == 200, requeued.text
    assert requeued.json()["id"] == ids["elm_failed"]
    assert requeued.json()["status"] == "queued"
    assert requeued.json()["attempts"] == 0 and requeued.json()["last_error"] is None
    with service_session(ids["url"]) as db:
        events = outbox(db, "notify.email_requeued")
    assert [e["subject"]["id"] for e in events] == [ids["elm_failed"]]

    not_retryable = eve.call("POST", f"/emails/{ids['elm_sent']}/requeue")
    assert (not_retryable.status_code, not_retryable.json()["code"]) == (
        409,
        "EMAIL_NOT_RETRYABLE",
    )
    other_school = eve.call("POST", f"/emails/{ids['yew_failed']}/requeue")
    assert (other_school.status_code, other_school.json()["code"]) == (
        404,
        "NOT_FOUND",
    )
    by_staff = tom.call("POST", f"/emails/{ids['elm_failed_older']}/requeue")
    assert by_staff.status_code == 404
    assert yves.call("GET", "/emails").json()["items"][0]["status"] == "failed"


def test_bad_queries_are_refused_at_the_gateway(apis):
    """Out-of-range pages, unknown states and parameters: 422 with field errors."""
    tom, eve = apis["tom"], apis["eve"]
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"unread_only": "maybe"}, "unread_only"),
        ({"page": 2}, "page"),
    ):
        answer = tom.call("GET", "", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.json()["code"] == "VALIDATION_FAILED"
        assert field in answer.json()["errors"], params
    for params, field in (
        ({"status": "lost"}, "status"),
        ({"org_id": "x" * 40}, "org_id"),
        ({"limit": 500}, "limit"),
        ({"user_id": "someone"}, "user_id"),
    ):
        answer = eve.call("GET", "/emails", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert field in answer.json()["errors"], params


def test_routes_need_a_token_and_ids_never_shadow_the_fixed_paths(apis):
    """Every route is 401 without a token; there is no GET /notifications/{id}."""
    base = apis["base"] + "/api/v1/notifications"
    nid, eid = apis["ids"]["tom_new"], apis["ids"]["elm_failed"]
    for method, path in (
        ("GET", ""),
        ("POST", f"/{nid}/read"),
        ("POST", "/read-all"),
        ("GET", "/preferences"),
        ("PUT", "/preferences"),
        ("GET", "/emails"),
        ("POST", f"/emails/{eid}/requeue"),
    ):
        answer = requests.request(method, base + path, json={}, timeout=10)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["Content-Type"] == "application/problem+json"

    tom = apis["tom"]
    assert tom.call("GET", f"/{nid}").status_code == 404
    assert tom.call("POST", "/preferences").status_code == 405
    assert tom.call("GET", "/read-all").status_code == 405
    # A fixed path in the place of an id is just an unknown notification.
    assert tom.call("POST", "/preferences/read").json()["code"] == "NOT_FOUND"
    assert tom.call("GET", "").json()["unread"] == 2


def test_the_openapi_document_lists_the_notification_routes():
    """Every notification route is documented with its schemas."""
    assert issubclass(GatewayService, NotifyRoutes)
    doc = build_spec(GatewayService)
    operations = {
        (method, path)
        for path, item in doc["paths"].items()
        if path.startswith("/api/v1/notifications")
        for method in item
    }
    assert operations == {
        ("get", "/api/v1/notifications"),
        ("post", "/api/v1/notifications/{notification_id}/read"),
        ("post", "/api/v1/notifications/read-all"),
        ("get", "/api/v1/notifications/preferences"),
        ("put", "/api/v1/notifications/preferences"),
        ("get", "/api/v1/notifications/emails"),
        ("post", "/api/v1/notifications/emails/{email_id}/requeue"),
        ("post", "/api/v1/notifications/contacts/sync"),
    }
    schemas = doc["components"]["schemas"]
    assert {
        "NotifyNotificationPage",
        "NotifyPreferences",
        "NotifyPreferencesUpdate",
        "NotifyEmailPage",
    } <= set(schemas)
    listing = doc["paths"]["/api/v1/notifications"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert names == {"offset", "limit", "unread_only"}
    assert "422" in listing["responses"] and "401" in listing["responses"]
    update = doc["paths"]["/api/v1/notifications/preferences"]["put"]
    assert update["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NotifyPreferencesUpdate"
    }


def test_ready_asks_notify(apis):
    """/ready names notify, which answers ping."""
    ready = requests.get(apis["base"] + "/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["notify"] == "ok"
