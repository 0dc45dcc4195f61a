"""Access tokens: short-lived signed JWTs that the gateway verifies without
calling the auth service. Issued by auth, read by every gateway instance;
both sides hold ``JWT_SECRET``.

Claims: ``sub`` (user id), ``org`` (the user's organisation), ``sid`` (the
session, so that a revoked session's tokens can be refused), ``scopes`` (role
to the organisation ids it covers), ``iat``, ``exp``, ``jti``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from plumbing.errors import Unauthenticated

ALGORITHM = "HS256"
ACCESS_TOKEN_TTL = timedelta(minutes=15)
ISSUER = "cpd-auth"


def issue_access_token(
    secret: str,
    *,
    user_id: str,
    org_id: str,
    session_id: str,
    scopes: dict[str, list[str]],
    now: datetime | None = None,
) -> tuple[str, datetime]:
    """Sign an access token; return it and its expiry."""
    now = now or datetime.now(UTC)
    expires = now + ACCESS_TOKEN_TTL
    claims = {
        "iss": ISSUER,
        "sub": user_id,
        "org": org_id,
        "sid": session_id,
        "scopes": scopes,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), expires


def verify_access_token(secret: str, token: str) -> dict[str, Any]:
    """The claims of a valid token; Unauthenticated if it is bad or expired."""
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "org"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated(
            "The access token has expired", code="TOKEN_EXPIRED"
        ) from None
    except jwt.InvalidTokenError:
        raise Unauthenticated(
            "The access token is not valid", code="TOKEN_INVALID"
        ) from None
