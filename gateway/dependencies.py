"""The gateway's nameko dependency providers: the request context (who is
calling, and which request this is), the session revocation cache, the
``authz.denied`` publisher, the readiness probe and the timed RPC proxies.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Iterable
from typing import Any, Protocol

import eventlet
import structlog
from kombu import Connection
from nameko.amqp.publish import Publisher
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.rpc import RpcProxy, ServiceProxy
from werkzeug.wrappers import Request

from gateway.problems import CsrfCheckFailed
from plumbing import config, topology
from plumbing.envelope import make_event
from plumbing.errors import Unauthenticated
from plumbing.identity import CONTEXT_KEY, REQUEST_ID_KEY, Identity
from plumbing.rpc import ServiceRpc
from plumbing.tokens import verify_access_token

log = structlog.get_logger()

# Every service /ready asks for ``ping``; later issues add theirs here. The
# container config key ``READY_SERVICES`` (comma-separated) overrides it, for
# a deployment or a test that runs only some services.
READY_SERVICES: tuple[str, ...] = ("auth", "audit", "training", "reviews", "notify")
READY_TIMEOUT = 2.0

# A revoked session's access tokens live at most 15 minutes; keep a margin.
REVOCATION_TTL = 16 * 60.0

ACCESS_COOKIE = "cpd_access"
REFRESH_COOKIE = "cpd_refresh"
CSRF_HEADER = "X-Requested-With"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_TOKEN_LENGTH = 8192
MAX_USER_AGENT = 512

GATEWAY_IDENTITY = Identity(user_id="service:gateway", org_id="", service="gateway")


class RevocationStore(SharedExtension):
    """Session ids whose tokens this gateway process refuses, until they expire."""

    def __init__(self) -> None:
        super().__init__()
        self._until: dict[str, float] = {}
        self.warmed = False

    def revoke(self, session_ids: Iterable[str], ttl: float = REVOCATION_TTL) -> None:
        until = time.monotonic() + ttl
        for session_id in session_ids:
            if session_id:
                self._until[str(session_id)] = until

    def is_revoked(self, session_id: str | None) -> bool:
        if not session_id:
            return False
        until = self._until.get(session_id)
        return until is not None and until > time.monotonic()

    def prune(self) -> None:
        now = time.monotonic()
        for session_id, until in list(self._until.items()):
            if until <= now:
                self._until.pop(session_id, None)

    def size(self) -> int:
        # Not __len__: nameko finds a shared extension by its truth value.
        return len(self._until)


class Revocations(DependencyProvider):
    """Gives ``self.revocations``: the process's :class:`RevocationStore`."""

    store = RevocationStore()

    def get_dependency(self, worker_ctx: Any) -> RevocationStore:
        return self.store


