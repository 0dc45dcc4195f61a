"""structlog, configured once per process.

JSON lines when ``LOG_FORMAT=json`` (containers), a readable console
otherwise. Every line carries ``service``; inside a worker the
:class:`LogContext` dependency binds ``request_id``, ``user_id`` and
``org_id`` from the worker's context data.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from nameko.extensions import DependencyProvider

from plumbing import config

# Keys whose values are never written, whatever a caller passes to a logger.
SECRET_KEYS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "token",
        "access_token",
        "refresh_token",
        "reset_code",
        "code",
        "secret",
        "authorization",
        "cookie",
    }
)

_configured = False


def _drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if key.lower() in SECRET_KEYS:
            event[key] = "[redacted]"
    return event


def configure(service: str, fmt: str | None = None, level: int = logging.INFO) -> None:
    """Set up structlog and the stdlib root logger for this process."""
    global _configured
    fmt = fmt or config.log_format()
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _configured = True


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger(**initial)


class LogContext(DependencyProvider):
    """Binds the request's ids to every log line a worker writes."""

    def __init__(self, service: str) -> None:
        self.service = service

    def setup(self) -> None:
        if not _configured:
            configure(self.service)

    def worker_setup(self, worker_ctx: Any) -> None:
        data = worker_ctx.context_data
        identity = data.get("identity") or {}
        if isinstance(identity, str):
            import json

            try:
                identity = json.loads(identity)
            except ValueError:
                identity = {}
        structlog.contextvars.bind_contextvars(
            service=self.service,
            request_id=data.get("request_id"),
            user_id=identity.get("user_id"),
            org_id=identity.get("org_id"),
        )

    def worker_teardown(self, worker_ctx: Any) -> None:
        structlog.contextvars.unbind_contextvars("request_id", "user_id", "org_id")

    def get_dependency(self, worker_ctx: Any) -> Any:
        return structlog.get_logger()
