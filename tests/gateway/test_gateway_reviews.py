"""The reviews routes of the gateway in front of the real reviews service and
its PostgreSQL database, over real HTTP and RabbitMQ."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from gateway_support import SECRET
from sqlalchemy.orm import sessionmaker

from gateway.openapi import build_spec
from gateway.reviews_routes import ReviewsRoutes
from gateway.service import GatewayService
from plumbing.database import ServiceSession, make_engine
from plumbing.envelope import make_event
from plumbing.tokens import issue_access_token

PDF = b"%PDF-1.4\n%" + b"x" * 64 + b"\n%%EOF\n"
CYCLE = {
    "name": "2030-31",
    "starts_on": "2030-09-01",
    "ends_on": "2031-07-31",
    "objectives_due": "2030-10-31",
    "interim_due": "2031-02-28",
    "final_due": "2031-07-15",
}


class Api:
    """HTTP calls to the gateway as one user (a real signed access token)."""

    def __init__(self, base_url: str, user_id: str, org_id: str, scopes: Any) -> None:
        self.base_url = base_url
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
            method, self.base_url + path, headers=headers, timeout=15, **kwargs
        )


@pytest.fixture
def seeded(make_database: Callable[[str], str]) -> dict[str, Any]:
    """A reviews database whose directory knows Elm (Eve admin, Margo managing
    Tom) and Yew (Yves admin), as auth's events would have told it."""
    from services.reviews import directory

    url = make_database("reviews")
    engine = make_engine(url)
    db = sessionmaker(bind=engine, class_=ServiceSession, expire_on_commit=False)()
    ids = {name: str(uuid.uuid4()) for name in ("elm", "yew", "eve", "margo", "tom")}
    ids["yves"] = str(uuid.uuid4())

    def apply(event_type: str, subject: str, after: dict[str, Any]) -> None:
        envelope = make_event(
            event_type,
            subject_type="user" if "user" in event_type else "organisation",
            subject_id=subject,
            org_id=after.get("org_id", subject),
            changes={k: {"before": None, "after": v} for k, v in after.items()},
        )
        directory.apply_event(db, envelope, now=datetime.now(UTC))

    try:
        for org, name in (("elm", "Elm Primary"), ("yew", "Yew School")):
            apply(
                "auth.organisation_created", ids[org], {"kind": "school", "name": name}
            )
        for person, org, manager in (
            ("eve", "elm", None),
            ("margo", "elm", None),
            ("tom", "elm", "margo"),
            ("yves", "yew", None),
        ):
            values = {
                "org_id": ids[org],
                "given_name": person.title(),
                "line_manager_id": ids[manager] if manager else None,
                "active": True,
            }
            apply("auth.user_created", ids[person], values)
    finally:
        db.close()
        engine.dispose()
    return dict(ids, url=url)


@pytest.fixture
def apis(
    runner_factory: Any,
    gateway_config: dict[str, Any],
    seeded: dict[str, Any],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Api]:
    """The gateway with the reviews routes and the reviews service, running;
    one client per person. Uploads may be up to 2 MB, past the 1 MB JSON limit."""
    from services.reviews.service import ReviewsService

    monkeypatch.setenv("REVIEWS_MAX_UPLOAD_BYTES", str(2 * 1024 * 1024))
    config = dict(
        gateway_config,
        REVIEWS_DATABASE_URL=seeded["url"],
        DATA_DIR=str(tmp_path / "data"),
        REVIEWS_EVIDENCE_DIR=str(tmp_path / "evidence"),
        # A 1.5 MB upload on a busy shared machine may take more than the
        # 3 seconds the other gateway tests allow.
        RPC_TIMEOUT=10,
    )
    runner = runner_factory(config, GatewayService, ReviewsService)
    runner.start()
    base = f"http://{config['WEB_SERVER_ADDRESS']}"
    elm, yew = seeded["elm"], seeded["yew"]
    return {
        "eve": Api(base, seeded["eve"], elm, {"school_admin": [elm]}),
        "margo": Api(base, seeded["margo"], elm, {"line_manager": [elm]}),
        "tom": Api(base, seeded["tom"], elm, {"staff": [elm]}),
        "yves": Api(base, seeded["yves"], yew, {"school_admin": [yew]}),
        "ids": seeded,
    }


