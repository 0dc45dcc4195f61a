"""End to end: the services as separate processes, driven over HTTP."""

from __future__ import annotations

import email
import email.policy
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

pytestmark = pytest.mark.e2e

# Every secret a test handles; the last test greps the logs for all of them.
SEEN_SECRETS: set[str] = set()


def _remember(client: Any) -> Any:
    SEEN_SECRETS.update({client.tokens["access_token"], client.tokens["refresh_token"]})
    return client


def _outbox_payloads(platform: Any) -> list[dict[str, Any]]:
    dsn = platform.env["AUTH_DATABASE_URL"].replace("postgresql+psycopg2", "postgresql")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT payload FROM outbox ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def _mails(platform: Any, to: str | None = None) -> list[EmailMessage]:
    """The emails the platform sent to the mail catcher, oldest first."""
    found = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(Path(platform.mail_folder).glob("*.eml"))
    ]
    return [m for m in found if to is None or m["To"] == to]  # type: ignore[misc]


def _text(message: Any) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def _wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def test_demo_staff_member_signs_in_and_reads_their_own_record(login: Any) -> None:
    """A seeded teacher logs in with the printed password and reads /me."""
    teacher = _remember(login("riverside.teacher"))

    response = teacher.get("/me")

    assert response.status_code == 200
    assert response.json()["username"] == "riverside.teacher"
    assert {r["role"] for r in response.json()["roles"]} == {"staff"}


def test_me_lists_every_role_of_a_user_who_holds_several(login: Any) -> None:
    """/me of a CPD lead who also teaches lists both roles."""
    lead = _remember(login("riverside.cpdlead"))

    roles = {grant["role"] for grant in lead.get("/me").json()["roles"]}

    assert roles == {"cpd_lead", "staff"}


def test_request_id_follows_the_request_into_auth_logs_and_events(
    platform: Any,
) -> None:
    """X-Request-ID comes back, and reaches auth's log line and its event."""
    request_id = f"e2e-{uuid.uuid4().hex}"
    password = platform.credentials["hillcrest.teacher"]
    SEEN_SECRETS.add(password)

    response = requests.post(
        f"{platform.base_url}/api/v1/auth/login",
        json={"username": "hillcrest.teacher", "password": password},
        headers={"X-Request-ID": request_id},
        timeout=10,
    )

    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == request_id
    SEEN_SECRETS.update(
        {response.json()["access_token"], response.json()["refresh_token"]}
    )
    logged = _wait_for(lambda: request_id in platform.tail("auth", 400))
    assert logged, "auth never logged the request id"
    events = [p for p in _outbox_payloads(platform) if p["request_id"] == request_id]
    assert [e["type"] for e in events] == ["auth.login_succeeded"]


def test_a_request_id_is_made_when_the_client_sends_none(platform: Any) -> None:
    """With no X-Request-ID the gateway makes one and returns it."""
    response = requests.get(f"{platform.base_url}/health", timeout=5)

    assert response.status_code == 200
    assert re.fullmatch(r"[A-Za-z0-9._-]{8,128}", response.headers["X-Request-ID"])


def test_school_admin_gets_404_for_another_schools_user_and_it_is_recorded(
    platform: Any, login: Any
) -> None:
    """Another school's user is 404 to a school admin, and authz.denied is emitted."""
    other = _remember(login("hillcrest.teacher")).user["id"]
    admin = _remember(login("riverside.admin"))

    response = admin.get(f"/users/{other}")

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "NOT_FOUND"
    denials = [
        p
        for p in _outbox_payloads(platform)
        if p["type"] == "authz.denied" and p["subject"]["id"] == other
    ]
    assert denials and denials[-1]["actor"]["user_id"] == admin.user["id"]


def test_trust_admin_sees_users_of_every_school_in_the_trust(login: Any) -> None:
    """A trust admin lists users across the trust's schools."""
    trust_admin = _remember(login("trust.admin"))

    response = trust_admin.get("/users", params={"limit": 100})

    assert response.status_code == 200
    usernames = {u["username"] for u in response.json()["items"]}
    assert {"riverside.teacher", "hillcrest.teacher"} <= usernames


def test_admin_creates_a_user_who_can_then_sign_in(platform: Any, login: Any) -> None:
    """A school admin creates a staff member with a password; they log in."""
    admin = _remember(login("riverside.admin"))
    password = "a long enough passphrase for e2e"
    SEEN_SECRETS.add(password)

    created = admin.post(
        "/users",
        json={
            "username": "new.starter",
            "given_name": "Nia",
            "family_name": "Jones",
            "email": "nia.jones@demo.invalid",
            "org_id": admin.user["org_id"],
            "roles": [{"role": "staff", "org_id": admin.user["org_id"]}],
            "password": password,
        },
    )
    assert created.status_code == 201, created.text

    platform.credentials["new.starter"] = password
    assert _remember(login("new.starter")).get("/me").json()["given_name"] == "Nia"


