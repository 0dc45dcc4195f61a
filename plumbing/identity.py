"""The caller's identity, which travels with every RPC and event.

The gateway verifies the access token and puts the identity in the worker's
context data under ``identity``; nameko carries context data as message
headers, so it follows the request through every service. Each RPC method is
wrapped by :func:`authenticated` (refuses calls with no identity) or marked
:func:`anonymous` (login, refresh, password reset), and a test checks that
every RPC method of every service is one or the other.

``scopes`` maps each role the user holds to the organisation ids it covers,
worked out by the auth service when the token is issued (a trust-level role
covers every school of the trust).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from nameko.extensions import DependencyProvider

from plumbing.errors import Forbidden, Unauthenticated

CONTEXT_KEY = "identity"
REQUEST_ID_KEY = "request_id"

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")
# The mark of an RPC method's access rule, which a test checks every method has.
ACCESS_MARK = "__cpd_access__"


@dataclass(frozen=True)
class Identity:
    user_id: str
    org_id: str
    scopes: dict[str, list[str]] = field(default_factory=dict)
    session_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    service: str | None = None

    @property
    def roles(self) -> set[str]:
        return set(self.scopes)

    def has_role(self, role: str, org_id: str | None = None) -> bool:
        """True if the user holds ``role`` and, given an org, it covers that org."""
        orgs = self.scopes.get(role)
        if orgs is None:
            return False
        return org_id is None or org_id in orgs

    def any_role(self, roles: Iterable[str], org_id: str | None = None) -> bool:
        return any(self.has_role(role, org_id) for role in roles)

    def orgs_for(self, roles: Iterable[str]) -> set[str]:
        """Every organisation in which the user holds one of ``roles``."""
        found: set[str] = set()
        for role in roles:
            found.update(self.scopes.get(role, ()))
        return found

    def to_json(self) -> str:
        return json.dumps(
            {
                "user_id": self.user_id,
                "org_id": self.org_id,
                "scopes": self.scopes,
                "session_id": self.session_id,
                "ip": self.ip,
                "user_agent": self.user_agent,
                "service": self.service,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_context(cls, context_data: dict[str, Any]) -> Identity | None:
        raw = context_data.get(CONTEXT_KEY)
        if not raw:
            return None
        try:
            data = json.loads(raw) if isinstance(raw, str) else dict(raw)
            return cls(
                user_id=str(data["user_id"]),
                org_id=str(data["org_id"]),
                scopes={k: list(v) for k, v in (data.get("scopes") or {}).items()},
                session_id=data.get("session_id"),
                ip=data.get("ip"),
                user_agent=data.get("user_agent"),
                service=data.get("service"),
            )
        except (KeyError, TypeError, ValueError):
            return None


def service_identity(service: str) -> Identity:
    """The identity a service calls another with on its own account."""
    return Identity(user_id=f"service:{service}", org_id="", service=service)


def require_service(
    db: Any, caller: Identity, services: Iterable[str], action: str
) -> None:
    """Refuse (``authz.denied``, then Forbidden) a caller that is not one of
    ``services`` calling on its own account."""
    if (
        caller.service in set(services)
        and caller.user_id == f"service:{caller.service}"
    ):
        return
    deny(db, caller, subject_type="service", subject_id=action, action=action)
    raise Forbidden(f"Only the {', '.join(sorted(services))} service may call this")


def authenticated(
    func: Callable[Concatenate[Any, Identity, P], R],
) -> Callable[Concatenate[Any, P], R]:
    """Refuse the call unless it carries an identity; pass it as ``caller``.

    Use under ``@rpc``: ``def get_user(self, caller, user_id)``.
    """

    @functools.wraps(func)
    def wrapper(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        caller = getattr(self, "caller", None)
        if caller is None:
            raise Unauthenticated("This call needs an authenticated caller")
        return func(self, caller, *args, **kwargs)

    setattr(wrapper, ACCESS_MARK, "authenticated")
    return wrapper


def anonymous(func: F) -> F:
    """Mark an RPC method that may be called with no identity (e.g. login)."""
    setattr(func, ACCESS_MARK, "anonymous")
    return func


class CallerIdentity(DependencyProvider):
    """Gives each worker ``self.caller``: the Identity from its context data."""

    def get_dependency(self, worker_ctx: Any) -> Identity | None:
        return Identity.from_context(worker_ctx.context_data)


def deny(
    db: Any,
    caller: Identity,
    *,
    subject_type: str,
    subject_id: Any,
    action: str,
    org_id: str | None = None,
) -> None:
    """Record an ``authz.denied`` event and commit it, before the caller raises.

    The caller then raises NotFound (another organisation's object) or
    Forbidden (a known object the caller may not act on).
    """
    db.rollback()
    db.emit(
        "authz.denied",
        subject_type=subject_type,
        subject_id=str(subject_id),
        org_id=org_id or caller.org_id,
        data={"action": action, "caller_org_id": caller.org_id},
    )
    db.commit()
