"""Bring every built service's database up to date: ``python -m scripts.migrate``."""

from __future__ import annotations

import sys

from plumbing import config, migrations

# Services whose migrations exist; the others join as their issues are built.
BUILT_SERVICES = tuple(
    name
    for name in config.SERVICES
    if (migrations.SERVICES_DIR / name / "migrations" / "env.py").exists()
)


def main() -> int:
    for service in BUILT_SERVICES:
        migrations.upgrade(service)
        print(f"migrated {service}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