def test_bad_input_gets_problem_documents_not_500(login: Any) -> None:
    """Unknown fields, bad limits and junk bodies get 4xx problem documents."""
    admin = _remember(login("riverside.admin"))

    unknown = admin.post("/users", json={"username": "x", "is_root": True})
    too_many = admin.get("/users", params={"limit": 101})
    junk = admin.post(
        "/users", data=b"\xff{not json", headers={"Content-Type": "application/json"}
    )

    assert unknown.status_code == 422
    assert "is_root" in unknown.json()["errors"]
    assert too_many.status_code == 422
    assert junk.status_code == 400
    for response in (unknown, too_many, junk):
        assert response.json()["code"]


def test_logout_refuses_the_sessions_token_within_a_second(login: Any) -> None:
    """After logout the same access token is refused within one second."""
    teacher = _remember(login("riverside.teacher"))
    assert teacher.get("/me").status_code == 200

    assert teacher.post("/auth/logout").status_code == 204
    started = time.monotonic()
    refused = _wait_for(lambda: teacher.get("/me").status_code == 401, timeout=1.0)

    assert refused, "the logged-out token still worked after a second"
    assert time.monotonic() - started < 1.5


def test_password_reset_code_arrives_by_email_and_works_once(
    platform: Any, login: Any
) -> None:
    """Auth hands the code to notify by RPC; it arrives by SMTP and sets a
    new password, once."""
    user = _remember(login("hillcrest.manager")).user
    base = f"{platform.base_url}/api/v1/auth"

    asked = requests.post(
        f"{base}/password-reset", json={"login": "hillcrest.manager"}, timeout=10
    )
    assert asked.status_code in (200, 202, 204)
    [message] = _wait_for(lambda: _mails(platform, user["email"]), timeout=15)
    assert message["Subject"] == "Your password reset code"
    code = re.search(r"^\s{4}(\S+)\s*$", _text(message), re.M).group(1)
    new_password = "correct horse battery staple e2e"
    SEEN_SECRETS.update({code, new_password})

    first = requests.post(
        f"{base}/password-reset/confirm",
        json={"code": code, "new_password": new_password},
        timeout=10,
    )
    again = requests.post(
        f"{base}/password-reset/confirm",
        json={"code": code, "new_password": new_password + "!"},
        timeout=10,
    )

    assert first.status_code in (200, 204), first.text
    assert again.status_code == 400
    platform.credentials["hillcrest.manager"] = new_password
    assert _remember(login("hillcrest.manager")).get("/me").status_code == 200
    assert all(code not in str(p) for p in _outbox_payloads(platform))


def test_auditors_read_the_login_log_of_their_own_scope_only(login: Any) -> None:
    """Sign-ins reach the audit log across processes; a school auditor sees
    their school's, the trust auditor both schools'."""
    riverside = _remember(login("riverside.teacher")).user
    hillcrest = _remember(login("hillcrest.teacher")).user
    school_auditor = _remember(login("riverside.auditor"))
    trust_auditor = _remember(login("trust.auditor"))

    def users_seen(auditor: Any) -> set[str]:
        page = auditor.get(
            "/audit/logins", params={"limit": 100, "outcome": "succeeded"}
        )
        assert page.status_code == 200, page.text
        return {item["user_id"] for item in page.json()["items"]}

    seen = _wait_for(lambda: hillcrest["id"] in users_seen(trust_auditor))
    assert seen, "the trust auditor never saw the hillcrest sign-in"
    assert riverside["id"] in users_seen(trust_auditor)
    assert riverside["id"] in users_seen(school_auditor)
    assert hillcrest["id"] not in users_seen(school_auditor)


def test_a_teacher_books_a_course_and_their_line_manager_approves_it(
    platform: Any, login: Any
) -> None:
    """Across processes: a lead publishes a course, a teacher asks for a place,
    their line manager (known to training from auth) approves, and the invite
    is an iCalendar request."""
    lead = _remember(login("riverside.cpdlead"))
    teacher = _remember(login("riverside.teacher"))
    manager = _remember(login("riverside.manager"))
    school = lead.user["org_id"]
    course = lead.post(
        "/training/courses",
        json={"org_id": school, "title": "Adaptive teaching", "cpd_hours": "3"},
    )
    assert course.status_code == 201, course.text
    lead.post(f"/training/courses/{course.json()['id']}/publish")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    event = lead.post(
        "/training/events",
        json={
            "course_id": course.json()["id"],
            "capacity": 2,
            "sessions": [
                {
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=3)).isoformat(),
                    "venue": "Library",
                }
            ],
        },
    )
    assert event.status_code == 201, event.text
    lead.post(f"/training/events/{event.json()['id']}/schedule")

    asked = teacher.post(f"/training/events/{event.json()['id']}/bookings", json={})
    assert asked.status_code == 201, asked.text
    approved = manager.post(f"/training/bookings/{asked.json()['id']}/approve")
    invite = teacher.get(f"/training/bookings/{asked.json()['id']}/invite.ics")

    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "booked"
    assert invite.status_code == 200
    assert "METHOD:REQUEST" in invite.text

    # Notify told the manager of the request and the teacher of the place,
    # by email (with training's own invite) and in the app.
    asks = _wait_for(
        lambda: [
            m
            for m in _mails(platform, manager.user["email"])
            if "asks to attend Adaptive teaching" in m["Subject"]
        ],
        timeout=15,
    )
    assert len(asks) == 1
    [booked] = _wait_for(
        lambda: [
            m
            for m in _mails(platform, teacher.user["email"])
            if m["Subject"] == "You are booked on Adaptive teaching"
        ],
        timeout=15,
    )
    [attachment] = list(booked.iter_attachments())
    uid = re.search(r"^UID:(.+)$", invite.text, re.M).group(1).strip()
    content = attachment.get_content()
    assert uid in (content if isinstance(content, str) else content.decode())
    assert "Library" in _text(booked)
    inbox = teacher.get("/notifications")
    assert inbox.status_code == 200, inbox.text
    assert "booking_booked" in [n["kind"] for n in inbox.json()["items"]]


