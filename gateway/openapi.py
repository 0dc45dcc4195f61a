"""The OpenAPI 3 document, built from the routes themselves.

Every :func:`gateway.http.route` of the service is found on its class; its
method, path, request and query schemas, answer schema, success status and
docstring become one operation. Schemas come from :mod:`gateway.schemas`
through apispec's MarshmallowPlugin; every error is the problem schema.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

from gateway import schemas
from gateway.dependencies import ACCESS_COOKIE, CSRF_HEADER
from gateway.http import ApiRoute
from gateway.problems import PROBLEM_TYPE

API_TITLE = "CPD platform API"
API_VERSION = "1.0.0"
_PATH_VALUE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

DESCRIPTION = f"""\
The HTTP face of the platform. Errors are RFC 9457 problem documents
(`{PROBLEM_TYPE}`) with a stable `code`, field `errors` and the `request_id`.

**Authentication**: `Authorization: Bearer <access token>`, or the
`{ACCESS_COOKIE}` cookie that login and refresh set (`HttpOnly; Secure;
SameSite=Strict`; the refresh cookie is limited to `/api/v1/auth`). Send
`"session": "cookie"` to login or refresh to keep the tokens out of the body.

**CSRF**: a cookie-authenticated `POST`, `PUT`, `PATCH` or `DELETE` (and a
refresh that uses the refresh cookie) must carry the header `{CSRF_HEADER}`
(any value, e.g. `XMLHttpRequest`); without it the answer is 403
`CSRF_CHECK_FAILED`. Browsers cannot add that header to a cross-site request
without a CORS preflight, which the gateway never grants. Bearer calls need
no such header.

**Request ids**: send `X-Request-ID` (at most 128 of `A-Z a-z 0-9 . _ -`) or
get a fresh UUID; it is returned on every answer and follows the request
through every service.

**Limits**: bodies over 1 MB are refused with 413; list pages take `offset`
and `limit` (at most 100). User import takes JSON `{{"org_id", "csv"}}` with
the CSV text in `csv`; a `text/csv` body is refused with 415.
"""


def _schema_name(cls: type[Schema]) -> str:
    name = cls.__name__
    return name[: -len("Schema")] if name.endswith("Schema") else name


def _routes(service_cls: type) -> list[tuple[str, Any, ApiRoute]]:
    found = []
    for name, func in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(func, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, ApiRoute):
                found.append((name, func, entrypoint))
    return sorted(found, key=lambda item: (item[2].url, item[2].method))


def openapi_path(url: str) -> str:
    """``/api/v1/users/<user_id>`` -> ``/api/v1/users/{user_id}``."""
    return _PATH_VALUE.sub(r"{\1}", url)


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_TYPE: {"schema": "Problem"}},
    }


def _operation(name: str, func: Any, route: ApiRoute) -> dict[str, Any]:
    doc = inspect.getdoc(func) or name
    summary, _, description = doc.partition("\n")
    success: dict[str, Any] = {"description": "Success"}
    if route.response is not None:
        success["content"] = {route.content_type: {"schema": route.response}}
    operation: dict[str, Any] = {
        "operationId": name,
        "summary": summary.strip(),
        "description": description.strip(),
        "tags": [route.tag],
        "responses": {
            str(route.status): success,
            "400": _problem("Malformed request"),
            "default": _problem("Any other error"),
        },
        "security": [{"bearer": []}, {"cookie": []}] if route.auth else [],
    }
    params = [
        {"in": "path", "name": value, "required": True, "schema": {"type": "string"}}
        for value in _PATH_VALUE.findall(route.url)
    ]
    if route.query is not None:
        params.append({"in": "query", "schema": route.query})
    if params:
        operation["parameters"] = params
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body}},
        }
        operation["responses"]["413"] = _problem("Body over 1 MB")
        operation["responses"]["415"] = _problem("Body not JSON")
    if route.body is not None or route.query is not None:
        operation["responses"]["422"] = _problem("Field errors")
    if route.auth:
        operation["responses"]["401"] = _problem("Missing, expired or revoked token")
    return operation


def build_spec(service_cls: type) -> dict[str, Any]:
    """The OpenAPI document of every route of ``service_cls``."""
    spec = APISpec(
        title=API_TITLE,
        version=API_VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION},
    )
    spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    spec.components.security_scheme(
        "cookie", {"type": "apiKey", "in": "cookie", "name": ACCESS_COOKIE}
    )
    for _, cls in inspect.getmembers(schemas, inspect.isclass):
        if (
            issubclass(cls, Schema)
            and cls.__module__ == schemas.__name__
            and cls is not schemas.StrictSchema
            and _schema_name(cls) not in spec.components.schemas
        ):
            spec.components.schema(_schema_name(cls), schema=cls)
    paths: dict[str, dict[str, Any]] = {}
    for name, func, route in _routes(service_cls):
        for method in route.method.split(","):
            paths.setdefault(openapi_path(route.url), {})[method.strip().lower()] = (
                _operation(name, func, route)
            )
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()
