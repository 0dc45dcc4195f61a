"""Dependency providers of the training service: the edges tests may replace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nameko.extensions import DependencyProvider


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(DependencyProvider):
    """Gives ``self.now()``: the current UTC time. Tests replace it to move
    time past deadlines and session starts."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        return utc_now
