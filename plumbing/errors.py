"""The error base every service's errors derive from.

An error has a stable machine-readable ``code`` and the HTTP ``status`` the
gateway answers with. Errors cross nameko RPC as ``RemoteError`` whose value
is the JSON produced by ``str(error)``; :func:`from_remote` turns it back.
"""

from __future__ import annotations

import json
from typing import Any


class PlatformError(Exception):
    """Base of every expected error. Subclasses set ``code`` and ``status``."""

    code = "INTERNAL_ERROR"
    status = 500
    title = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        fields: dict[str, Any] | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(detail, fields, code, status)
        self.detail = detail or self.title
        self.fields = fields or {}
        if code:
            self.code = code
        if status:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "code": self.code,
            "status": self.status,
            "title": self.title,
            "detail": self.detail,
        }
        if self.fields:
            data["fields"] = self.fields
        return data

    def __str__(self) -> str:
        return json.dumps(self.to_dict(), default=str)


class ValidationFailed(PlatformError):
    code = "VALIDATION_FAILED"
    status = 422
    title = "The request is not valid"


class NotFound(PlatformError):
    """Also answered for objects outside the caller's organisation."""

    code = "NOT_FOUND"
    status = 404
    title = "Not found"


class Forbidden(PlatformError):
    code = "FORBIDDEN"
    status = 403
    title = "Not allowed"


class Unauthenticated(PlatformError):
    code = "UNAUTHENTICATED"
    status = 401
    title = "Authentication required"


class Conflict(PlatformError):
    code = "CONFLICT"
    status = 409
    title = "Conflict"


class TooManyRequests(PlatformError):
    code = "TOO_MANY_REQUESTS"
    status = 429
    title = "Too many requests"


class ServiceUnavailable(PlatformError):
    code = "SERVICE_UNAVAILABLE"
    status = 503
    title = "A service is unavailable"


class ServiceTimeout(PlatformError):
    code = "SERVICE_TIMEOUT"
    status = 504
    title = "A service did not answer in time"


_BY_CODE: dict[str, type[PlatformError]] = {}


def _register(*classes: type[PlatformError]) -> None:
    for cls in classes:
        _BY_CODE[cls.code] = cls


_register(
    ValidationFailed,
    NotFound,
    Forbidden,
    Unauthenticated,
    Conflict,
    TooManyRequests,
    ServiceUnavailable,
    ServiceTimeout,
)


def from_remote(value: str) -> PlatformError | None:
    """Rebuild a PlatformError from a ``RemoteError.value``; None if it is not one."""
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or "code" not in data or "status" not in data:
        return None
    cls = _BY_CODE.get(data["code"], PlatformError)
    error = cls(
        data.get("detail"), data.get("fields"), code=data["code"], status=data["status"]
    )
    error.title = data.get("title", error.title)
    return error
