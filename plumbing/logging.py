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

REDACTED = "[redacted]"
_HANDLER_NAME = "plumbing"

_configured = False


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in SECRET_KEYS else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):  # not tuples: exc_info is one
        return [_redact(item) for item in value]
    return value


def _drop_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Redact secret keys at any depth (``data={"password": ...}`` too)."""
    return _redact(event)


def _add_service(service: str) -> Any:
    # A processor, not a context variable: each green thread (every nameko
    # worker, the outbox relay) starts with an empty context, so a value
    # bound once at start-up would be missing from their lines.
    def add_service(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("service", service)
        return event

    return add_service


def configure(service: str, fmt: str | None = None, level: int = logging.INFO) -> None:
    """Set up structlog and the stdlib root logger for this process."""
    global _configured
    fmt = fmt or config.log_format()
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    shared = [
        structlog.contextvars.merge_contextvars,
        _add_service(service),
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    _route_stdlib_logging(shared, renderer)
    _configured = True


def _route_stdlib_logging(shared: list[Any], renderer: Any) -> None:
    """Render stdlib records (nameko's, kombu's) like structlog's own lines, so
    a container's output is JSON lines throughout, with ``service``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)


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
