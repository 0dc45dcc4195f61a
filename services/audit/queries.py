"""Reading the log: login and change pages, checkpoints, dead letters, the
database-side chain check, with personal values decrypted where the data
subject's key still exists.

Scope: a caller sees only entries whose ``org_id`` is among the organisations
where they hold ``auditor``, ``school_admin`` or ``trust_admin`` (a trust-level
role covers the trust and its schools through ``caller.scopes``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from plumbing.identity import Identity
from services.audit import chain, crypto
from services.audit.exceptions import AuditAccessDenied
from services.audit.models import Checkpoint, DeadLetter, LogEntry, SubjectKey

READ_ROLES = ("auditor", "school_admin", "trust_admin")
ADMIN_ROLES = ("school_admin", "trust_admin")
ERASED = "[erased]"

LOGIN_OUTCOMES = {
    "auth.login_succeeded": "succeeded",
    "auth.login_failed": "failed",
    "auth.account_locked": "locked",
    "auth.login_throttled": "throttled",
    "auth.logged_out": "logged_out",
    "auth.token_refreshed": "refreshed",
}
OUTCOME_TYPES = {outcome: type_ for type_, outcome in LOGIN_OUTCOMES.items()}


def visible_orgs(caller: Identity, roles: Iterable[str] = READ_ROLES) -> set[str]:
    return caller.orgs_for(roles)


def require_reader(caller: Identity) -> set[str]:
    orgs = visible_orgs(caller)
    if not orgs:
        raise AuditAccessDenied()
    return orgs


def _scoped(query: Select, orgs: set[str], filters: dict[str, Any]) -> Select:
    wanted = orgs
    if filters.get("org_id"):
        wanted = orgs & {filters["org_id"]}
    query = query.where(LogEntry.org_id.in_(sorted(wanted)))
    if filters.get("since"):
        query = query.where(LogEntry.occurred_at >= filters["since"])
    if filters.get("until"):
        query = query.where(LogEntry.occurred_at < filters["until"])
    return query


def _page(query: Select, page: dict[str, Any]) -> Select:
    cursor, newest = page.get("cursor"), page["order"] == "newest"
    if cursor is not None:
        query = query.where(LogEntry.seq < cursor if newest else LogEntry.seq > cursor)
    order = LogEntry.seq.desc() if newest else LogEntry.seq.asc()
    return query.order_by(order).limit(page["limit"])


class Decrypter:
    """Decrypts tokens with the subject keys it loads once per key id."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.keys: dict[str, bytes | None] = {}

    def load(self, entries: Iterable[dict[str, Any]]) -> None:
        wanted: set[str] = set()
        for entry in entries:
            _collect_key_ids(entry.get("event"), wanted)
        wanted -= set(self.keys)
        if wanted:
            rows = self.session.execute(
                select(SubjectKey.key_id, SubjectKey.key).where(
                    SubjectKey.key_id.in_(wanted)
                )
            )
            self.keys.update({row.key_id: row.key for row in rows})

    def reveal(self, event: dict[str, Any]) -> dict[str, Any]:
        event_id = str(event["event_id"])

        def decrypt(path: str, token: str) -> Any:
            key = self.keys.get(crypto.encrypted_key_id(token))
            if not key:
                return ERASED
            try:
                return crypto.decrypt_value(key, event_id, path, token)
            except ValueError:
                return ERASED

        return chain.reveal(event, decrypt)


