"""Where the CPU goes during a phase: seconds used by each process of the
platform (read from ``/proc``), by the broker and the database, and by the
whole machine, so a figure can be split into per-request costs.

RabbitMQ and PostgreSQL are shared with anything else on the machine, so
their share is an upper bound for the bench's own traffic.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
SHARED = {"rabbitmq": ("beam.smp",), "postgres": ("postgres",)}


def _process_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    return (int(fields[11]) + int(fields[12])) / TICKS


def _pids_named(names: tuple[str, ...]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() in names:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _machine_seconds() -> tuple[float, float]:
    """Busy and total CPU seconds of the machine since boot (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / TICKS, total / TICKS


def snapshot(pids: dict[str, int]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each named process and of each shared process."""
    taken = {name: {pid: _process_seconds(pid)} for name, pid in pids.items()}
    for name, comms in SHARED.items():
        taken[name] = {pid: _process_seconds(pid) for pid in _pids_named(comms)}
    busy, total = _machine_seconds()
    taken["machine_busy"], taken["machine_total"] = {0: busy}, {0: total}
    return taken


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    # Processes that started meanwhile count from zero; those that ended are
    # lost, which only under-counts the shared servers.
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


@contextmanager
def accounting(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """CPU seconds each process used while the body ran, filled in on exit;
    ``others`` is what the rest of the machine used meanwhile."""
    used: dict[str, float] = {}
    before, started = snapshot(pids), time.perf_counter()
    try:
        yield used
    finally:
        after, elapsed = snapshot(pids), time.perf_counter() - started
        for name in before:
            used[name] = round(_delta(before[name], after[name]), 3)
        own = sum(used[name] for name in [*pids, *SHARED])
        used["others"] = round(max(0.0, used["machine_busy"] - own), 3)
        used["wall"] = round(elapsed, 3)
