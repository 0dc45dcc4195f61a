"""Browser sessions in cookies, and what the gateway knows about scopes.

Login and refresh set two cookies, both ``HttpOnly; Secure; SameSite=Strict``:
the access token (path ``/``, for every API call) and the refresh token
(path ``/api/v1/auth``, so that it only ever travels to login, refresh and
logout). API clients take the tokens from the JSON body instead; a browser
that asks with ``"session": "cookie"`` gets a body without them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import structlog
from werkzeug.wrappers import Response

from gateway.dependencies import ACCESS_COOKIE, REFRESH_COOKIE
from gateway.http import JSON_TYPE
from plumbing.envelope import validate_envelope
from plumbing.errors import PlatformError
from plumbing.identity import Identity

log = structlog.get_logger()

REFRESH_COOKIE_PATH = "/api/v1/auth"
# The refresh token's absolute limit: 12 hours after login.
REFRESH_COOKIE_MAX_AGE = 12 * 3600
TOKEN_FIELDS = ("access_token", "refresh_token")


def session_response(result: dict[str, Any], mode: str) -> Response:
    """The answer to login or refresh: cookies always, tokens in the body
    unless the client asked for cookies only."""
    body = dict(result)
    if mode == "cookie":
        for field in TOKEN_FIELDS:
            body.pop(field, None)
    response = Response(json.dumps(body, default=str), status=200, mimetype=JSON_TYPE)
    expires_in = result.get("expires_in")
    max_age = int(expires_in) if isinstance(expires_in, int | float) else 900
    if result.get("access_token"):
        _set(response, ACCESS_COOKIE, result["access_token"], "/", max_age)
    if result.get("refresh_token"):
        _set(
            response,
            REFRESH_COOKIE,
            result["refresh_token"],
            REFRESH_COOKIE_PATH,
            REFRESH_COOKIE_MAX_AGE,
        )
    response.headers["Cache-Control"] = "no-store"
    return response


def clear_session_cookies(response: Response) -> Response:
    _set(response, ACCESS_COOKIE, "", "/", 0)
    _set(response, REFRESH_COOKIE, "", REFRESH_COOKIE_PATH, 0)
    return response


def _set(response: Response, name: str, value: str, path: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=True,
        httponly=True,
        samesite="Strict",
    )


def in_scope(caller: Identity, org_id: str) -> bool:
    """True if any of the caller's roles covers the organisation (or it is
    their own). Outside that, no service would show the caller anything."""
    if org_id == caller.org_id:
        return True
    return any(org_id in orgs for orgs in caller.scopes.values())


def revoked_session_ids(payload: Any, key: str) -> list[str]:
    """Session ids from an ``auth.logged_out`` (``data.session_id``) or
    ``auth.sessions_revoked`` (``data.session_ids``) envelope; none if the
    envelope is not valid."""
    try:
        envelope = validate_envelope(payload)
    except PlatformError as error:
        log.warning("invalid_event_envelope", errors=error.fields)
        return []
    value = envelope.get("data", {}).get(key)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in value if item]
    return []


def session_ids_of(result: Any) -> Iterable[str]:
    """The ids answered by ``list_revoked_sessions``: a list, or a dict with
    ``session_ids`` (or ``items``)."""
    if isinstance(result, dict):
        result = result.get("session_ids", result.get("items", []))
    if not isinstance(result, list):
        return []
    return [str(item) for item in result if item]