def _collect_key_ids(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _collect_key_ids(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_key_ids(item, found)
    elif crypto.is_encrypted(value):
        found.add(crypto.encrypted_key_id(value))


def _revealed(session: Session, rows: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
    entries = [json.loads(row.entry) for row in rows]
    decrypter = Decrypter(session)
    decrypter.load(entries)
    return [
        (row, decrypter.reveal(entry["event"]))
        for row, entry in zip(rows, entries, strict=True)
    ]


def _next_cursor(rows: list[Any], limit: int) -> int | None:
    return rows[-1].seq if len(rows) == limit else None


def list_logins(
    session: Session, orgs: set[str], filters: dict[str, Any], page: dict[str, Any]
) -> dict[str, Any]:
    query = select(LogEntry).where(LogEntry.type.in_(sorted(LOGIN_OUTCOMES)))
    query = _scoped(query, orgs, filters)
    if filters.get("user_id"):
        user_id = filters["user_id"]
        query = query.where(
            or_(
                LogEntry.actor_user_id == user_id,
                and_(LogEntry.subject_type == "user", LogEntry.subject_id == user_id),
            )
        )
    if filters.get("outcome"):
        query = query.where(LogEntry.type == OUTCOME_TYPES[filters["outcome"]])
    if filters.get("reason"):
        query = query.where(LogEntry.reason == filters["reason"])
    if filters.get("ip"):
        query = query.where(LogEntry.actor_ip == filters["ip"])
    rows = list(session.execute(_page(query, page)).scalars())
    items = [_login_item(row, event) for row, event in _revealed(session, rows)]
    return {"items": items, "next_cursor": _next_cursor(rows, page["limit"])}


def _login_item(row: LogEntry, event: dict[str, Any]) -> dict[str, Any]:
    actor = event.get("actor") or {}
    subject = event.get("subject") or {}
    return {
        "seq": row.seq,
        "event_id": row.event_id,
        "type": row.type,
        "outcome": LOGIN_OUTCOMES.get(row.type),
        "reason": row.reason,
        "occurred_at": event["occurred_at"],
        "org_id": row.org_id,
        "user_id": actor.get("user_id")
        or (subject.get("id") if subject.get("type") == "user" else None),
        "ip": actor.get("ip"),
        "user_agent": actor.get("user_agent"),
        "data": event.get("data") or {},
        "hash": row.hash,
    }


def list_changes(
    session: Session, orgs: set[str], filters: dict[str, Any], page: dict[str, Any]
) -> dict[str, Any]:
    query = select(LogEntry).where(LogEntry.type.not_in(sorted(LOGIN_OUTCOMES)))
    query = _scoped(query, orgs, filters)
    if filters.get("entity_type"):
        query = query.where(LogEntry.subject_type == filters["entity_type"])
    if filters.get("entity_id"):
        query = query.where(LogEntry.subject_id == filters["entity_id"])
    if filters.get("actor_user_id"):
        query = query.where(LogEntry.actor_user_id == filters["actor_user_id"])
    if filters.get("type"):
        query = query.where(LogEntry.type == filters["type"])
    rows = list(session.execute(_page(query, page)).scalars())
    items = [change_item(row, event) for row, event in _revealed(session, rows)]
    return {"items": items, "next_cursor": _next_cursor(rows, page["limit"])}


def change_item(row: LogEntry, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "event_id": row.event_id,
        "type": row.type,
        "occurred_at": event["occurred_at"],
        "org_id": row.org_id,
        "actor": event.get("actor") or {},
        "subject": event.get("subject") or {},
        "changes": [
            {
                "field": name,
                "before": change.get("before"),
                "after": change.get("after"),
            }
            for name, change in sorted((event.get("changes") or {}).items())
        ],
        "data": event.get("data") or {},
        "request_id": event.get("request_id"),
        "hash": row.hash,
    }


def list_checkpoints(
    session: Session, cursor: int | None, limit: int, order: str
) -> dict[str, Any]:
    newest = order == "newest"
    query = select(Checkpoint)
    if cursor is not None:
        query = query.where(
            Checkpoint.seq < cursor if newest else Checkpoint.seq > cursor
        )
    query = query.order_by(Checkpoint.seq.desc() if newest else Checkpoint.seq).limit(
        limit
    )
    rows = list(session.execute(query).scalars())
    return {
        "items": [checkpoint_record(row) for row in rows],
        "next_cursor": rows[-1].seq if len(rows) == limit else None,
    }


def checkpoint_record(row: Checkpoint) -> dict[str, Any]:
    """A checkpoint as exported: the signed statement and its signature."""
    return {
        "record": "checkpoint",
        "checkpoint": chain.checkpoint_statement(
            row.seq, row.hash, row.signed_at, row.key_id
        ),
        "signature": row.signature,
    }


def list_dead_letters(session: Session, cursor: int | None, limit: int) -> dict:
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if cursor is not None:
        query = query.where(DeadLetter.id < cursor)
    rows = list(session.execute(query).scalars())
    total = session.query(DeadLetter).count()
    return {
        "total": total,
        "items": [
            {
                "id": row.id,
                "received_at": row.received_at.isoformat(),
                "reason": row.reason,
                "detail": row.detail,
                "message_id": row.message_id,
                "exchange": row.exchange,
                "routing_key": row.routing_key,
                "size": row.size,
                "body_sha256": row.body_sha256,
            }
            for row in rows
        ],
        "next_cursor": rows[-1].id if len(rows) == limit else None,
    }


def iter_rows(session: Session, first: int, last: int, chunk: int = 2000) -> Iterator:
    """Stored entries with first <= seq <= last, in seq order, fetched in chunks."""
    seq = first
    while seq <= last:
        rows = session.execute(
            select(
                LogEntry.seq,
                LogEntry.entry,
                LogEntry.hash,
                LogEntry.org_id,
                LogEntry.prev_hash,
            )
            .where(LogEntry.seq >= seq, LogEntry.seq <= last)
            .order_by(LogEntry.seq)
            .limit(chunk)
        ).all()
        if not rows:
            return
        yield from rows
        seq = rows[-1].seq + 1


def verify_stored_chain(session: Session, public_key: Ed25519PublicKey) -> dict:
    """Check every stored entry and checkpoint, as the export verifier would."""
    from services.audit.models import ChainHead

    head = session.execute(select(ChainHead.seq, ChainHead.hash)).one()
    verifier = chain.ChainVerifier(public_key, require_seal=False)
    for row in iter_rows(session, 1, head.seq):
        verifier.feed(
            {"record": "entry", "entry": json.loads(row.entry), "hash": row.hash}
        )
    for checkpoint in session.execute(
        select(Checkpoint).order_by(Checkpoint.seq)
    ).scalars():
        verifier.feed(checkpoint_record(checkpoint))
    result = verifier.finish()
    if (result.last_seq or 0) != head.seq:
        missing = (result.last_seq or 0) + 1
        result.problems.append(
            chain.Problem(missing, "entries before the head are missing")
        )
        result.ok = False
        result.first_bad_seq = min(p.seq for p in result.problems)
    data = result.as_dict()
    data.update({"head_seq": head.seq, "head_hash": head.hash})
    return data
