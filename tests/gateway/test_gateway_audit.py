"""The audit routes over HTTP, in front of the real auth and audit services
(PostgreSQL databases of their own, the test's RabbitMQ vhost).

Every entry the tests read got into the log the real way: users sign in and
change records through the gateway, auth emits the events through its
outbox, and the audit service ingests them from its queue.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from kombu import Connection, Producer
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from gateway import audit_routes
from gateway.audit_routes import AuditRoutes
from gateway.service import GatewayService
from plumbing import topology
from plumbing.database import ServiceSession, make_engine
from services.audit import crypto
from services.audit.export import CSV_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


# username -> (organisation key, role, X-Forwarded-For of their sign-in)
PEOPLE = {
    "aud_a": ("school_a", "auditor", "10.1.0.1"),
    "aud_b": ("school_b", "auditor", "10.1.0.2"),
    "aud_t": ("trust", "auditor", "10.1.0.3"),
    "adm_a": ("school_a", "school_admin", "10.1.0.4"),
    "tadm": ("trust", "trust_admin", "10.1.0.5"),
    "staff_a": ("school_a", "staff", "10.1.0.6"),
    "staff_b": ("school_b", "staff", "10.1.0.7"),
}
FAILED_IP = "10.9.9.9"


class Client:
    """``requests`` against the gateway, the base URL prefixed (like the
    gateway conftest's, which a module named ``conftest`` cannot be relied on
    to import when other test folders run in the same session)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def count_entries(audit_url: str, where: str, **params: Any) -> int:
    engine = create_engine(audit_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(f"SELECT count(*) FROM audit_log WHERE {where}"), params
                ).scalar()
            )
    finally:
        engine.dispose()


def seed_auth(url: str) -> dict[str, str]:
    """A trust with two schools and one user per row of PEOPLE."""
    from services.auth import organisations, passwords, users

    engine = make_engine(url)
    db = sessionmaker(bind=engine, class_=ServiceSession, expire_on_commit=False)()
    now = datetime.now(UTC)
    try:
        trust = organisations.create_organisation(
            db, {"kind": "trust", "name": "Oak Trust"}, now=now
        )
        ids = {"trust": trust.id}
        for key, name in (("school_a", "Elm Primary"), ("school_b", "Yew School")):
            school = organisations.create_organisation(
                db,
                {"kind": "school", "name": name, "parent_trust_id": trust.id},
                now=now,
            )
            ids[key] = school.id
        hashed = passwords.hash_password(PASSWORD)
        for username, (org, role, _) in PEOPLE.items():
            user = users.insert_user(
                db,
                {
                    "username": username,
                    "given_name": "Sam",
                    "family_name": username.title(),
                    "email": f"{username}@oak.example",
                    "org_id": ids[org],
                    "line_manager_id": None,
                },
                [{"role": role, "org_id": ids[org]}],
                password_hash=hashed,
                now=now,
            )
            ids[username] = user.id
        db.commit()
    finally:
        db.close()
        engine.dispose()
    return ids


def sign_in(client: Client, username: str, ip: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/api/v1/auth/login",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": ip},
    )


