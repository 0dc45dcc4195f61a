"""Dependency providers of the training service: the edges tests may replace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from nameko.exceptions import RemoteError
from nameko.extensions import DependencyProvider

from plumbing.errors import PlatformError

log = structlog.get_logger()


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(DependencyProvider):
    """Gives ``self.now()``: the current UTC time. Tests replace it to move
    time past deadlines and session starts."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        return utc_now


class AuthFallback:
    """The auth service as a :class:`services.training.directory.AuthLookup`:
    ``get_user`` and ``get_organisation`` over RPC under the caller's
    identity, None for any refusal or fault (the copy then stays as it is)."""

    def __init__(self, auth_rpc: Any) -> None:
        self.auth_rpc = auth_rpc

    def _ask(self, method: str, object_id: str) -> dict[str, Any] | None:
        try:
            return getattr(self.auth_rpc, method)(object_id)
        except (PlatformError, RemoteError) as error:
            log.warning(
                "auth_lookup_failed",
                method=method,
                code=getattr(error, "code", type(error).__name__),
            )
            return None

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        return self._ask("get_user", user_id)

    def get_organisation(self, org_id: str) -> dict[str, Any] | None:
        return self._ask("get_organisation", org_id)
