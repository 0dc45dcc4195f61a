"""RFC 9457 problem documents: the one shape of every error the gateway answers.

A problem carries ``type``, ``title``, ``status``, ``detail``, a stable
machine-readable ``code``, field ``errors`` where there are some, and the
``request_id`` so that a user's report can be found in the logs.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from plumbing.errors import PlatformError

PROBLEM_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:cpd:problem:"


class GatewayError(PlatformError):
    """An error the gateway itself answers with, without asking a service."""


class MalformedRequest(GatewayError):
    code = "MALFORMED_REQUEST"
    status = 400
    title = "The request could not be read"


class UnsupportedMediaType(GatewayError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415
    title = "The request body must be JSON"


class PayloadTooLarge(GatewayError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413
    title = "The request body is too large"


class CsrfCheckFailed(GatewayError):
    code = "CSRF_CHECK_FAILED"
    status = 403
    title = "Cookie-authenticated changes need the X-Requested-With header"


class UpstreamError(GatewayError):
    code = "UPSTREAM_ERROR"
    status = 502
    title = "A service failed to answer properly"


class GatewayFault(GatewayError):
    """A fault inside the gateway; answered 502, never 500, and logged."""

    code = "GATEWAY_ERROR"
    status = 502
    title = "The gateway could not complete the request"


# The codes the gateway uses for werkzeug's own routing answers.
_HTTP_CODES = {
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    400: "MALFORMED_REQUEST",
}


def problem_body(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    errors: dict[str, Any] | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code.lower().replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
        "errors": errors or {},
        "request_id": request_id,
    }
    body.update(extra)
    return body


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    errors: dict[str, Any] | None = None,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = problem_body(status, code, title, detail, errors, request_id, **extra)
    response = Response(
        json.dumps(body, default=str), status=status, mimetype=PROBLEM_TYPE
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="cpd"'
    return response


def from_platform_error(error: PlatformError, request_id: str | None) -> Response:
    """The problem for an error a service (or the gateway) raised on purpose."""
    status = error.status if 400 <= error.status <= 599 else 502
    if status == 500:
        # A service reporting its own internal fault: it is upstream of us.
        status = 502
    return problem_response(
        status,
        error.code,
        error.title,
        error.detail,
        errors=error.fields,
        request_id=request_id,
    )


def from_http_exception(error: HTTPException, request_id: str | None) -> Response:
    """The problem for werkzeug's routing answers (unknown path, wrong method)."""
    status = error.code or 400
    code = _HTTP_CODES.get(status, "MALFORMED_REQUEST")
    headers = {}
    if status == 405:
        allowed = getattr(error, "valid_methods", None) or []
        headers["Allow"] = ", ".join(allowed)
    title = error.name if status in _HTTP_CODES else "The request could not be read"
    if status not in _HTTP_CODES:
        status = 400
    return problem_response(
        status, code, title, error.description, request_id=request_id, headers=headers
    )


def describe(error: BaseException) -> str:
    """A short, secret-free name for an error, for log lines."""
    code = getattr(error, "code", None)
    return str(code) if isinstance(code, str) else type(error).__name__
