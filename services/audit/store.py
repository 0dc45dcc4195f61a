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

from plumbing.database import table_of
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

LOG = table_of(LogEntry)
HEAD = table_of(ChainHead)
CHECKPOINTS = table_of(Checkpoint)
KEYS = table_of(SubjectKey)
DEAD = table_of(DeadLetter)


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
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # The whole transaction, commit included, on the psycopg2
                # connection itself: a few round trips and no per-row work by
                # SQLAlchemy (whose commit on leaving is then a no-op).
                return self._append_pg(
                    conn.connection.driver_connection, envelopes, dead_letters, now
                )
            return self._append_sqlalchemy(conn, envelopes, dead_letters, now)

    def _append_sqlalchemy(
        self,
        conn: Connection,
        envelopes: Sequence[dict[str, Any]],
        dead_letters: Sequence[DeadLetterRecord],
        now: datetime,
    ) -> AppendResult:
        result = AppendResult()
        head = _lock_head(conn)
        fresh = self._fresh(conn, envelopes)
        result.duplicates = len(envelopes) - len(fresh)
        seq, prev_hash = head.seq, head.hash
        if fresh:
            keys = self._keys_for(conn, fresh, now)
            rows, checkpoints, seq, prev_hash = self._entries(
                fresh, keys, seq, prev_hash, now
            )
            conn.execute(
                insert(LOG), [dict(zip(LOG_COLUMNS, row, strict=True)) for row in rows]
            )
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

    def _append_pg(
        self,
        raw: Any,
        envelopes: Sequence[dict[str, Any]],
        dead_letters: Sequence[DeadLetterRecord],
        now: datetime,
    ) -> AppendResult:
        """The append on a psycopg2 connection: lock the head; in one query the
        stored event ids and the subject keys; then the entries, the new head,
        checkpoints and dead letters in one statement; commit."""
        result = AppendResult()
        with raw.cursor() as cursor:
            cursor.execute(_PG_LOCK_HEAD)
            seq, prev_hash = cursor.fetchone()
            fresh = self._fresh_pg(cursor, envelopes)
            result.duplicates = len(envelopes) - len(fresh)
            statements: list[bytes] = []
            if fresh:
                keys = _keys_pg(cursor, fresh, now, statements)
                rows, checkpoints, seq, prev_hash = self._entries(
                    fresh, keys, seq, prev_hash, now
                )
                statements.append(_pg_insert_entries(cursor, rows))
                statements.append(cursor.mogrify(_PG_MOVE_HEAD, (seq, prev_hash)))
                if checkpoints:
                    statements.append(
                        _pg_insert(
                            cursor,
                            "checkpoints",
                            CHECKPOINT_COLUMNS,
                            [
                                tuple(c[k] for k in CHECKPOINT_COLUMNS)
                                for c in checkpoints
                            ],
                        )
                    )
                result.checkpoints = [row["seq"] for row in checkpoints]
            if dead_letters:
                statements.append(
                    _pg_insert(
                        cursor,
                        "dead_letters",
                        DEAD_COLUMNS,
                        [
                            tuple(row[k] for k in DEAD_COLUMNS)
                            for row in (d.row(now) for d in dead_letters)
                        ],
                    )
                )
            if statements:
                cursor.execute(b";".join(statements))
        raw.commit()
        result.appended = len(fresh)
        result.dead_letters = len(dead_letters)
        result.head_seq = seq
        return result

    def _fresh_pg(
        self, cursor: Any, envelopes: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if not envelopes:
            return []
        ids = [str(envelope["event_id"]).lower() for envelope in envelopes]
        cursor.execute(_PG_STORED_IDS, (ids,))
        return _unseen(envelopes, {row[0] for row in cursor.fetchall()})

    def _fresh(
        self, conn: Connection, envelopes: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        ids = {str(envelope["event_id"]).lower() for envelope in envelopes}
        stored = set(
            conn.execute(
                select(LOG.c.event_id).where(LOG.c.event_id.in_(ids))
            ).scalars()
        )
        return _unseen(envelopes, stored)

    def _entries(
        self,
        envelopes: list[dict[str, Any]],
        keys: dict[str, tuple[str, bytes]],
        seq: int,
        prev_hash: str,
        now: datetime,
    ) -> tuple[list[tuple], list[dict], int, str]:
        recorded_at = chain.utc_stamp(now)
        rows, checkpoints = [], []
        sha256 = hashlib.sha256
        for envelope in envelopes:
            seq += 1
            event = self._protect(envelope, keys)
            text = canonical_text(chain.make_entry(seq, prev_hash, recorded_at, event))
            hash_ = sha256(text.encode("utf-8")).hexdigest()
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
        missing: list[dict[str, Any]] = [
            {"subject": subject, "key_id": key_id, "key": key, "created_at": now}
            for subject in sorted(subjects - set(found))
            for key_id, key in [crypto.new_subject_key()]
        ]
        if missing:
            conn.execute(insert(KEYS), missing)
        keys: dict[str, tuple[str, bytes]] = {
            row["subject"]: (row["key_id"], row["key"]) for row in missing
        }
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


LOG_COLUMNS = (
    "seq",
    "event_id",
    "type",
    "org_id",
    "actor_user_id",
    "actor_ip",
    "subject_type",
    "subject_id",
    "reason",
    "occurred_at",
    "recorded_at",
    "entry",
    "prev_hash",
    "hash",
)
CHECKPOINT_COLUMNS = ("seq", "hash", "signed_at", "key_id", "signature")
DEAD_COLUMNS = (
    "received_at",
    "reason",
    "detail",
    "message_id",
    "exchange",
    "routing_key",
    "size",
    "body_sha256",
)


def _row(
    seq: int,
    event: dict[str, Any],
    text: str,
    prev_hash: str,
    hash_: str,
    now: datetime,
) -> tuple:
    """The values of one ``audit_log`` row, in ``LOG_COLUMNS`` order."""
    actor = event.get("actor") or {}
    subject = event.get("subject") or {}
    return (
        seq,
        str(event["event_id"]).lower(),
        event["type"],
        event.get("org_id"),
        actor.get("user_id"),
        actor.get("ip"),
        subject.get("type"),
        subject.get("id"),
        _reason(event),
        datetime.fromisoformat(event["occurred_at"]),
        now,
        text,
        prev_hash,
        hash_,
    )


def _unseen(
    envelopes: Sequence[dict[str, Any]], stored: set[str]
) -> list[dict[str, Any]]:
    """The envelopes whose event id is neither stored nor earlier in the batch."""
    fresh = []
    for envelope in envelopes:
        event_id = str(envelope["event_id"]).lower()
        if event_id not in stored:
            stored.add(event_id)
            fresh.append(envelope)
    return fresh


# --- PostgreSQL, on the psycopg2 connection ------------------------------------

_PG_LOCK_HEAD = "SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE"
_PG_MOVE_HEAD = "UPDATE chain_head SET seq = %s, hash = %s WHERE id = 1"
# Run after the head is locked, so that its snapshot sees every entry that
# any instance committed before it got the lock.
_PG_STORED_IDS = "SELECT event_id FROM audit_log WHERE event_id = ANY(%s)"
_PG_KEYS = "SELECT subject, key_id, key FROM subject_keys WHERE subject = ANY(%s)"


def _pg_insert(
    cursor: Any, table: str, columns: Sequence[str], rows: Sequence[tuple]
) -> bytes:
    """One multi-row ``INSERT`` statement, its values quoted by psycopg2."""
    template = ("(" + ",".join(["%s"] * len(columns)) + ")").encode()
    values = b",".join([cursor.mogrify(template, row) for row in rows])
    return f"INSERT INTO {table} ({','.join(columns)}) VALUES ".encode() + values


# The entries go to PostgreSQL as one JSON parameter, unpacked there: quoting
# 14 values of each row with psycopg2's mogrify costs ~25 us a row, json.dumps
# of the rows a tenth of that. (COPY would be cheaper still, but psycopg2
# refuses it on a connection made green by eventlet.)
_PG_CASTS = {
    "seq": "bigint",
    "occurred_at": "timestamptz",
    "recorded_at": "timestamptz",
}
_PG_INSERT_ENTRIES = (
    "INSERT INTO audit_log ("
    + ",".join(LOG_COLUMNS)
    + ") SELECT "
    + ",".join(
        f"(r->>{index})::{_PG_CASTS.get(column, 'text')}"
        for index, column in enumerate(LOG_COLUMNS)
    )
    # jsonb, not json: ->> on a json value parses the element again for
    # every column (PostgreSQL spent 49 ms on a batch of 500, 12 ms as jsonb).
    + " FROM jsonb_array_elements(%s::jsonb) AS r"
)
_OCCURRED_AT = LOG_COLUMNS.index("occurred_at")
_RECORDED_AT = LOG_COLUMNS.index("recorded_at")


def _pg_insert_entries(cursor: Any, rows: Sequence[tuple]) -> bytes:
    """The ``audit_log`` insert of the rows, as one statement with the rows
    as a JSON array of arrays in ``LOG_COLUMNS`` order (datetimes in ISO 8601)."""
    records = []
    for row in rows:
        for value in row:
            if type(value) is str and "\x00" in value:
                # What psycopg2 says of a NUL in a query: the message's fault.
                raise ValueError(
                    "A string literal cannot contain NUL (0x00) characters."
                )
        record = list(row)
        record[_OCCURRED_AT] = record[_OCCURRED_AT].isoformat()
        record[_RECORDED_AT] = record[_RECORDED_AT].isoformat()
        records.append(record)
    return cursor.mogrify(_PG_INSERT_ENTRIES, (json.dumps(records),))


def _keys_pg(
    cursor: Any,
    envelopes: Iterable[dict[str, Any]],
    now: datetime,
    statements: list[bytes],
) -> dict[str, tuple[str, bytes]]:
    """Like :meth:`ChainStore._keys_for`; the insert of missing keys is added
    to ``statements`` (it runs before the entries, in the same transaction)."""
    subjects = {
        chain.data_subject(e) for e in envelopes if chain.has_personal_values(e)
    }
    if not subjects:
        return {}
    cursor.execute(_PG_KEYS, (sorted(subjects),))
    found = {
        subject: (key_id, None if key is None else bytes(key))
        for subject, key_id, key in cursor.fetchall()
    }
    missing = [
        (key_id, subject, key, now)
        for subject in sorted(subjects - set(found))
        for key_id, key in [crypto.new_subject_key()]
    ]
    if missing:
        statements.append(
            _pg_insert(
                cursor,
                "subject_keys",
                ("key_id", "subject", "key", "created_at"),
                missing,
            )
        )
    keys = {subject: (key_id, key) for key_id, subject, key, _ in missing}
    for subject, (key_id, key) in found.items():
        keys[subject] = (key_id, key) if key else ("erased", secrets.token_bytes(32))
    return keys


def entry_record(row: Any) -> dict[str, Any]:
    """The export record of a stored row: the entry as hashed, and its hash."""
    return {"record": "entry", "entry": json.loads(row.entry), "hash": row.hash}


def _reason(event: dict[str, Any]) -> str | None:
    # A reason code (auth's login_failed, sessions_revoked), never free text:
    # free-text ``reason`` fields are personal and encrypted.
    reason = (event.get("data") or {}).get("reason_code")
    return reason[:64] if isinstance(reason, str) else None
