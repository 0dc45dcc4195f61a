"""The audit RPCs the gateway will expose, called over RabbitMQ against the
service running as its own process: scoping by organisation, filters,
cursor pagination, decryption and erasure, paged export, and every read
being logged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from audit_support import Publisher, sample_event, scalar, stored_event_ids, wait_until
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from plumbing.identity import Identity
from services.audit import crypto
from services.audit.chain import verify_lines

AUDITOR_A = Identity("aud-a", "school-a", {"auditor": ["school-a"]})
AUDITOR_B = Identity("aud-b", "school-b", {"auditor": ["school-b"]})
TRUST_AUDITOR = Identity(
    "aud-t", "trust-1", {"auditor": ["trust-1", "school-a", "school-b"]}
)
ADMIN_A = Identity("adm-a", "school-a", {"school_admin": ["school-a"]})
STAFF_A = Identity("staff-a", "school-a", {"staff": ["school-a"]})


@pytest.fixture
def rpc(amqp: str) -> Callable[[Identity | None], Any]:
    @contextmanager
    def as_caller(caller: Identity | None) -> Iterator[Any]:
        context = {"identity": caller.to_json()} if caller else {}
        with ClusterRpcProxy({"AMQP_URI": amqp}, context_data=context) as proxy:
            yield proxy.audit

    return as_caller


def _login(n: int, org: str, type_: str = "auth.login_succeeded", **data: Any) -> dict:
    return sample_event(
        n,
        org_id=org,
        type=type_,
        subject_type="user",
        subject_id=f"user-{org}-{n % 3}",
        actor={"user_id": f"user-{org}-{n % 3}", "ip": f"10.0.0.{n % 2}"},
        changes={},
        data={"username": f"person{n}@{org}.example", **data},
    )


@pytest.fixture
def seeded(start_audit, amqp: str, audit_db: str) -> dict[str, list[str]]:
    """Logins and changes in two schools, stored by a running audit service."""
    start_audit()
    publisher = Publisher(amqp)
    ids: dict[str, list[str]] = {"school-a": [], "school-b": []}
    for n in range(6):
        for org in ids:
            failed = n % 3 == 0
            event = _login(
                n,
                org,
                "auth.login_failed" if failed else "auth.login_succeeded",
                **({"reason_code": "bad_password"} if failed else {}),
            )
            publisher.publish(event)
            ids[org].append(event["event_id"])
            change = sample_event(
                n,
                org_id=org,
                subject_id=f"user-{org}-{n % 3}",
                changes={"given_name": {"before": f"Old{n}", "after": f"New{n}"}},
            )
            publisher.publish(change)
            ids[org].append(change["event_id"])
    publisher.close()
    wait_until(lambda: len(stored_event_ids(audit_db)) >= 24, 20, "seeded events")
    return ids


def test_each_auditor_sees_only_their_organisations(
    rpc, seeded, tmp_path: Path
) -> None:
    """School A's auditor sees none of school B's entries (and vice versa);
    the trust auditor sees both; a paged export verifies with B redacted."""
    with rpc(AUDITOR_A) as audit:
        logins = audit.list_logins(limit=100)["items"]
        changes = audit.list_changes(filters={"type": "auth.user_updated"}, limit=100)
        exported, cursor = [], None
        while True:
            page = audit.export(cursor=cursor, limit=5)
            exported.append(page["chunk"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    with rpc(None) as audit:
        public = audit.public_key()["public_key"]
    assert {item["org_id"] for item in logins} == {"school-a"}
    assert {item["event_id"] for item in logins + changes["items"]} == set(
        seeded["school-a"]
    )
    text = "".join(exported)
    assert "school-b" not in text
    assert '"record":"redacted"' in text
    result = verify_lines(text.splitlines(), crypto.load_public_key(public))
    assert result.ok, result.as_dict()

    with rpc(AUDITOR_B) as audit:
        assert {i["org_id"] for i in audit.list_logins(limit=100)["items"]} == {
            "school-b"
        }
    with rpc(TRUST_AUDITOR) as audit:
        both = audit.list_logins(limit=100)["items"]
    assert {item["org_id"] for item in both} == {"school-a", "school-b"}


def test_filters_pagination_and_decryption(rpc, seeded) -> None:
    """Login filters and cursor pages work both ways; personal values come
    back decrypted."""
    with rpc(AUDITOR_A) as audit:
        failed = audit.list_logins(
            filters={"outcome": "failed", "reason": "bad_password"}
        )
        by_ip = audit.list_logins(filters={"ip": "10.0.0.1"})
        first = audit.list_logins(limit=2, order="oldest")
        second = audit.list_logins(limit=2, order="oldest", cursor=first["next_cursor"])
        newest = audit.list_logins(limit=2)
        changes = audit.list_changes(filters={"entity_id": "user-school-a-1"})
    assert len(failed["items"]) == 2
    assert all(item["outcome"] == "failed" for item in failed["items"])
    assert {item["ip"] for item in by_ip["items"]} == {"10.0.0.1"}
    seqs = [item["seq"] for item in first["items"] + second["items"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert newest["items"][0]["seq"] > newest["items"][1]["seq"]
    assert failed["items"][0]["data"]["username"].endswith("@school-a.example")
    fields = [c for item in changes["items"] for c in item["changes"]]
    assert {"field": "given_name", "before": "Old1", "after": "New1"} in fields


def test_reads_are_logged_and_erasure_keeps_the_chain(rpc, seeded, audit_db) -> None:
    """Every read becomes an audit.log_read entry; staff are refused (and the
    refusal is logged); erasing a subject's key hides their values while the
    chain still verifies."""
    with rpc(STAFF_A) as audit:
        with pytest.raises(RemoteError) as refused:
            audit.list_logins()
    assert "AUDIT_ACCESS_DENIED" in str(refused.value)

    with rpc(ADMIN_A) as audit:
        audit.erase_subject_key("user", "user-school-a-1")
        changes = audit.list_changes(filters={"entity_id": "user-school-a-1"})
        with pytest.raises(RemoteError):
            audit.erase_subject_key("user", "user-school-b-1")
        wait_until(
            lambda: scalar(
                audit_db, "SELECT count(*) FROM audit_log WHERE type = 'audit.log_read'"
            ),
            20,
            "the read to be logged",
        )
        verified = audit.verify_chain()
    values = {c["after"] for item in changes["items"] for c in item["changes"]}
    assert values == {"[erased]"}
    assert verified["ok"], verified
    wait_until(
        lambda: (
            scalar(
                audit_db,
                "SELECT count(*) FROM audit_log WHERE type IN "
                "('authz.denied', 'audit.subject_key_erased')",
            )
            >= 3
        ),
        20,
        "denials and the erasure to be logged",
    )