def test_mail_waits_while_notify_is_down_and_goes_while_auth_is_down(
    platform: Any, login: Any
) -> None:
    """With notify and auth stopped, a booking is approved; when notify is
    back (auth still down) the teacher's email arrives: the event waited in
    notify's queue, and notify's own copy of the address was enough."""
    lead = _remember(login("hillcrest.cpdlead"))
    teacher = _remember(login("hillcrest.teacher"))
    manager = _remember(login("hillcrest.manager"))
    school = lead.user["org_id"]
    course = lead.post(
        "/training/courses",
        json={"org_id": school, "title": "Reading for pleasure", "cpd_hours": "2"},
    )
    lead.post(f"/training/courses/{course.json()['id']}/publish")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=12)
    event = lead.post(
        "/training/events",
        json={
            "course_id": course.json()["id"],
            "capacity": 5,
            "sessions": [
                {
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=2)).isoformat(),
                    "venue": "Hall",
                }
            ],
        },
    )
    lead.post(f"/training/events/{event.json()['id']}/schedule")
    asked = teacher.post(f"/training/events/{event.json()['id']}/bookings", json={})
    assert asked.status_code == 201, asked.text

    platform.stop(["notify", "auth"])
    try:
        approved = manager.post(f"/training/bookings/{asked.json()['id']}/approve")
        assert approved.status_code == 200, approved.text
        time.sleep(1)
        subject = "You are booked on Reading for pleasure"
        assert not [m for m in _mails(platform) if m["Subject"] == subject]
        platform.start(["notify"])
        arrived = _wait_for(
            lambda: [
                m
                for m in _mails(platform, teacher.user["email"])
                if m["Subject"] == subject
            ],
            timeout=30,
        )
        assert len(arrived) == 1
    finally:
        platform.start(["auth"])
        platform.wait_ready(timeout=60)


def test_a_review_cycle_gives_each_teacher_their_line_manager_as_reviewer(
    login: Any,
) -> None:
    """Reviews learnt the seeded users and managers from auth's events (its
    queues were declared before the seed ran); a school admin opens a cycle
    and the teacher's reviewer is their line manager."""
    admin = _remember(login("hillcrest.admin"))
    teacher = _remember(login("hillcrest.teacher")).user
    manager = _remember(login("hillcrest.manager")).user
    year = datetime.now(UTC).year
    opened = admin.post(
        "/reviews/cycles",
        json={
            "org_id": admin.user["org_id"],
            "name": f"{year}/{year + 1}",
            "starts_on": f"{year}-09-01",
            "ends_on": f"{year + 1}-08-31",
            "objectives_due": f"{year}-10-31",
            "interim_due": f"{year + 1}-02-28",
            "final_due": f"{year + 1}-07-15",
        },
    )
    assert opened.status_code == 201, opened.text

    reviews = admin.get(
        "/reviews/reviews", params={"cycle_id": opened.json()["id"], "limit": 100}
    )

    assert reviews.status_code == 200, reviews.text
    by_reviewee = {r["reviewee_id"]: r for r in reviews.json()["items"]}
    assert by_reviewee[teacher["id"]]["reviewer_id"] == manager["id"]


def test_stopped_service_gives_503_or_504_and_ready_says_so(
    platform: Any, login: Any
) -> None:
    """With auth stopped, reads fail fast with 503/504 and /ready is 503."""
    teacher = _remember(login("riverside.teacher"))
    platform.stop(["auth"])
    try:
        started = time.monotonic()
        response = teacher.get("/me")
        elapsed = time.monotonic() - started
        ready = requests.get(f"{platform.base_url}/ready", timeout=10)
    finally:
        platform.start(["auth"])
        platform.wait_ready(timeout=60)

    assert response.status_code in (503, 504)
    assert elapsed < 7, "the gateway waited longer than its RPC timeout"
    assert ready.status_code == 503
    assert teacher.get("/me").status_code == 200


def test_logs_never_contain_passwords_tokens_or_reset_codes(platform: Any) -> None:
    """Grep every process's captured log for every secret the tests handled."""
    SEEN_SECRETS.update(platform.credentials.values())
    logs = platform.logs()

    assert logs, "no logs were captured"
    leaked = sorted(s for s in SEEN_SECRETS if s and s in logs)
    assert not leaked, f"{len(leaked)} secrets reached a log line"
