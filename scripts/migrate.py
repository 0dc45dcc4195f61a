"""Set-up step before the services start: ``python -m scripts.migrate``.

Brings every built service's database up to date, then declares every
durable event queue on RabbitMQ (see :mod:`scripts.declare_queues`).
"""

from __future__ import annotations

import sys

from plumbing import config, migrations
from scripts import declare_queues

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
    queues = declare_queues.declare_all()
    print(f"declared the event exchanges and {len(queues)} event handler queues")
    return 0


if __name__ == "__main__":
    sys.exit(main())