class BoundRequestContext:
    """One worker's view of its request: ids, client and caller."""

    def __init__(self, provider: RequestContext, worker_ctx: Any) -> None:
        self._provider = provider
        self._worker_ctx = worker_ctx

    @property
    def request_id(self) -> str | None:
        return self._worker_ctx.data.get(REQUEST_ID_KEY)

    def bind(
        self, request_id: str | None = None, identity: Identity | None = None
    ) -> None:
        """Put ids in the worker's context data, which every RPC sends as headers."""
        data = self._worker_ctx.data
        if request_id is not None:
            data[REQUEST_ID_KEY] = request_id
            structlog.contextvars.bind_contextvars(request_id=request_id)
        if identity is not None:
            data[CONTEXT_KEY] = identity.to_json()
            structlog.contextvars.bind_contextvars(
                user_id=identity.user_id, org_id=identity.org_id
            )

    def client(self, request: Request) -> tuple[str | None, str | None]:
        """The client's IP address and user agent."""
        ip = request.remote_addr
        hops = self._provider.trusted_proxies
        forwarded = request.headers.get("X-Forwarded-For", "")
        if hops > 0 and forwarded:
            chain = [part.strip() for part in forwarded.split(",") if part.strip()]
            if chain:
                candidate = chain[-hops] if len(chain) >= hops else chain[0]
                try:
                    ip = str(ipaddress.ip_address(candidate))
                except ValueError:
                    pass
        agent = request.headers.get("User-Agent")
        return ip, agent[:MAX_USER_AGENT] if agent else None

    def authenticate(self, request: Request) -> Identity:
        """Verify the caller's access token and bind its identity to this worker.

        The token comes from ``Authorization: Bearer`` or else the access
        cookie; it is checked locally (signature, expiry) and against the
        revocation cache. Cookie-authenticated changes need the CSRF header.
        """
        token, source = self._token(request)
        claims = verify_access_token(self._provider.secret, token)
        session_id = str(claims.get("sid"))
        if self._provider.revocations.is_revoked(session_id):
            raise Unauthenticated("The session has ended", code="SESSION_REVOKED")
        if (
            source == "cookie"
            and request.method in UNSAFE_METHODS
            and not request.headers.get(CSRF_HEADER)
        ):
            raise CsrfCheckFailed(
                f"Send the {CSRF_HEADER} header with cookie-authenticated changes"
            )
        ip, agent = self.client(request)
        identity = Identity(
            user_id=str(claims["sub"]),
            org_id=str(claims["org"]),
            scopes=_scopes(claims.get("scopes")),
            session_id=session_id,
            ip=ip,
            user_agent=agent,
        )
        self.bind(identity=identity)
        return identity

    def _token(self, request: Request) -> tuple[str, str]:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated(
                    "Use Authorization: Bearer <access token>", code="TOKEN_INVALID"
                )
            source = "bearer"
        else:
            token = request.cookies.get(ACCESS_COOKIE, "")
            if not token:
                raise Unauthenticated("Sign in first")
            source = "cookie"
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("The access token is not valid", code="TOKEN_INVALID")
        return token, source