def open_cycle(apis: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Eve opens Elm's cycle; answers it and Tom's review."""
    made = apis["eve"].call(
        "POST", "/api/v1/reviews/cycles", json=dict(CYCLE, org_id=apis["ids"]["elm"])
    )
    assert made.status_code == 201, made.text
    cycle = made.json()
    mine = apis["tom"].call("GET", f"/api/v1/reviews/reviews?cycle_id={cycle['id']}")
    [review] = mine.json()["items"]
    return cycle, review


def test_a_review_year_runs_end_to_end_over_http(apis):
    """Cycle, objective, progress, every step, comments, a 1.5 MB file and reports."""
    margo, tom, eve = apis["margo"], apis["tom"], apis["eve"]
    cycle, review = open_cycle(apis)
    assert (
        cycle["reviews_created"] == 3 and review["reviewer_id"] == apis["ids"]["margo"]
    )
    base = f"/api/v1/reviews/reviews/{review['id']}"
    objective = margo.call(
        "POST",
        f"{base}/objectives",
        json={
            "type": "school_priority",
            "description": "Raise reading ages",
            "success_criteria": "Average up six months",
            "due_on": "2031-06-30",
            "cpd_record_ids": ["cpd-42"],
        },
    )
    assert objective.status_code == 201, objective.text
    objective_id = objective.json()["id"]
    progress = tom.call(
        "POST",
        f"/api/v1/reviews/objectives/{objective_id}/progress",
        json={"on": "2030-12-01", "status": "on_track", "note": "Going well"},
    )
    assert progress.status_code == 201, progress.text

    big = PDF + b"%" + b"y" * (1_500_000) + b"\n"
    uploaded = tom.call(
        "POST",
        "/api/v1/reviews/evidence/files",
        params={
            "target_type": "objective",
            "target_id": objective_id,
            "filename": "r.pdf",
        },
        data=big,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert uploaded.status_code == 201, uploaded.text
    got = margo.call("GET", f"/api/v1/reviews/evidence/{uploaded.json()['id']}/content")
    assert got.status_code == 200 and got.content == big
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["X-Checksum-SHA256"] == hashlib.sha256(big).hexdigest()

    for person, step, text in (
        (margo, "agree_objectives", None),
        (margo, "record_interim_review", "On track"),
        (tom, "submit_self_review", "A good year"),
        (margo, "record_final_review", "Met"),
        (tom, "sign_off", "Thank you"),
        (eve, "close", None),
    ):
        moved = person.call("POST", f"{base}/steps", json={"step": step, "text": text})
        assert moved.status_code == 200, (step, moved.text)
    assert moved.json()["state"] == "closed"

    margo.call(
        "POST",
        "/api/v1/reviews/comments",
        json={
            "target_type": "review",
            "target_id": review["id"],
            "text": "For the record",
            "visibility": "reviewers",
        },
    )
    seen = tom.call(
        "GET", f"/api/v1/reviews/comments?target_type=review&target_id={review['id']}"
    )
    assert seen.status_code == 200 and seen.json()["items"] == []

    report = eve.call("GET", f"/api/v1/reviews/cycles/{cycle['id']}/report")
    assert report.status_code == 200, report.text
    assert report.json()["total"]["reviews_by_state"]["closed"] == 1
    exported = eve.call("GET", f"/api/v1/reviews/cycles/{cycle['id']}/report.csv")
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows[-1]["org_id"] == "total" and rows[-1]["closed"] == "1"


def test_observation_reads_are_listed_to_the_teacher_over_http(apis):
    """Margo shares an observation; Tom reads and acknowledges it and sees his read."""
    margo, tom = apis["margo"], apis["tom"]
    made = margo.call(
        "POST",
        "/api/v1/reviews/observations",
        json={
            "type": "learning_walk",
            "observed_id": apis["ids"]["tom"],
            "observed_on": "2030-11-20",
            "focus": "Transitions",
            "strengths": "Calm start",
        },
    )
    assert made.status_code == 201, made.text
    path = f"/api/v1/reviews/observations/{made.json()['id']}"
    assert tom.call("GET", path).status_code == 404
    assert margo.call("POST", f"{path}/share").status_code == 200
    assert tom.call("GET", path).json()["strengths"] == "Calm start"
    ack = tom.call("POST", f"{path}/acknowledge", json={"response": "Thanks"})
    assert ack.json()["state"] == "acknowledged"
    views = tom.call("GET", f"{path}/views").json()["items"]
    assert [v["viewer_id"] for v in views] == [apis["ids"]["tom"]]


def test_bad_requests_answer_problems_with_codes(apis):
    """Milestones, order, person, organisation, body and file types each have a code."""
    eve, margo, tom, yves = apis["eve"], apis["margo"], apis["tom"], apis["yves"]
    bad_cycle = dict(CYCLE, org_id=apis["ids"]["elm"], interim_due="2032-01-01")
    answer = eve.call("POST", "/api/v1/reviews/cycles", json=bad_cycle)
    assert (answer.status_code, answer.json()["code"]) == (
        422,
        "MILESTONE_OUTSIDE_CYCLE",
    )
    unknown = eve.call("POST", "/api/v1/reviews/cycles", json={"bogus": 1})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "VALIDATION_FAILED")

    _cycle, review = open_cycle(apis)
    steps = f"/api/v1/reviews/reviews/{review['id']}/steps"
    early = margo.call("POST", steps, json={"step": "record_final_review", "text": "x"})
    assert (early.status_code, early.json()["code"]) == (409, "INVALID_TRANSITION")
    wrong = tom.call("POST", steps, json={"step": "agree_objectives"})
    assert (wrong.status_code, wrong.json()["code"]) == (403, "NOT_YOUR_STEP")
    other = yves.call("GET", f"/api/v1/reviews/reviews/{review['id']}")
    assert (other.status_code, other.json()["code"]) == (404, "NOT_FOUND")
    bad_same = eve.call(
        "PUT",
        f"/api/v1/reviews/reviews/{review['id']}/reviewer",
        json={"reviewer_id": apis["ids"]["tom"]},
    )
    assert (bad_same.status_code, bad_same.json()["code"]) == (
        422,
        "REVIEWER_IS_REVIEWEE",
    )

    params = {"target_type": "review", "target_id": review["id"]}
    disguised = tom.call(
        "POST",
        "/api/v1/reviews/evidence/files",
        params=dict(params, filename="cv.pdf"),
        data=b"MZ\x90\x00" + b"\x00" * 100,
    )
    assert (disguised.status_code, disguised.json()["code"]) == (
        415,
        "UPLOAD_TYPE_NOT_ALLOWED",
    )
    huge = tom.call(
        "POST",
        "/api/v1/reviews/evidence/files",
        params=dict(params, filename="big.pdf"),
        data=PDF + b"z" * (2 * 1024 * 1024),
    )
    assert (huge.status_code, huge.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    sync = tom.call("POST", "/api/v1/reviews/directory/sync")
    assert (sync.status_code, sync.json()["code"]) == (404, "NOT_FOUND")
    anonymous = requests.get(apis["eve"].base_url + "/api/v1/reviews/cycles", timeout=5)
    assert anonymous.status_code == 401


def test_the_openapi_document_lists_the_reviews_routes():
    """Every reviews route is documented, with its schemas and no name clash."""
    assert issubclass(GatewayService, ReviewsRoutes)
    doc = build_spec(GatewayService)
    operations = [
        (method, path)
        for path, item in doc["paths"].items()
        if path.startswith("/api/v1/reviews")
        for method in item
    ]
    assert ("post", "/api/v1/reviews/reviews/{review_id}/steps") in operations
    assert len(operations) == 29
    assert "ReviewCycleCreate" in doc["components"]["schemas"]
