"""Appending to the chain, in the database.

Every append locks the single ``chain_head`` row (``SELECT ... FOR UPDATE``),
so appends from any number of audit instances are serialised: each batch
takes the next seqs after the head, links to the head's hash and moves the
head, all in one transaction. Under that lock, events whose ``event_id`` is
already stored are dropped, so a redelivered message is one entry.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from services.audit import chain, crypto
from services.audit.canonical import canonical_text
from services.audit.models import (
    ChainHead,
    Checkpoint,
    DeadLetter,
    LogEntry,
    SubjectKey,
)

CHECKPOINT_EVERY = 1000

LOG = LogEntry.__table__
HEAD = ChainHead.__table__
CHECKPOINTS = Checkpoint.__table__
KEYS = SubjectKey.__table__
DEAD = DeadLetter.__table__


@dataclass
class DeadLetterRecord:
    reason: str
    detail: str
    body: bytes
    message_id: str | None = None
    exchange: str | None = None
    routing_key: str | None = None

    def row(self, now: datetime) -> dict[str, Any]:
        return {
            "received_at": now,
            "reason": self.reason,
            "detail": self.detail[:2000],
            "message_id": (self.message_id or None) and self.message_id[:200],
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "size": len(self.body),
            "body_sha256": hashlib.sha256(self.body).hexdigest(),
        }


@dataclass
class AppendResult:
    appended: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    head_seq: int = 0
    checkpoints: list[int] = field(default_factory=list)


def _lock_head(conn: Connection) -> Any:
    query = select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one()


def _signed_checkpoint(key: Ed25519PrivateKey, seq: int, hash_: str) -> dict:
    statement = chain.checkpoint_statement(
        seq, hash_, chain.utc_stamp(), crypto.key_id(key)
    )
    return {
        "seq": seq,
        "hash": hash_,
        "signed_at": statement["signed_at"],
        "key_id": statement["key_id"],
        "signature": crypto.sign_statement(key, statement),
    }


class ChainStore:
    """Appends batches of envelopes to the chain and signs checkpoints."""

    def __init__(
        self,
        engine: Engine,
        signing_key: Ed25519PrivateKey,
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> None:
        self.engine = engine
        self.signing_key = signing_key
        self.checkpoint_every = checkpoint_every

    def append(
        self,
        envelopes: Sequence[dict[str, Any]],
        dead_letters: Sequence[DeadLetterRecord] = (),
    ) -> AppendResult:
        """Store the new envelopes (and dead-letter records) in one transaction."""
        result = AppendResult()
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            head = _lock_head(conn)
            fresh = self._fresh(conn, envelopes)
            result.duplicates = len(envelopes) - len(fresh)
            seq, prev_hash = head.seq, head.hash
            if fresh:
                rows, checkpoints, seq, prev_hash = self._entries(
                    conn, fresh, seq, prev_hash, now
                )
                conn.execute(insert(LOG), rows)
                conn.execute(
                    update(HEAD).where(HEAD.c.id == 1).values(seq=seq, hash=prev_hash)
                )
                if checkpoints:
                    conn.execute(insert(CHECKPOINTS), checkpoints)
                result.checkpoints = [row["seq"] for row in checkpoints]
            if dead_letters:
                conn.execute(insert(DEAD), [d.row(now) for d in dead_letters])
            result.appended = len(fresh)
            result.dead_letters = len(dead_letters)
            result.head_seq = seq
        return result

    def _fresh(
        self, conn: Connection, envelopes: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        ids = {str(envelope["event_id"]).lower() for envelope in envelopes}
        stored = set(
            conn.execute(
                select(LOG.c.event_id).where(LOG.c.event_id.in_(ids))
            ).scalars()
        )
        fresh = []
        for envelope in envelopes:
            event_id = str(envelope["event_id"]).lower()
            if event_id not in stored:
                stored.add(event_id)
                fresh.append(envelope)
        return fresh

    def _entries(
        self,
        conn: Connection,
        envelopes: list[dict[str, Any]],
        seq: int,
        prev_hash: str,
        now: datetime,
    ) -> tuple[list[dict], list[dict], int, str]:
        keys = self._keys_for(conn, envelopes, now)
        recorded_at = chain.utc_stamp(now)
        rows, checkpoints = [], []
        for envelope in envelopes:
            seq += 1
            event = self._protect(envelope, keys)
            text = canonical_text(chain.make_entry(seq, prev_hash, recorded_at, event))
            hash_ = hashlib.sha256(text.encode("utf-8")).hexdigest()
            rows.append(_row(seq, event, text, prev_hash, hash_, now))
            if seq % self.checkpoint_every == 0:
                checkpoints.append(_signed_checkpoint(self.signing_key, seq, hash_))
            prev_hash = hash_
        return rows, checkpoints, seq, prev_hash

    def _protect(
        self, envelope: dict[str, Any], keys: dict[str, tuple[str, bytes]]
    ) -> dict[str, Any]:
        if not chain.has_personal_values(envelope):
            return envelope
        key_id, key = keys[chain.data_subject(envelope)]
        event_id = str(envelope["event_id"])

        def encrypt(path: str, value: Any) -> str:
            return crypto.encrypt_value(key_id, key, event_id, path, value)

        return chain.protect(envelope, encrypt)

    def _keys_for(
        self, conn: Connection, envelopes: Iterable[dict[str, Any]], now: datetime
    ) -> dict[str, tuple[str, bytes]]:
        """The key of every data subject in the batch, made when missing. An
        erased subject gets a throw-away key: their new values are unreadable."""
        subjects = {
            chain.data_subject(e) for e in envelopes if chain.has_personal_values(e)
        }
        if not subjects:
            return {}
        found = {
            row.subject: (row.key_id, row.key)
            for row in conn.execute(
                select(KEYS.c.subject, KEYS.c.key_id, KEYS.c.key).where(
                    KEYS.c.subject.in_(subjects)
                )
            )
        }
        missing = [
            {"subject": subject, "key_id": key_id, "key": key, "created_at": now}
            for subject in sorted(subjects - set(found))
            for key_id, key in [crypto.new_subject_key()]
        ]
        if missing:
            conn.execute(insert(KEYS), missing)
        keys = {row["subject"]: (row["key_id"], row["key"]) for row in missing}
        for subject, (key_id, key) in found.items():
            keys[subject] = (
                (key_id, key) if key else ("erased", secrets.token_bytes(32))
            )
        return keys

    def checkpoint(self, max_age: timedelta | None = None) -> int | None:
        """Sign a checkpoint at the head if it moved since the last one and
        (given ``max_age``) the last one is at least that old."""
        with self.engine.begin() as conn:
            head = _lock_head(conn)
            last = conn.execute(
                select(CHECKPOINTS.c.seq, CHECKPOINTS.c.signed_at)
                .order_by(CHECKPOINTS.c.seq.desc())
                .limit(1)
            ).first()
            if head.seq == 0 or (last is not None and last.seq >= head.seq):
                return None
            if max_age is not None and last is not None:
                signed = datetime.strptime(last.signed_at, "%Y-%m-%dT%H:%M:%S.%fZ")
                if datetime.now(UTC) - signed.replace(tzinfo=UTC) < max_age:
                    return None
            conn.execute(
                insert(CHECKPOINTS),
                [_signed_checkpoint(self.signing_key, head.seq, head.hash)],
            )
            return head.seq

    def head(self) -> tuple[int, str]:
        with self.engine.connect() as conn:
            row = conn.execute(select(HEAD.c.seq, HEAD.c.hash)).one()
            return row.seq, row.hash

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(LOG)).scalar_one()


def _row(
    seq: int,
    event: dict[str, Any],
    text: str,
    prev_hash: str,
    hash_: str,
    now: datetime,
) -> dict[str, Any]:
    actor = event.get("actor") or {}
    subject = event.get("subject") or {}
    return {
        "seq": seq,
        "event_id": str(event["event_id"]).lower(),
        "type": event["type"],
        "org_id": event.get("org_id"),
        "actor_user_id": actor.get("user_id"),
        "actor_ip": actor.get("ip"),
        "subject_type": subject.get("type"),
        "subject_id": subject.get("id"),
        "reason": _reason(event),
        "occurred_at": datetime.fromisoformat(event["occurred_at"]),
        "recorded_at": now,
        "entry": text,
        "prev_hash": prev_hash,
        "hash": hash_,
    }


def entry_record(row: Any) -> dict[str, Any]:
    """The export record of a stored row: the entry as hashed, and its hash."""
    return {"record": "entry", "entry": json.loads(row.entry), "hash": row.hash}


def _reason(event: dict[str, Any]) -> str | None:
    reason = (event.get("data") or {}).get("reason")
    return reason[:64] if isinstance(reason, str) else None
