"""Verify an audit export with nothing but the file and the public key.

    python -m services.audit.verify export.jsonl --public-key key.pem

Exit status 0 when the export verifies; 1 with the first bad sequence number
and the reasons otherwise; 2 when the files cannot be read. The checks are
those of ``docs/audit-log-format.md`` (section "Verifying an export").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.audit import crypto
from services.audit.chain import VerifyResult, verify_lines


def verify_file(path: Path, public_key_path: Path) -> VerifyResult:
    public = crypto.load_public_key(public_key_path.read_bytes())
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        return verify_lines(handle, public)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.audit.verify", description=__doc__.splitlines()[0]
    )
    parser.add_argument("export", type=Path, help="a JSON Lines export")
    parser.add_argument("--public-key", type=Path, required=True, help="PEM file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        result = verify_file(args.export, args.public_key)
    except (OSError, ValueError) as error:
        print(f"cannot verify: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    elif result.ok:
        print(
            f"OK: entries {result.first_seq}..{result.last_seq} ({result.entries}), "
            f"{result.checkpoints} checkpoint(s), sealed, last hash {result.last_hash}"
        )
    else:
        print(f"FAILED: first bad seq {result.first_bad_seq}")
        for problem in result.problems[:20]:
            print(f"  seq {problem.seq}: {problem.reason}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