@pytest.fixture
def platform(
    runner_factory: Callable[..., Any],
    gateway_config: dict[str, Any],
    make_database: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> SimpleNamespace:
    """Gateway, auth and audit running; every person signed in once, one
    failed sign-in, and one change of a staff member in each school, all
    stored in the audit log."""
    from services.audit.service import AuditService
    from services.auth.service import AuthService

    monkeypatch.setenv("ALLOW_WEAK_BCRYPT", "1")
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    key_file = tmp_path / "audit_signing_key.pem"
    crypto.generate_signing_key(key_file)
    monkeypatch.setenv("AUDIT_SIGNING_KEY_FILE", str(key_file))
    auth_url, audit_url = make_database("auth"), make_database("audit")
    ids = seed_auth(auth_url)
    config = dict(
        gateway_config,
        AUTH_DATABASE_URL=auth_url,
        AUDIT_DATABASE_URL=audit_url,
        AUDIT_DB_ROLE="audit_writer",
        AUDIT_CHECKPOINT_INTERVAL="1",
        DATA_DIR=str(tmp_path / "data"),
        TRUSTED_PROXY_COUNT=1,
    )
    started = datetime.now(UTC)
    runner_factory(config, GatewayService, AuthService, AuditService).start()
    client = Client(f"http://{config['WEB_SERVER_ADDRESS']}")

    bad = sign_in(client, "staff_a", FAILED_IP, password="not the password")
    assert bad.status_code == 401, bad.text
    headers = {}
    for username, (_, _, ip) in PEOPLE.items():
        login = sign_in(client, username, ip)
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        headers[username] = {"Authorization": f"Bearer {token}"}
    for admin, staff, name in (("adm_a", "staff_a", "Ann"), ("tadm", "staff_b", "Bea")):
        changed = client.request(
            "PATCH",
            f"/api/v1/users/{ids[staff]}",
            json={"given_name": name},
            headers=headers[admin],
        )
        assert changed.status_code == 200, changed.text
    wait_until(
        lambda: (
            count_entries(audit_url, "type = 'auth.login_succeeded'") >= len(PEOPLE)
            and count_entries(audit_url, "type = 'auth.login_failed'") >= 1
            and count_entries(audit_url, "type = 'auth.user_updated'") >= 2
        ),
        20,
        "the sign-ins and changes to be stored",
    )
    return SimpleNamespace(
        client=client,
        headers=headers,
        ids=ids,
        audit_url=audit_url,
        started=started,
        stored_at=datetime.now(UTC),
        tmp_path=tmp_path,
    )


def _all_pages(client: Client, path: str, headers: dict, **params: Any) -> list:
    items, cursor = [], None
    for _ in range(100):
        query = dict(params, **({"cursor": cursor} if cursor is not None else {}))
        page = client.get(path, params=query, headers=headers)
        assert page.status_code == 200, page.text
        items.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("more than 100 pages")


def test_school_auditor_sees_only_their_school_and_trust_auditor_sees_both(
    platform,
) -> None:
    """School A's auditor sees nothing of B, B's none of A; the trust's sees both."""
    client, ids = platform.client, platform.ids
    seen = {}
    for auditor in ("aud_a", "aud_b", "aud_t"):
        headers = platform.headers[auditor]
        logins = client.get("/api/v1/audit/logins?limit=100", headers=headers)
        changes = client.get(
            "/api/v1/audit/changes?type=auth.user_updated&limit=100", headers=headers
        )
        assert logins.status_code == 200 and changes.status_code == 200
        seen[auditor] = {
            "logins": {item["org_id"] for item in logins.json()["items"]},
            "changes": {item["org_id"] for item in changes.json()["items"]},
        }
    assert seen["aud_a"] == {"logins": {ids["school_a"]}, "changes": {ids["school_a"]}}
    assert seen["aud_b"] == {"logins": {ids["school_b"]}, "changes": {ids["school_b"]}}
    assert {ids["school_a"], ids["school_b"]} <= seen["aud_t"]["logins"]
    assert seen["aud_t"]["changes"] == {ids["school_a"], ids["school_b"]}
    elsewhere = client.get(
        f"/api/v1/audit/logins?org_id={ids['school_b']}",
        headers=platform.headers["aud_a"],
    )
    assert elsewhere.status_code == 200 and elsewhere.json()["items"] == []


def test_login_log_filters_by_user_outcome_reason_ip_and_time(platform) -> None:
    """Each login filter narrows the page to the matching sign-ins only."""
    client, ids = platform.client, platform.ids
    headers = platform.headers["aud_a"]

    def logins(**params: Any) -> list[dict[str, Any]]:
        page = client.get("/api/v1/audit/logins", params=params, headers=headers)
        assert page.status_code == 200, page.text
        return page.json()["items"]

    by_user = logins(user_id=ids["staff_a"])
    assert {item["outcome"] for item in by_user} == {"succeeded", "failed"}
    assert {item["user_id"] for item in by_user} == {ids["staff_a"]}
    failed = logins(outcome="failed")
    assert [(i["user_id"], i["reason"], i["ip"]) for i in failed] == [
        (ids["staff_a"], "bad_password", FAILED_IP)
    ]
    assert logins(reason="bad_password") == failed
    assert [item["user_id"] for item in logins(ip=PEOPLE["adm_a"][2])] == [ids["adm_a"]]
    window = {"since": platform.started.isoformat()}
    assert len(logins(**window, until=platform.stored_at.isoformat())) == 4
    later = (platform.stored_at + timedelta(hours=1)).isoformat()
    assert logins(since=later) == []


def test_change_log_filters_and_shows_before_and_after_decrypted(platform) -> None:
    """Changes filter by entity, actor and type, with before/after decrypted."""
    client, ids = platform.client, platform.ids
    headers = platform.headers["aud_t"]
    page = client.get(
        "/api/v1/audit/changes",
        params={
            "entity_type": "user",
            "entity_id": ids["staff_a"],
            "type": "auth.user_updated",
            "actor_user_id": ids["adm_a"],
        },
        headers=headers,
    )
    assert page.status_code == 200, page.text
    [change] = page.json()["items"]
    assert change["subject"] == {"type": "user", "id": ids["staff_a"]}
    assert change["actor"]["user_id"] == ids["adm_a"]
    assert {"field": "given_name", "before": "Sam", "after": "Ann"} in change["changes"]
    by_trust_admin = client.get(
        f"/api/v1/audit/changes?actor_user_id={ids['tadm']}&type=auth.user_updated",
        headers=headers,
    ).json()["items"]
    assert [item["subject"]["id"] for item in by_trust_admin] == [ids["staff_b"]]


def test_cursor_pages_walk_the_log_both_ways_without_gaps_or_overlaps(
    platform,
) -> None:
    """Pages of two via next_cursor give every login once, oldest or newest first."""
    client, headers = platform.client, platform.headers["aud_t"]
    whole = client.get("/api/v1/audit/logins?limit=100", headers=headers).json()
    assert whole["next_cursor"] is None
    oldest = _all_pages(
        client, "/api/v1/audit/logins", headers, limit=2, order="oldest"
    )
    newest = _all_pages(client, "/api/v1/audit/logins", headers, limit=2)
    seqs = [item["seq"] for item in oldest]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert [item["seq"] for item in newest] == seqs[::-1]
    assert sorted(item["seq"] for item in whole["items"]) == seqs
    assert len(seqs) == len(PEOPLE) + 1


def test_jsonl_export_streams_with_checkpoints_and_the_verifier_passes(
    platform, monkeypatch
) -> None:
    """JSONL export streams in pages with checkpoints and seal; the verifier passes."""
    monkeypatch.setattr(audit_routes, "EXPORT_PAGE", 7)
    client, headers = platform.client, platform.headers["aud_a"]
    wait_until(
        lambda: client.get("/api/v1/audit/checkpoints", headers=headers).json()[
            "items"
        ],
        10,
        "a checkpoint",
    )
    response = client.get(
        "/api/v1/audit/export?format=jsonl", headers=headers, stream=True
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    assert response.headers.get("Transfer-Encoding") == "chunked"
    body = b"".join(response.iter_content(chunk_size=None)).decode("utf-8")
    records = [json.loads(line) for line in body.splitlines()]
    kinds = [record["record"] for record in records]
    assert kinds[0] == "header" and kinds[-1] == "seal"
    assert "checkpoint" in kinds and "redacted" in kinds
    assert records[0]["to_seq"] > 7  # more than one page
    assert platform.ids["school_b"] not in body

    key = client.get("/api/v1/audit/public-key", headers=headers).json()
    export_file = platform.tmp_path / "export.jsonl"
    key_file = platform.tmp_path / "public.pem"
    export_file.write_text(body, encoding="utf-8")
    key_file.write_text(key["public_key"])
    verified = subprocess.run(
        [sys.executable, "-m", "services.audit.verify", str(export_file)]
        + ["--public-key", str(key_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK:")


def test_csv_export_streams_the_callers_rows_decrypted(platform) -> None:
    """The CSV export streams the caller's school's rows with values in clear."""
    client, ids = platform.client, platform.ids
    response = client.get(
        "/api/v1/audit/export",
        params={"format": "csv", "from_seq": 1},
        headers=platform.headers["aud_a"],
        stream=True,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    entries = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert {row["org_id"] for row in entries} == {ids["school_a"]}
    changed = [row for row in entries if row["subject_id"] == ids["staff_a"]]
    assert any('"after": "Ann"' in row["changes"] for row in changed)


def test_verify_reports_the_chain_sound_up_to_its_head(platform) -> None:
    """POST /audit/verify reports ok, the head and no bad seq."""
    response = platform.client.post(
        "/api/v1/audit/verify", headers=platform.headers["aud_b"]
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True and result["first_bad_seq"] is None
    assert result["head_seq"] >= len(PEOPLE) + 3
    assert result["problems"] == []


def test_staff_is_refused_every_audit_route_and_the_refusals_are_logged(
    platform,
) -> None:
    """Staff get 403 on reads, 404 on erasure, and every refusal is logged."""
    client, ids = platform.client, platform.ids
    headers = platform.headers["staff_a"]
    refused = {
        path: client.get(path, headers=headers)
        for path in (
            "/api/v1/audit/logins",
            "/api/v1/audit/changes",
            "/api/v1/audit/export",
            "/api/v1/audit/checkpoints",
        )
    }
    refused["verify"] = client.post("/api/v1/audit/verify", headers=headers)
    for name, response in refused.items():
        assert response.status_code == 403, name
        assert response.json()["code"] == "AUDIT_ACCESS_DENIED", name
    dead = client.get("/api/v1/audit/dead-letters", headers=headers)
    assert dead.status_code == 403 and dead.json()["code"] == "DEAD_LETTERS_FORBIDDEN"
    erase = client.post(
        f"/api/v1/audit/subjects/{ids['staff_b']}/erase-key", json={}, headers=headers
    )
    assert erase.status_code == 404
    wait_until(
        lambda: (
            count_entries(
                platform.audit_url,
                "type = 'authz.denied' AND actor_user_id = :user",
                user=ids["staff_a"],
            )
            >= len(refused) + 2
        ),
        20,
        "the refusals to be logged",
    )


def test_reads_and_exports_are_themselves_logged(platform) -> None:
    """Reads and exports of the log are themselves logged and visible."""
    client, ids = platform.client, platform.ids
    headers = platform.headers["aud_a"]
    assert client.get("/api/v1/audit/logins", headers=headers).status_code == 200
    export = client.get("/api/v1/audit/export?format=csv", headers=headers)
    assert export.status_code == 200
    wait_until(
        lambda: (
            count_entries(
                platform.audit_url,
                "type IN ('audit.log_read', 'audit.log_exported') "
                "AND actor_user_id = :user",
                user=ids["aud_a"],
            )
            >= 2
        ),
        20,
        "the read and the export to be logged",
    )
    for type_ in ("audit.log_read", "audit.log_exported"):
        page = client.get(
            "/api/v1/audit/changes",
            params={"type": type_, "actor_user_id": ids["aud_a"]},
            headers=headers,
        ).json()["items"]
        assert page and page[0]["subject"]["type"] == "audit_log", type_


def test_dead_letters_are_shown_to_trust_admins_only(platform, rabbit_config) -> None:
    """Unparseable messages show in the dead letters of a trust admin only."""
    with Connection(rabbit_config["AMQP_URI"]) as conn:
        Producer(conn.channel()).publish(
            b"not json at all",
            exchange=topology.exchange("auth"),
            routing_key="broken",
            content_type="application/json",
            content_encoding="binary",
            delivery_mode=2,
        )
    client = platform.client

    def dead_letters() -> Any:
        page = client.get(
            "/api/v1/audit/dead-letters", headers=platform.headers["tadm"]
        )
        assert page.status_code == 200, page.text
        return page.json() if page.json()["total"] else None

    page = wait_until(dead_letters, 20, "the dead letter")
    assert page["items"][0]["reason"] == "unparseable"
    assert page["ingestion"]["dead_lettered"] >= 1
    school_admin = client.get(
        "/api/v1/audit/dead-letters", headers=platform.headers["adm_a"]
    )
    assert school_admin.status_code == 403


def test_admin_erases_a_subjects_key_and_the_chain_still_verifies(platform) -> None:
    """An erased subject's values read [erased] and the chain still verifies."""
    client, ids = platform.client, platform.ids
    headers = platform.headers["adm_a"]
    erased = client.post(
        f"/api/v1/audit/subjects/{ids['staff_a']}/erase-key", json={}, headers=headers
    )
    assert erased.status_code == 200, erased.text
    assert erased.json()["subject"] == f"user:{ids['staff_a']}"
    changes = client.get(
        f"/api/v1/audit/changes?entity_id={ids['staff_a']}&type=auth.user_updated",
        headers=headers,
    ).json()["items"]
    values = {c["after"] for item in changes for c in item["changes"]}
    assert values == {"[erased]"}
    assert client.post("/api/v1/audit/verify", headers=headers).json()["ok"] is True
    elsewhere = client.post(
        f"/api/v1/audit/subjects/{ids['staff_b']}/erase-key", json={}, headers=headers
    )
    assert elsewhere.status_code == 404


def test_bad_audit_queries_are_refused_with_field_errors(platform) -> None:
    """Bad limits, orders, parameters, naive dates and seq ranges are 422."""
    client, headers = platform.client, platform.headers["aud_a"]
    cases = {
        "/api/v1/audit/logins?limit=101": "limit",
        "/api/v1/audit/changes?order=sideways": "order",
        "/api/v1/audit/logins?colour=red": "colour",
        "/api/v1/audit/logins?since=2030-01-01T00:00:00": "since",
        "/api/v1/audit/export?from_seq=5&to_seq=2": "to_seq",
        "/api/v1/audit/export?format=xml": "format",
    }
    for path, field in cases.items():
        response = client.get(path, headers=headers)
        assert response.status_code == 422, path
        assert field in response.json()["errors"], path


def test_openapi_document_lists_the_audit_routes_and_their_schemas(
    platform,
) -> None:
    """The OpenAPI document has every audit path, its parameters and schemas."""
    assert issubclass(GatewayService, AuditRoutes)
    spec = platform.client.get("/api/v1/openapi.json").json()
    paths = spec["paths"]
    for path, method in (
        ("/api/v1/audit/logins", "get"),
        ("/api/v1/audit/changes", "get"),
        ("/api/v1/audit/export", "get"),
        ("/api/v1/audit/checkpoints", "get"),
        ("/api/v1/audit/public-key", "get"),
        ("/api/v1/audit/verify", "post"),
        ("/api/v1/audit/dead-letters", "get"),
        ("/api/v1/audit/subjects/{subject_id}/erase-key", "post"),
    ):
        assert method in paths.get(path, {}), path
    params = {p["name"] for p in paths["/api/v1/audit/logins"]["get"]["parameters"]}
    assert {"user_id", "outcome", "reason", "ip", "since", "until", "cursor"} <= params
    components = spec["components"]["schemas"]
    for name in ("AuditLoginPage", "AuditChange", "AuditFieldChange", "AuditVerify"):
        assert name in components, name
    answer = paths["/api/v1/audit/changes"]["get"]["responses"]["200"]
    schema = answer["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/AuditChangePage"}
