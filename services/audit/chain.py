"""The hash chain: how an entry is formed and hashed, what a checkpoint and
an export seal sign, and how a stream of export records is verified.

This module is the reference for ``docs/audit-log-format.md`` and is shared
by the service (which builds entries and checks its own chain) and the
stand-alone verifier (which needs only an export and the public key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit import crypto
from services.audit.canonical import NotCanonicalisable, canonical_bytes

GENESIS_HASH = "0" * 64
EXPORT_FORMAT = "cpd-audit-export"
EXPORT_VERSION = 1

Encrypt = Callable[[str, Any], str]


def utc_stamp(moment: datetime | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ``, the one time format the chain writes."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(entry: dict[str, Any]) -> str:
    """Lower-case hex SHA-256 of the entry's canonical bytes."""
    return hashlib.sha256(canonical_bytes(entry)).hexdigest()


def make_entry(
    seq: int, prev_hash: str, recorded_at: str, event: dict[str, Any]
) -> dict[str, Any]:
    return {
        "seq": seq,
        "prev_hash": prev_hash,
        "recorded_at": recorded_at,
        "event": event,
    }


# --- personal values ----------------------------------------------------------


def protect(event: dict[str, Any], encrypt: Encrypt) -> dict[str, Any]:
    """A copy of the envelope with every personal value replaced by the
    ``encrypt(path, value)`` token; ``None`` values stay ``None``."""
    protected = dict(event)
    changes = {}
    for name, change in (event.get("changes") or {}).items():
        if name in crypto.PERSONAL_FIELDS and isinstance(change, dict):
            change = {
                side: (
                    None if value is None else encrypt(f"changes.{name}.{side}", value)
                )
                for side, value in change.items()
            }
        changes[name] = change
    protected["changes"] = changes
    protected["data"] = _protect_tree(event.get("data") or {}, "data", encrypt)
    return protected


def _protect_tree(value: Any, path: str, encrypt: Encrypt) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            child = f"{path}.{key}"
            if key in crypto.PERSONAL_FIELDS and item is not None:
                out[key] = encrypt(child, item)
            else:
                out[key] = _protect_tree(item, child, encrypt)
        return out
    if isinstance(value, list):
        return [
            _protect_tree(item, f"{path}.{i}", encrypt) for i, item in enumerate(value)
        ]
    return value


def reveal(event: dict[str, Any], decrypt: Callable[[str, str], Any]) -> dict[str, Any]:
    """The envelope with each encrypted token replaced by ``decrypt(path, token)``."""
    revealed = dict(event)
    changes = {}
    for name, change in (event.get("changes") or {}).items():
        if isinstance(change, dict):
            change = {
                side: decrypt(f"changes.{name}.{side}", value)
                if crypto.is_encrypted(value)
                else value
                for side, value in change.items()
            }
        changes[name] = change
    revealed["changes"] = changes
    revealed["data"] = _reveal_tree(event.get("data") or {}, "data", decrypt)
    return revealed


