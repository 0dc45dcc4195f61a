"""A fake ``auth`` service for the gateway tests.

Same RPC names, argument order and answer shapes as the contract in
docs/architecture.md, with real signed access tokens, so the gateway can be
tested apart from the real auth service. Every call is recorded with the
request id and identity it arrived with.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from nameko.extensions import DependencyProvider

from plumbing.errors import NotFound, PlatformError, ValidationFailed
from plumbing.identity import CallerIdentity, Identity, anonymous, authenticated
from plumbing.rpc import rpc
from plumbing.tokens import issue_access_token

SECRET = "gateway-tests-secret-" + "x" * 32
TRUST = "org-trust"
SCHOOL = "org-school"
OTHER_SCHOOL = "org-elsewhere"
USER_ID = "user-1"
PASSWORD = "correct horse battery staple"
PRE_REVOKED = "session-revoked-before-start"

USER = {
    "id": USER_ID,
    "org_id": SCHOOL,
    "username": "ada",
    "given_name": "Ada",
    "family_name": "Lovelace",
    "email": "ada@school.example",
    "active": True,
    "line_manager_id": None,
    "roles": [{"role": "school_admin", "org_id": SCHOOL}],
}
SCOPES = {"school_admin": [SCHOOL], "staff": [SCHOOL]}

# (method, args, context) of every call the fake received, in order.
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []


def reset_fake_auth() -> None:
    CALLS.clear()


def make_token(
    session_id: str | None = None,
    *,
    scopes: dict[str, list[str]] | None = None,
    now: datetime | None = None,
    secret: str = SECRET,
) -> str:
    """A real access token for the fake user."""
    token, _ = issue_access_token(
        secret,
        user_id=USER_ID,
        org_id=SCHOOL,
        session_id=session_id or uuid.uuid4().hex,
        scopes=SCOPES if scopes is None else scopes,
        now=now,
    )
    return token


def calls_named(name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    return [(args, context) for method, args, context in CALLS if method == name]


class ContextData(DependencyProvider):
    def get_dependency(self, worker_ctx: Any) -> dict[str, Any]:
        return worker_ctx.context_data


class FakeAuthService:
    """Answers like the auth service of the contract, from fixed data."""

    name = "auth"

    caller = CallerIdentity()
    context = ContextData()

    def _record(self, method: str, *args: Any) -> None:
        identity = Identity.from_context(self.context)
        CALLS.append(
            (
                method,
                args,
                {
                    "request_id": self.context.get("request_id"),
                    "identity": json.loads(self.context["identity"])
                    if self.context.get("identity")
                    else None,
                    "user_id": identity.user_id if identity else None,
                },
            )
        )

    def _tokens(self) -> dict[str, Any]:
        session_id = uuid.uuid4().hex
        return {
            "access_token": make_token(session_id),
            "refresh_token": "refresh-" + session_id,
            "token_type": "Bearer",
            "expires_in": 900,
            "user": USER,
        }

    @rpc
    @anonymous
    def ping(self) -> dict[str, str]:
        return {"status": "ok"}

    @rpc
    @anonymous
    def login(
        self, username: str, password: str, ip: str | None, user_agent: str | None
    ) -> dict[str, Any]:
        self._record("login", username, "[password]", ip, user_agent)
        if username != "ada" or password != PASSWORD:
            raise PlatformError(
                "The username or password is not correct",
                code="INVALID_CREDENTIALS",
                status=401,
            )
        return self._tokens()

    @rpc
    @anonymous
    def refresh(
        self, refresh_token: str, ip: str | None, user_agent: str | None
    ) -> dict[str, Any]:
        self._record("refresh", ip, user_agent)
        if not refresh_token.startswith("refresh-"):
            raise PlatformError(code="INVALID_REFRESH_TOKEN", status=401)
        return self._tokens()

    @rpc
    @anonymous
    def request_password_reset(
        self, login: str, ip: str | None, user_agent: str | None
    ) -> dict[str, Any]:
        self._record("request_password_reset", login)
        return {}

    @rpc
    @anonymous
    def reset_password(
        self, code: str, new_password: str, ip: str | None, user_agent: str | None
    ) -> dict[str, Any]:
        self._record("reset_password")
        return {}

    @rpc
    @authenticated
    def list_revoked_sessions(self, caller: Identity, since: str) -> dict[str, Any]:
        self._record("list_revoked_sessions", since)
        if caller.service != "gateway":
            raise PlatformError(code="FORBIDDEN", status=403)
        return {"session_ids": [PRE_REVOKED]}

    @rpc
    @authenticated
    def logout(self, caller: Identity) -> dict[str, Any]:
        self._record("logout")
        return {}

    @rpc
    @authenticated
    def change_password(
        self, caller: Identity, current_password: str, new_password: str
    ) -> dict[str, Any]:
        self._record("change_password")
        return {}

    @rpc
    @authenticated
    def get_current_user(self, caller: Identity) -> dict[str, Any]:
        self._record("get_current_user")
        return dict(USER, id=caller.user_id)

    @rpc
    @authenticated
    def list_organisations(self, caller: Identity) -> dict[str, Any]:
        self._record("list_organisations")
        return {"items": [{"id": SCHOOL, "kind": "school", "name": "School"}]}

    @rpc
    @authenticated
    def get_organisation(self, caller: Identity, org_id: str) -> dict[str, Any]:
        self._record("get_organisation", org_id)
        if org_id != SCHOOL:
            raise NotFound()
        return {"id": SCHOOL, "kind": "school", "name": "School"}

    @rpc
    @authenticated
    def list_users(
        self,
        caller: Identity,
        org_id: str | None = None,
        query: str | None = None,
        active: bool | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> dict[str, Any]:
        self._record("list_users", org_id, query, active, offset, limit)
        return {"items": [USER], "total": 1, "offset": offset, "limit": limit}

    @rpc
    @authenticated
    def get_user(self, caller: Identity, user_id: str) -> dict[str, Any]:
        self._record("get_user", user_id)
        if user_id == "boom":
            raise RuntimeError("an unexpected fault in auth")
        if user_id == "slow":
            time.sleep(30)
        if user_id != USER_ID:
            raise NotFound()
        return USER

    @rpc
    @authenticated
    def create_user(self, caller: Identity, data: dict[str, Any]) -> dict[str, Any]:
        self._record("create_user", data)
        if data["username"] == "taken":
            raise PlatformError(
                "The username is already in use", code="USERNAME_TAKEN", status=409
            )
        return dict(USER, **{k: v for k, v in data.items() if k != "password"})

    @rpc
    @authenticated
    def update_user(
        self, caller: Identity, user_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        self._record("update_user", user_id, data)
        return dict(USER, **data)

    @rpc
    @authenticated
    def deactivate_user(self, caller: Identity, user_id: str) -> dict[str, Any]:
        self._record("deactivate_user", user_id)
        return dict(USER, active=False)

    @rpc
    @authenticated
    def reactivate_user(self, caller: Identity, user_id: str) -> dict[str, Any]:
        self._record("reactivate_user", user_id)
        return dict(USER, active=True)

    @rpc
    @authenticated
    def import_users(
        self, caller: Identity, org_id: str, csv_text: str
    ) -> dict[str, Any]:
        self._record("import_users", org_id, csv_text)
        if "bad" in csv_text:
            raise ValidationFailed(
                "The import has errors; nothing was imported",
                {"row 2": {"email": ["Not a valid email address."]}},
                code="IMPORT_INVALID",
            )
        return {"imported": csv_text.count("\n"), "users": []}

    @rpc
    @authenticated
    def list_roles(self, caller: Identity) -> dict[str, Any]:
        self._record("list_roles")
        return {"items": [{"role": "staff", "description": "Own records."}]}

    @rpc
    @authenticated
    def revoke_sessions(self, caller: Identity, user_id: str) -> dict[str, Any]:
        self._record("revoke_sessions", user_id)
        return {"revoked": 1, "session_ids": ["s1"]}


class SilentAuthService:
    """An ``auth`` that takes every call but never answers in time."""

    name = "auth"

    @rpc
    def ping(self) -> None:
        time.sleep(30)

    @rpc
    def get_current_user(self) -> None:
        time.sleep(30)

    @rpc
    def list_revoked_sessions(self, since: str) -> None:
        time.sleep(30)


def expired_token() -> str:
    return make_token(now=datetime.now(UTC) - timedelta(minutes=20))