def _scopes(raw: Any) -> dict[str, list[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(orgs, list) for orgs in raw.values()
    ):
        raise Unauthenticated("The access token is not valid", code="TOKEN_INVALID")
    return {str(role): [str(org) for org in orgs] for role, orgs in raw.items()}


class RequestContext(DependencyProvider):
    """Gives ``self.request_context``: binds the request id and the caller's
    identity into the worker's context data and authenticates requests.

    ``JWT_SECRET`` comes from the container config, else the environment;
    ``TRUSTED_PROXY_COUNT`` (config or environment, default 0) says how many
    proxies in front of the gateway append to ``X-Forwarded-For``.
    """

    revocations = RevocationStore()

    def setup(self) -> None:
        cfg = self.container.config
        self.secret = cfg.get("JWT_SECRET") or config.jwt_secret()
        raw = cfg.get("TRUSTED_PROXY_COUNT", os.environ.get("TRUSTED_PROXY_COUNT"))
        try:
            self.trusted_proxies = max(int(raw or 0), 0)
        except (TypeError, ValueError):
            self.trusted_proxies = 0

    def get_dependency(self, worker_ctx: Any) -> BoundRequestContext:
        return BoundRequestContext(self, worker_ctx)

    def worker_teardown(self, worker_ctx: Any) -> None:
        structlog.contextvars.unbind_contextvars("request_id", "user_id", "org_id")


class Deny(Protocol):
    """What ``self.deny`` is in a worker: see :class:`DenialPublisher`."""

    def __call__(
        self,
        caller: Identity,
        *,
        subject_type: str,
        subject_id: str,
        action: str,
        org_id: str | None = None,
    ) -> None: ...


class DenialPublisher(DependencyProvider):
    """Gives ``self.deny(caller, ...)``: publishes ``authz.denied`` when the
    gateway itself refuses a request for something outside the caller's
    scopes. Published with confirms and mandatory routing to ``authz.events``;
    a failure to publish is logged and does not change the answer.
    """

    def setup(self) -> None:
        self.amqp_uri = self.container.config["AMQP_URI"]
        self.publisher = Publisher(
            self.amqp_uri,
            serializer="json",
            use_confirms=True,
            mandatory=True,
            delivery_mode=2,
        )
        self._declared = False

    def _declare(self) -> None:
        if not self._declared:
            topology.declare(self.amqp_uri)
            self._declared = True

    def start(self) -> None:
        try:
            self._declare()
        except Exception as error:  # noqa: BLE001 (retried on the first denial)
            log.warning("topology_declare_failed", error=repr(error))

    def get_dependency(self, worker_ctx: Any) -> Deny:
        def deny(
            caller: Identity,
            *,
            subject_type: str,
            subject_id: str,
            action: str,
            org_id: str | None = None,
        ) -> None:
            envelope = make_event(
                "authz.denied",
                subject_type=subject_type,
                subject_id=str(subject_id),
                org_id=org_id or caller.org_id,
                actor={
                    "user_id": caller.user_id,
                    "ip": caller.ip,
                    "user_agent": caller.user_agent,
                    "service": "gateway",
                },
                data={"action": action, "caller_org_id": caller.org_id},
                request_id=worker_ctx.data.get(REQUEST_ID_KEY),
            )
            try:
                self._declare()
                self.publisher.publish(
                    envelope,
                    exchange=topology.exchange("authz"),
                    routing_key="denied",
                    message_id=envelope["event_id"],
                    headers={"nameko.request_id": envelope["request_id"] or ""},
                )
            except Exception as error:  # noqa: BLE001 (the answer stands regardless)
                log.warning("authz_denied_publish_failed", error=repr(error))
            log.info("authz_denied", action=action, subject_id=str(subject_id))

        return deny


class _Probe:
    def __init__(self, provider: ReadinessProbe, worker_ctx: Any) -> None:
        self._provider = provider
        self._worker_ctx = worker_ctx

    def check(self) -> dict[str, bool]:
        """``{"rabbitmq": ok, "<service>": ok, ...}``, each within the timeout."""
        timeout = self._provider.timeout
        results = {"rabbitmq": self._broker_ok(timeout)}
        if not results["rabbitmq"]:
            results.update({name: False for name in self._provider.services})
            return results
        pile = eventlet.GreenPile()
        for name in self._provider.services:
            pile.spawn(self._ping, name, timeout)
        for name, ok in zip(self._provider.services, pile, strict=True):
            results[name] = ok
        return results

    def _broker_ok(self, timeout: float) -> bool:
        try:
            with Connection(
                self._provider.amqp_uri, connect_timeout=timeout
            ) as connection:
                connection.ensure_connection(max_retries=1, timeout=timeout)
            return True
        except Exception:  # noqa: BLE001 (any failure means "not ready")
            return False

    def _ping(self, service: str, timeout: float) -> bool:
        proxy = ServiceProxy(
            self._worker_ctx, service, self._provider.rpc_reply_listener
        )
        try:
            with eventlet.Timeout(timeout):
                proxy.ping.call_async().result()
            return True
        except (Exception, eventlet.Timeout):  # noqa: BLE001 (unready, whatever the cause)
            return False


class ReadinessProbe(RpcProxy):
    """Gives ``self.readiness.check()``: is RabbitMQ reachable, and does every
    service in :data:`READY_SERVICES` answer ``ping`` within the timeout?"""

    def __init__(
        self, services: tuple[str, ...] = READY_SERVICES, timeout: float = READY_TIMEOUT
    ) -> None:
        super().__init__("readiness")
        self.services = services
        self.timeout = timeout

    def setup(self) -> None:
        self.amqp_uri = self.container.config["AMQP_URI"]
        configured = self.container.config.get("READY_SERVICES")
        if configured:
            self.services = tuple(
                name.strip() for name in str(configured).split(",") if name.strip()
            )

    def get_dependency(self, worker_ctx: Any) -> _Probe:
        return _Probe(self, worker_ctx)


class GatewayRpc(ServiceRpc):
    """:class:`plumbing.rpc.ServiceRpc` whose timeout may also come from the
    container config key ``RPC_TIMEOUT`` (else the environment, else 10 s)."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        configured = self.container.config.get("RPC_TIMEOUT")
        if self.timeout is None and configured is not None:
            self.timeout = float(configured)
        return super().get_dependency(worker_ctx)
