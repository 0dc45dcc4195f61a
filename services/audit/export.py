"""Exports of a seq range, in pages that the gateway streams one after another.

RPC replies cannot stream, so ``export`` returns one page of text (``chunk``)
and an opaque ``next_cursor``; the caller asks again with the cursor until it
is ``None`` and writes the chunks out in order. Concatenated, the chunks are
the export file.

JSON Lines (the verifiable form, see ``docs/audit-log-format.md``): a header
record, then each entry in seq order (entries of organisations the caller may
not see are ``redacted`` records with only seq, prev_hash and hash, so the
chain still links), each checkpoint right after the entry it signs, and last a
seal signed at export time over the range's first and last entries.

CSV (for reading): one row per visible entry, personal values decrypted where
the key exists; it is not verifiable, the JSON Lines export is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Set as AbstractSet
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.audit import chain, crypto, queries
from services.audit.exceptions import InvalidCursor
from services.audit.models import ChainHead, Checkpoint, LogEntry

CSV_COLUMNS = (
    "seq",
    "recorded_at",
    "event_id",
    "type",
    "occurred_at",
    "org_id",
    "actor_user_id",
    "actor_ip",
    "subject_type",
    "subject_id",
    "changes",
    "data",
    "request_id",
    "prev_hash",
    "hash",
)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _cursor(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        next_seq, to_seq = (int(part) for part in text.split(":"))
    except ValueError:
        raise InvalidCursor() from None
    return next_seq, to_seq


def export_page(
    session: Session,
    signing_key: Ed25519PrivateKey,
    orgs: AbstractSet[str | None],
    params: dict[str, Any],
) -> dict[str, Any]:
    """One page of an export; see the module docstring for the format.

    ``orgs`` are the organisations whose entries are shown; ``None`` among
    them shows the entries of no organisation (the command line's export)."""
    head_seq = session.execute(select(ChainHead.seq)).scalar_one()
    from_seq = params["from_seq"]
    cursor = _cursor(params.get("cursor"))
    if cursor is None:
        to_seq = min(params.get("to_seq") or head_seq, head_seq)
        start = from_seq
    else:
        start, to_seq = cursor
        if start < from_seq:
            raise InvalidCursor()
    end = min(start + params["limit"] - 1, to_seq)
    rows = list(queries.iter_rows(session, start, end)) if start <= end else []
    last_page = end >= to_seq
    writer = _jsonl_page if params["format"] == "jsonl" else _csv_page
    chunk = writer(
        session, signing_key, orgs, rows, from_seq, to_seq, cursor, last_page
    )
    return {
        "format": params["format"],
        "from_seq": from_seq,
        "to_seq": to_seq,
        "chunk": chunk,
        "entries": len(rows),
        "next_cursor": None if last_page else f"{end + 1}:{to_seq}",
    }


def _jsonl_page(
    session: Session,
    key: Ed25519PrivateKey,
    orgs: AbstractSet[str | None],
    rows: list[Any],
    from_seq: int,
    to_seq: int,
    cursor: Any,
    last_page: bool,
) -> str:
    out = []
    exported_at = chain.utc_stamp()
    if cursor is None:
        out.append(
            _line(
                {
                    "record": "header",
                    "format": chain.EXPORT_FORMAT,
                    "version": chain.EXPORT_VERSION,
                    "from_seq": from_seq,
                    "to_seq": to_seq,
                    "exported_at": exported_at,
                    "key_id": crypto.key_id(key),
                }
            )
        )
    checkpoints = _checkpoints(session, rows)
    for row in rows:
        if row.org_id in orgs:
            out.append(
                _line(
                    {
                        "record": "entry",
                        "entry": json.loads(row.entry),
                        "hash": row.hash,
                    }
                )
            )
        else:
            out.append(
                _line(
                    {
                        "record": "redacted",
                        "seq": row.seq,
                        "prev_hash": row.prev_hash,
                        "hash": row.hash,
                    }
                )
            )
        if row.seq in checkpoints:
            out.append(_line(queries.checkpoint_record(checkpoints[row.seq])))
    if last_page and to_seq >= from_seq:
        out.append(_line(_seal(session, key, from_seq, to_seq, exported_at)))
    return "".join(out)


def _checkpoints(session: Session, rows: list[Any]) -> dict[int, Checkpoint]:
    if not rows:
        return {}
    found = session.execute(
        select(Checkpoint).where(
            Checkpoint.seq >= rows[0].seq, Checkpoint.seq <= rows[-1].seq
        )
    ).scalars()
    return {checkpoint.seq: checkpoint for checkpoint in found}


def _seal(
    session: Session, key: Ed25519PrivateKey, from_seq: int, to_seq: int, at: str
) -> dict[str, Any]:
    first_prev, last_hash = (
        session.execute(
            select(LogEntry.prev_hash).where(LogEntry.seq == from_seq)
        ).scalar_one(),
        session.execute(
            select(LogEntry.hash).where(LogEntry.seq == to_seq)
        ).scalar_one(),
    )
    statement = chain.seal_statement(
        from_seq, to_seq, first_prev, last_hash, at, crypto.key_id(key)
    )
    return {
        "record": "seal",
        "seal": statement,
        "signature": crypto.sign_statement(key, statement),
    }


def _csv_page(
    session: Session,
    key: Ed25519PrivateKey,
    orgs: AbstractSet[str | None],
    rows: list[Any],
    from_seq: int,
    to_seq: int,
    cursor: Any,
    last_page: bool,
) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if cursor is None:
        writer.writerow(CSV_COLUMNS)
    visible = [row for row in rows if row.org_id in orgs]
    entries = [json.loads(row.entry) for row in visible]
    decrypter = queries.Decrypter(session)
    decrypter.load(entries)
    for row, entry in zip(visible, entries, strict=True):
        event = decrypter.reveal(entry["event"])
        actor = event.get("actor") or {}
        subject = event.get("subject") or {}
        writer.writerow(
            [
                row.seq,
                entry["recorded_at"],
                event["event_id"],
                event["type"],
                event["occurred_at"],
                event.get("org_id") or "",
                actor.get("user_id") or "",
                actor.get("ip") or "",
                subject.get("type"),
                subject.get("id"),
                json.dumps(
                    event.get("changes") or {}, ensure_ascii=False, sort_keys=True
                ),
                json.dumps(event.get("data") or {}, ensure_ascii=False, sort_keys=True),
                event.get("request_id") or "",
                entry["prev_hash"],
                row.hash,
            ]
        )
    return buffer.getvalue()