def _reveal_tree(value: Any, path: str, decrypt: Callable[[str, str], Any]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            child = f"{path}.{key}"
            if key in crypto.PERSONAL_FIELDS and crypto.is_encrypted(item):
                out[key] = decrypt(child, item)
            else:
                out[key] = _reveal_tree(item, child, decrypt)
        return out
    if isinstance(value, list):
        return [
            _reveal_tree(item, f"{path}.{i}", decrypt) for i, item in enumerate(value)
        ]
    return value


def data_subject(event: dict[str, Any]) -> str:
    """Whose personal values an event carries: ``user:<id>`` when the subject
    is a user or ``data.user_id`` names one, else ``<subject type>:<id>``."""
    subject = event.get("subject") or {}
    if subject.get("type") == "user":
        return f"user:{subject.get('id')}"
    user_id = (event.get("data") or {}).get("user_id")
    if isinstance(user_id, str | int) and str(user_id):
        return f"user:{user_id}"
    return f"{subject.get('type')}:{subject.get('id')}"


def has_personal_values(event: dict[str, Any]) -> bool:
    for name in event.get("changes") or {}:
        if name in crypto.PERSONAL_FIELDS:
            return True
    return _tree_has_personal(event.get("data") or {})


def _tree_has_personal(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            (key in crypto.PERSONAL_FIELDS and item is not None)
            or _tree_has_personal(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_tree_has_personal(item) for item in value)
    return False


# --- signed statements --------------------------------------------------------


def checkpoint_statement(seq: int, hash_: str, signed_at: str, key_id: str) -> dict:
    return {
        "kind": "checkpoint",
        "seq": seq,
        "hash": hash_,
        "signed_at": signed_at,
        "key_id": key_id,
    }


def seal_statement(
    from_seq: int,
    to_seq: int,
    first_prev_hash: str,
    last_hash: str,
    exported_at: str,
    key_id: str,
) -> dict:
    return {
        "kind": "export_seal",
        "from_seq": from_seq,
        "to_seq": to_seq,
        "first_prev_hash": first_prev_hash,
        "last_hash": last_hash,
        "exported_at": exported_at,
        "key_id": key_id,
    }


# --- verification -------------------------------------------------------------


@dataclass
class Problem:
    seq: int
    reason: str


@dataclass
class VerifyResult:
    ok: bool
    entries: int = 0
    checkpoints: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    sealed: bool = False
    first_bad_seq: int | None = None
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "sealed": self.sealed,
            "first_bad_seq": self.first_bad_seq,
            "problems": [
                {"seq": problem.seq, "reason": problem.reason}
                for problem in self.problems[:20]
            ],
        }


class ChainVerifier:
    """Feeds on export records in file order and finds the first bad seq.

    Entries must run gaplessly from the first seq, each linking to the hash
    of the one before and hashing to its stated hash; checkpoints must carry
    a valid signature and match the entry of their seq; an export must end
    with a valid seal naming its first and last entries.
    """

    def __init__(self, public_key: Ed25519PublicKey, require_seal: bool = True):
        self.public_key = public_key
        self.key_id = crypto.key_id(public_key)
        self.require_seal = require_seal
        self.result = VerifyResult(ok=False)
        self.expected_seq: int | None = None
        self.prev_hash: str | None = None
        self.first_prev_hash: str | None = None
        self.hashes: dict[int, str] = {}
        self.pending_checkpoints: list[dict[str, Any]] = []
        self.good_checkpoints: list[int] = []
        self.seal: dict[str, Any] | None = None
        self.after_seal = False

    def problem(self, seq: int, reason: str) -> None:
        self.result.problems.append(Problem(seq, reason))

    def feed_line(self, line: str) -> None:
        if not line.strip():
            return
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            self.problem(self._next_seq(), "a line is not valid JSON")
            self._skip_one()
            return
        self.feed(record)

    def feed(self, record: dict[str, Any]) -> None:
        kind = record.get("record")
        if self.seal is not None and kind in ("entry", "redacted", "checkpoint"):
            self.after_seal = True
        if kind == "entry":
            self._entry(record)
        elif kind == "redacted":
            self._redacted(record)
        elif kind == "checkpoint":
            self._checkpoint(record)
        elif kind == "seal":
            self._seal(record)
        elif kind == "header":
            pass
        else:
            self.problem(self._next_seq(), f"unknown record kind {kind!r}")

    def _next_seq(self) -> int:
        return self.expected_seq if self.expected_seq is not None else 1

    def _skip_one(self) -> None:
        if self.expected_seq is not None:
            self.expected_seq += 1
            self.prev_hash = None

    def _entry(self, record: dict[str, Any]) -> None:
        entry = record.get("entry")
        stated = record.get("hash")
        if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
            self.problem(self._next_seq(), "an entry has no integer seq")
            self._skip_one()
            return
        try:
            actual = entry_hash(entry)
        except NotCanonicalisable:
            actual = None
        if actual != stated:
            self.problem(entry["seq"], "the entry does not hash to its stated hash")
        self._link(entry["seq"], entry.get("prev_hash"), stated)

    def _redacted(self, record: dict[str, Any]) -> None:
        seq = record.get("seq")
        if not isinstance(seq, int):
            self.problem(self._next_seq(), "a redacted entry has no integer seq")
            self._skip_one()
            return
        self._link(seq, record.get("prev_hash"), record.get("hash"))

    def _link(self, seq: int, prev_hash: Any, stated: Any) -> None:
        result = self.result
        if self.expected_seq is None:
            self.first_prev_hash = prev_hash
            result.first_seq = seq
            if seq == 1 and prev_hash != GENESIS_HASH:
                self.problem(
                    seq, "the first entry does not start from the genesis hash"
                )
        elif seq != self.expected_seq:
            self.problem(
                self.expected_seq, f"expected seq {self.expected_seq}, found {seq}"
            )
        elif self.prev_hash is not None and prev_hash != self.prev_hash:
            self.problem(seq, "prev_hash is not the hash of the entry before")
        if not isinstance(stated, str):
            stated = ""
        self.hashes[seq] = stated
        self.prev_hash = stated
        self.expected_seq = seq + 1
        result.entries += 1
        result.last_seq = seq
        result.last_hash = stated

    def _checkpoint(self, record: dict[str, Any]) -> None:
        statement = record.get("checkpoint")
        if not isinstance(statement, dict) or not isinstance(statement.get("seq"), int):
            self.problem(self._next_seq(), "a checkpoint has no integer seq")
            return
        if statement.get("kind") != "checkpoint" or not crypto.signature_valid(
            self.public_key, statement, str(record.get("signature", ""))
        ):
            self.problem(statement["seq"], "a checkpoint's signature is not valid")
            return
        self.result.checkpoints += 1
        self.pending_checkpoints.append(statement)

    def _seal(self, record: dict[str, Any]) -> None:
        statement = record.get("seal")
        if (
            not isinstance(statement, dict)
            or statement.get("kind") != "export_seal"
            or not crypto.signature_valid(
                self.public_key, statement, str(record.get("signature", ""))
            )
        ):
            self.problem(self._next_seq(), "the export seal's signature is not valid")
            return
        self.seal = statement

    def finish(self) -> VerifyResult:
        result = self.result
        self._check_checkpoints()
        self._check_seal()
        if self.after_seal:
            self.problem(self._next_seq(), "records follow the export seal")
        result.first_bad_seq = min((p.seq for p in result.problems), default=None)
        result.problems.sort(key=lambda problem: problem.seq)
        result.sealed = self.seal is not None
        result.ok = not result.problems
        return result

    def _check_checkpoints(self) -> None:
        previous_good = (self.result.first_seq or 1) - 1
        for statement in sorted(self.pending_checkpoints, key=lambda s: s["seq"]):
            seq = statement["seq"]
            if seq not in self.hashes:
                continue  # outside the exported range
            if self.hashes[seq] != statement["hash"]:
                self.problem(
                    previous_good + 1,
                    f"history differs from the checkpoint signed at seq {seq}",
                )
                return
            previous_good = seq
            self.good_checkpoints.append(seq)

    def _check_seal(self) -> None:
        last = self.result.last_seq
        if self.seal is None:
            if self.require_seal:
                tail = (
                    (self.good_checkpoints[-1] + 1) if self.good_checkpoints else None
                )
                seq = tail or self.result.first_seq or 1
                self.problem(seq, "the export has no valid seal; its tail is unproven")
            return
        seal = self.seal
        if last is None:
            self.problem(seal["from_seq"], "the export has no entries")
            return
        if seal["to_seq"] > last:
            self.problem(
                last + 1,
                f"entries after seq {last} are missing (sealed to {seal['to_seq']})",
            )
        elif seal["to_seq"] < last:
            self.problem(seal["to_seq"] + 1, "entries follow the sealed range")
        elif seal["last_hash"] != self.hashes.get(last):
            self.problem(last, "the last entry's hash differs from the seal")
        if seal["from_seq"] != self.result.first_seq:
            self.problem(seal["from_seq"], "the first entries are missing")
        elif seal["first_prev_hash"] != self.first_prev_hash:
            self.problem(
                seal["from_seq"], "the first entry does not link to the sealed hash"
            )


def verify_lines(lines: Iterable[str], public_key: Ed25519PublicKey) -> VerifyResult:
    verifier = ChainVerifier(public_key)
    for line in lines:
        verifier.feed_line(line)
    return verifier.finish()
