"""The HTTP gateway: the platform's only HTTP face.

It owns no data. Each route validates its input, verifies the caller's
access token locally (never asking auth), refuses tokens of revoked sessions,
and calls the service that owns the answer with the request id and the
caller's identity in the RPC's context. See :mod:`gateway.http` for what
every route does around its handler.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from nameko.events import BROADCAST, event_handler
from nameko.timer import timer
from werkzeug.wrappers import Response

from gateway import docs
from gateway.audit_routes import AuditRoutes
from gateway.dependencies import (
    CSRF_HEADER,
    GATEWAY_IDENTITY,
    REFRESH_COOKIE,
    REVOCATION_TTL,
    DenialPublisher,
    GatewayRpc,
    ReadinessProbe,
    RequestContext,
    Revocations,
)
from gateway.http import problem, route
from gateway.notify_routes import NotifyRoutes
from gateway.openapi import build_spec
from gateway.problems import CsrfCheckFailed, describe
from gateway.reviews_routes import ReviewsRoutes
from gateway.schemas import (
    EmptySchema,
    HealthSchema,
    ImportResultSchema,
    InvitationSentSchema,
    LoginSchema,
    OrganisationListSchema,
    OrganisationSchema,
    PasswordChangeSchema,
    PasswordResetConfirmSchema,
    PasswordResetRequestSchema,
    ReadySchema,
    RefreshSchema,
    RoleListSchema,
    SessionsRevokedSchema,
    TokenSchema,
    UserCreatedSchema,
    UserCreateSchema,
    UserListQuerySchema,
    UserPageSchema,
    UserSchema,
    UsersImportSchema,
    UserUpdateSchema,
)
from gateway.sessions import (
    clear_session_cookies,
    in_scope,
    revoked_session_ids,
    session_ids_of,
    session_response,
)
from gateway.training_routes import TrainingRoutes
from plumbing.errors import NotFound, Unauthenticated
from plumbing.identity import Identity
from plumbing.logging import LogContext

log = structlog.get_logger()

# While the revocation cache is not warmed, ask auth again this often.
WARMUP_INTERVAL = 2.0


class GatewayService(AuditRoutes, TrainingRoutes, ReviewsRoutes, NotifyRoutes):
    """HTTP routes under ``/api/v1``, plus ``/health`` and ``/ready``.

    Each service's routes beyond auth's live in a mixin of their own module
    (``gateway/<service>_routes.py``) and join here as a base class.
    """

    name = "gateway"

    auth_rpc = GatewayRpc("auth")
    request_context = RequestContext()
    revocations = Revocations()
    deny = DenialPublisher()
    readiness = ReadinessProbe()
    log = LogContext("gateway")

    _spec: dict[str, Any] | None = None

    # Operations

    @route("GET", "/health", auth=False, response=HealthSchema, tag="operations")
    def health(self, request: Any) -> dict[str, str]:
        """Liveness: 200 while the process runs. Anyone may call it."""
        return {"status": "ok"}

    @route("GET", "/ready", auth=False, response=ReadySchema, tag="operations")
    def ready(self, request: Any) -> Any:
        """Readiness: 200 only when RabbitMQ and every service answer ``ping``.

        Otherwise 503 ``NOT_READY`` listing the parts that are ``missing``.
        """
        checks = self.readiness.check()
        missing = sorted(name for name, ok in checks.items() if not ok)
        states = {name: "ok" if ok else "missing" for name, ok in checks.items()}
        if missing:
            return problem(
                503,
                "NOT_READY",
                "Not every part of the platform answers",
                request,
                detail="Not answering: " + ", ".join(missing),
                missing=missing,
                checks=states,
            )
        return {"status": "ready", "checks": states}

    @route("GET", "/api/v1/openapi.json", auth=False, tag="operations")
    def openapi(self, request: Any) -> dict[str, Any]:
        """This API's OpenAPI 3 document, generated from the gateway's schemas."""
        if GatewayService._spec is None:
            GatewayService._spec = build_spec(GatewayService)
        return GatewayService._spec

    @route(
        "GET", docs.DOCS_PATH, auth=False, tag="operations", content_type="text/html"
    )
    def api_docs(self, request: Any) -> Response:
        """A browsable page of this API's documentation (Swagger UI)."""
        return docs.docs_page()

    @route("GET", f"{docs.ASSETS_PATH}/<name>", auth=False, tag="operations")
    def api_docs_asset(self, request: Any, name: str) -> Response:
        """The scripts and styles of the documentation page."""
        found = docs.asset(name)
        if found is None:
            raise NotFound(f"No asset {name!r}")
        return found

    # Sessions

    @route(
        "POST",
        "/api/v1/auth/login",
        auth=False,
        body=LoginSchema,
        response=TokenSchema,
        tag="auth",
    )
    def login(self, request: Any, body: dict[str, Any]) -> Response:
        """Sign in with username and password; sets the session cookies.

        Unknown user, wrong password and locked account all answer 401
        ``INVALID_CREDENTIALS``; too many failures from one address answer
        429 ``LOGIN_THROTTLED``.
        """
        ip, agent = self.request_context.client(request)
        result = self.auth_rpc.login(body["username"], body["password"], ip, agent)
        return session_response(result, body["session"])

    @route(
        "POST",
        "/api/v1/auth/refresh",
        auth=False,
        body=RefreshSchema,
        response=TokenSchema,
        tag="auth",
    )
    def refresh(self, request: Any, body: dict[str, Any]) -> Response:
        """Swap a refresh token (body, else cookie) for new tokens.

        The refresh token is rotated: the old one stops working. Using the
        refresh cookie needs the CSRF header.
        """
        token = body.get("refresh_token")
        if token is None:
            token = request.cookies.get(REFRESH_COOKIE)
            if not token:
                raise Unauthenticated(
                    "Send a refresh token", code="INVALID_REFRESH_TOKEN"
                )
            if not request.headers.get(CSRF_HEADER):
                raise CsrfCheckFailed()
        ip, agent = self.request_context.client(request)
        result = self.auth_rpc.refresh(token, ip, agent)
        return session_response(result, body["session"])

    @route("POST", "/api/v1/auth/logout", status=204, tag="auth")
    def logout(self, request: Any, caller: Identity) -> Response:
        """End the caller's session and clear the session cookies."""
        self.auth_rpc.logout()
        self.revocations.revoke([caller.session_id] if caller.session_id else [])
        return clear_session_cookies(Response(status=204))

    @route(
        "POST",
        "/api/v1/auth/password",
        body=PasswordChangeSchema,
        response=EmptySchema,
        tag="auth",
    )
    def change_password(
        self, request: Any, caller: Identity, body: dict[str, Any]
    ) -> Any:
        """Change the caller's password; needs the current one.

        Every other session of the user ends.
        """
        return self.auth_rpc.change_password(
            body["current_password"], body["new_password"]
        )

    @route(
        "POST",
        "/api/v1/auth/password-reset",
        auth=False,
        body=PasswordResetRequestSchema,
        response=EmptySchema,
        status=202,
        tag="auth",
    )
    def request_password_reset(self, request: Any, body: dict[str, Any]) -> Any:
        """Ask for a password reset code; 202 whether or not the user exists.

        More than 30 requests in 10 minutes from one address answer 429
        ``RESET_THROTTLED``; a person gets at most 5 codes an hour.
        """
        ip, agent = self.request_context.client(request)
        self.auth_rpc.request_password_reset(body["login"], ip, agent)
        return {}

    @route(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        auth=False,
        body=PasswordResetConfirmSchema,
        response=EmptySchema,
        tag="auth",
    )
    def reset_password(self, request: Any, body: dict[str, Any]) -> Any:
        """Set a new password with a reset code; every session of the user ends."""
        ip, agent = self.request_context.client(request)
        return self.auth_rpc.reset_password(
            body["code"], body["new_password"], ip, agent
        )

    # People and organisations

    @route("GET", "/api/v1/me", response=UserSchema, tag="users")
    def get_me(self, request: Any, caller: Identity) -> Any:
        """The caller's own user, with roles."""
        return self.auth_rpc.get_current_user()

    @route(
        "GET",
        "/api/v1/organisations",
        response=OrganisationListSchema,
        tag="organisations",
    )
    def list_organisations(self, request: Any, caller: Identity) -> Any:
        """The organisations within the caller's scopes."""
        return self.auth_rpc.list_organisations()

    @route(
        "GET",
        "/api/v1/organisations/<org_id>",
        response=OrganisationSchema,
        tag="organisations",
    )
    def get_organisation(self, request: Any, caller: Identity, org_id: str) -> Any:
        """One organisation within the caller's scopes; 404 for any other."""
        self._ensure_in_scope(caller, org_id, "get_organisation")
        return self.auth_rpc.get_organisation(org_id)

    @route(
        "GET",
        "/api/v1/users",
        query=UserListQuerySchema,
        response=UserPageSchema,
        tag="users",
    )
    def list_users(self, request: Any, caller: Identity, query: dict[str, Any]) -> Any:
        """A page of the users the caller may see (``limit`` at most 100)."""
        if "org_id" in query:
            self._ensure_in_scope(caller, query["org_id"], "list_users")
        return self.auth_rpc.list_users(**query)

    @route(
        "POST",
        "/api/v1/users",
        body=UserCreateSchema,
        response=UserCreatedSchema,
        status=201,
        tag="users",
    )
    def create_user(self, request: Any, caller: Identity, body: dict[str, Any]) -> Any:
        """Create a user in an organisation the caller administers; they are
        emailed an invitation (with a code to choose their password, if none
        was given)."""
        self._ensure_in_scope(caller, body["org_id"], "create_user")
        return self.auth_rpc.create_user(body)

    @route(
        "POST",
        "/api/v1/users/import",
        body=UsersImportSchema,
        response=ImportResultSchema,
        tag="users",
    )
    def import_users(self, request: Any, caller: Identity, body: dict[str, Any]) -> Any:
        """Import users from CSV text (JSON ``{org_id, csv}``): all rows or none.

        Every bad row is reported with its row number (422 ``IMPORT_INVALID``).
        """
        self._ensure_in_scope(caller, body["org_id"], "import_users")
        return self.auth_rpc.import_users(body["org_id"], body["csv"])

    @route("GET", "/api/v1/users/<user_id>", response=UserSchema, tag="users")
    def get_user(self, request: Any, caller: Identity, user_id: str) -> Any:
        """A user the caller may see: self, their reports, or in an admin's scope."""
        return self.auth_rpc.get_user(user_id)

    @route(
        "PATCH",
        "/api/v1/users/<user_id>",
        body=UserUpdateSchema,
        response=UserSchema,
        tag="users",
    )
    def update_user(
        self, request: Any, caller: Identity, user_id: str, body: dict[str, Any]
    ) -> Any:
        """Change some of a user's fields (school or trust admin)."""
        return self.auth_rpc.update_user(user_id, body)

    @route(
        "POST",
        "/api/v1/users/<user_id>/deactivate",
        response=UserSchema,
        tag="users",
    )
    def deactivate_user(self, request: Any, caller: Identity, user_id: str) -> Any:
        """Deactivate a user (admin); their sessions end at once."""
        return self.auth_rpc.deactivate_user(user_id)

    @route(
        "POST",
        "/api/v1/users/<user_id>/reactivate",
        response=UserSchema,
        tag="users",
    )
    def reactivate_user(self, request: Any, caller: Identity, user_id: str) -> Any:
        """Reactivate a deactivated user (admin)."""
        return self.auth_rpc.reactivate_user(user_id)

    @route(
        "POST",
        "/api/v1/users/<user_id>/invitation",
        response=InvitationSentSchema,
        tag="users",
    )
    def send_invitation(self, request: Any, caller: Identity, user_id: str) -> Any:
        """Email a user who has no password yet a new invitation (admin); their
        earlier invitation codes stop working. 422 ``PASSWORD_ALREADY_SET``."""
        return self.auth_rpc.send_invitation(user_id)

    @route(
        "POST",
        "/api/v1/users/<user_id>/revoke-sessions",
        response=SessionsRevokedSchema,
        tag="users",
    )
    def revoke_sessions(self, request: Any, caller: Identity, user_id: str) -> Any:
        """End every session of a user (admin, or the user themself)."""
        return self.auth_rpc.revoke_sessions(user_id)

    @route("GET", "/api/v1/roles", response=RoleListSchema, tag="users")
    def list_roles(self, request: Any, caller: Identity) -> Any:
        """The role catalogue."""
        return self.auth_rpc.list_roles()

    # Session revocation

    @event_handler(
        "auth", "logged_out", handler_type=BROADCAST, reliable_delivery=False
    )
    def handle_logged_out(self, payload: Any) -> None:
        """Refuse the logged-out session's tokens from now on (``data.session_id``)."""
        self.revocations.revoke(revoked_session_ids(payload, "session_id"))

    @event_handler(
        "auth", "sessions_revoked", handler_type=BROADCAST, reliable_delivery=False
    )
    def handle_sessions_revoked(self, payload: Any) -> None:
        """Refuse the tokens of every revoked session (``data.session_ids``)."""
        self.revocations.revoke(revoked_session_ids(payload, "session_ids"))

    @timer(interval=WARMUP_INTERVAL, eager=True)
    def warm_revocations(self) -> None:
        """Fill the revocation cache from auth once at start, retrying while
        auth is away; afterwards only drop entries whose tokens expired."""
        store = self.revocations
        store.prune()
        if store.warmed:
            return
        self.request_context.bind(identity=GATEWAY_IDENTITY)
        since = datetime.now(UTC) - timedelta(seconds=REVOCATION_TTL)
        try:
            result = self.auth_rpc.list_revoked_sessions(since.isoformat())
        except Exception as error:  # noqa: BLE001 (auth may be down at start; retried)
            log.info("revocation_warmup_pending", error=describe(error))
            return
        store.revoke(session_ids_of(result))
        store.warmed = True
        log.info("revocation_cache_warmed", sessions=store.size())

    # Helpers

    def _ensure_in_scope(self, caller: Identity, org_id: str, action: str) -> None:
        if not in_scope(caller, org_id):
            self.deny(
                caller,
                subject_type="organisation",
                subject_id=org_id,
                action=action,
                org_id=org_id,
            )
            raise NotFound("No such organisation")
