"""Dependency providers of the auth service: the edges tests may replace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from plumbing import config


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(DependencyProvider):
    """Gives ``self.now()``: the current UTC time. Tests replace it to move
    time forward (session expiry, lockouts, code expiry)."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        return utc_now


class JwtSecret(DependencyProvider):
    """Gives ``self.jwt_secret``: container config ``JWT_SECRET``, else
    :func:`plumbing.config.jwt_secret`."""

    def setup(self) -> None:
        self.secret = self.container.config.get("JWT_SECRET") or config.jwt_secret()

    def get_dependency(self, worker_ctx: Any) -> str:
        return self.secret


class InvitationRetryTimer(Timer):
    """A timer whose interval is ``AUTH_INVITATION_RETRY_SECONDS`` (container
    config, then environment; 60), read when the service starts."""

    def setup(self) -> None:
        key = "AUTH_INVITATION_RETRY_SECONDS"
        self.interval = config.setting(key, float, 60.0, self.container.config)
        if self.interval <= 0:
            raise ValueError(f"{key} must be above 0")
        super().setup()


invitation_retry_timer = InvitationRetryTimer.decorator
