"""Small summaries of what a load run measured: rates and latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (``fraction`` in 0..1).

    Nearest rank never interpolates, so p99 of 1,000 samples is the 990th
    slowest value actually observed.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Throughput:
    """How many operations finished in how long."""

    operations: int
    errors: int
    seconds: float
    statuses: dict[str, int] = field(default_factory=dict)
    # CPU seconds used meanwhile, per process (see bench.cpu); may be empty.
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds > 0 else 0.0

    def cpu_ms_per_operation(self) -> dict[str, float]:
        """CPU milliseconds per completed operation, per process."""
        if not self.operations:
            return {}
        skip = {"machine_total", "wall"}
        return {
            name: round(seconds * 1000 / self.operations, 3)
            for name, seconds in self.cpu.items()
            if name not in skip
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "rate": round(self.rate, 2),
            "cpu_ms_per_operation": self.cpu_ms_per_operation(),
        }


@dataclass
class Latency:
    """Latency of an open-loop run, measured from each request's scheduled time."""

    target_rate: float
    scheduled: int
    completed: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_samples(
        cls,
        target_rate: float,
        scheduled: int,
        samples_s: Sequence[float],
        errors: int,
        seconds: float,
        statuses: dict[str, int],
    ) -> Latency:
        return cls(
            target_rate=target_rate,
            scheduled=scheduled,
            completed=len(samples_s),
            errors=errors,
            seconds=seconds,
            p50_ms=percentile(samples_s, 0.50) * 1000,
            p99_ms=percentile(samples_s, 0.99) * 1000,
            max_ms=max(samples_s, default=math.nan) * 1000,
            statuses=statuses,
        )

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("p50_ms", "p99_ms", "max_ms"):
            data[key] = round(data[key], 2)
        data["achieved_rate"] = round(self.achieved_rate, 2)
        return data
