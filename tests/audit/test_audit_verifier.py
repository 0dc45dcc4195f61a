"""The stand-alone verifier, on a copy of a real export: a clean log passes;
a changed byte, a deleted entry, two swapped entries and a tail cut after the
last checkpoint each fail and name the first bad seq."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from audit_support import ROOT, sample_event
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.audit import crypto, export
from services.audit.chain import verify_lines
from services.audit.store import ChainStore

ENTRIES = 35  # checkpoints at 10, 20 and 30


@pytest.fixture
def exported(audit_db: str, key_file: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A 35-entry log exported as JSON Lines, and the public key file."""
    engine = create_engine(audit_db)
    key = crypto.load_signing_key(key_file)
    store = ChainStore(engine, key, checkpoint_every=10)
    for start in range(0, ENTRIES, 7):
        store.append([sample_event(n) for n in range(start, min(start + 7, ENTRIES))])
    chunks, cursor = [], None
    with Session(engine) as session:
        while True:
            page = export.export_page(
                session,
                key,
                {"school-a"},
                {
                    "from_seq": 1,
                    "to_seq": None,
                    "format": "jsonl",
                    "cursor": cursor,
                    "limit": 8,
                },
            )
            chunks.append(page["chunk"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    engine.dispose()
    path = tmp_path / "export.jsonl"
    path.write_text("".join(chunks))
    public = tmp_path / "public.pem"
    public.write_text(crypto.public_key_pem(key))
    return path, public


def _run_cli(path: Path, public: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "services.audit.verify",
            str(path),
            "--public-key",
            str(public),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def _entry_index(lines: list[str], seq: int) -> int:
    for index, line in enumerate(lines):
        record = json.loads(line)
        if record["record"] == "entry" and record["entry"]["seq"] == seq:
            return index
    raise AssertionError(f"no entry {seq}")


def _verify(lines: list[str], public: Path):
    return verify_lines(lines, crypto.load_public_key(public.read_bytes()))


def test_clean_export_verifies_with_the_cli(exported: tuple[Path, Path]) -> None:
    """The command-line verifier accepts an untouched export."""
    path, public = exported
    done = _run_cli(path, public)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"entries 1..{ENTRIES}" in done.stdout
    assert "3 checkpoint(s)" in done.stdout


def test_one_changed_byte_names_its_seq(exported: tuple[Path, Path]) -> None:
    """Changing one byte inside entry 17 fails at seq 17."""
    path, public = exported
    lines = _lines(path)
    index = _entry_index(lines, 17)
    lines[index] = lines[index].replace('"n":16', '"n":61', 1)
    assert '"n":61' in lines[index]
    path.write_text("".join(lines))
    done = _run_cli(path, public)
    assert done.returncode == 1
    assert "first bad seq 17" in done.stdout


def test_changed_hash_byte_names_its_seq(exported: tuple[Path, Path]) -> None:
    """Changing one byte of entry 5's stated hash fails at seq 5."""
    path, public = exported
    lines = _lines(path)
    index = _entry_index(lines, 5)
    record = json.loads(lines[index])
    digit = record["hash"][-1]
    lines[index] = lines[index].replace(
        record["hash"], record["hash"][:-1] + ("0" if digit != "0" else "1")
    )
    assert _verify(lines, public).first_bad_seq == 5


def test_deleted_entry_names_its_seq(exported: tuple[Path, Path]) -> None:
    """Removing entry 12 fails at seq 12."""
    path, public = exported
    lines = _lines(path)
    del lines[_entry_index(lines, 12)]
    result = _verify(lines, public)
    assert not result.ok
    assert result.first_bad_seq == 12


def test_swapped_entries_name_the_first(exported: tuple[Path, Path]) -> None:
    """Swapping entries 23 and 24 fails at seq 23."""
    path, public = exported
    lines = _lines(path)
    a, b = _entry_index(lines, 23), _entry_index(lines, 24)
    lines[a], lines[b] = lines[b], lines[a]
    path.write_text("".join(lines))
    done = _run_cli(path, public)
    assert done.returncode == 1
    assert "first bad seq 23" in done.stdout


def test_tail_cut_after_last_checkpoint_names_the_first_missing_seq(
    exported: tuple[Path, Path],
) -> None:
    """Cutting entries 31..35 (after the checkpoint at 30) fails at seq 31,
    whether the seal is kept or cut with them."""
    path, public = exported
    lines = _lines(path)
    cut = _entry_index(lines, 31)
    seal = lines[-1]
    assert json.loads(seal)["record"] == "seal"
    assert _verify(lines[:cut] + [seal], public).first_bad_seq == 31
    assert _verify(lines[:cut], public).first_bad_seq == 31


def test_rewritten_history_fails_at_the_checkpoint(exported: tuple[Path, Path]) -> None:
    """Re-hashing the chain from entry 15 on (a consistent forgery) is caught by
    the signed checkpoint at 20: the first bad seq is after the checkpoint at 10."""
    from services.audit.chain import entry_hash

    path, public = exported
    lines = _lines(path)
    prev = None
    for index, line in enumerate(lines):
        record = json.loads(line)
        if record["record"] != "entry" or record["entry"]["seq"] < 15:
            continue
        entry = record["entry"]
        if entry["seq"] == 15:
            entry["event"]["data"]["n"] = 999
        if prev is not None:
            entry["prev_hash"] = prev
        record["hash"] = prev = entry_hash(entry)
        lines[index] = json.dumps(record) + "\n"
    result = _verify(lines, public)
    assert not result.ok
    assert result.first_bad_seq == 11


def test_a_foreign_key_fails_every_signature(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    """An export checked against another public key does not verify."""
    path, _ = exported
    other = crypto.generate_signing_key(tmp_path / "other.pem")
    public = tmp_path / "other.pub"
    public.write_text(crypto.public_key_pem(other))
    assert not _verify(_lines(path), public).ok
