"""RPC between services: bounded in time, errors rebuilt by code, and the
request's context carried into the callee and into the events it emits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import eventlet
import pytest
from nameko.testing.services import entrypoint_hook
from plumbing_support import WIDGETS, EventTap
from sqlalchemy.engine import Engine

from plumbing.database import Database
from plumbing.errors import (
    Conflict,
    PlatformError,
    ServiceTimeout,
    ServiceUnavailable,
    Unauthenticated,
)
from plumbing.identity import CallerIdentity, Identity, anonymous, authenticated
from plumbing.rpc import ServiceRpc, rpc


class NapRefused(PlatformError):
    """An error class only the sleepy service knows."""

    code = "NAP_REFUSED"
    status = 409
    title = "No nap"


class SleepyService:
    name = "sleepy"

    @rpc
    @anonymous
    def nap(self, seconds: float) -> str:
        eventlet.sleep(seconds)
        return "rested"

    @rpc
    @anonymous
    def refuse_nap(self) -> None:
        raise NapRefused("Not now", fields={"seconds": ["Too long."]})

    @rpc
    @anonymous
    def claim_bed(self) -> None:
        raise Conflict("The bed is taken")


class WhoService:
    """Answers who called it, as the callee sees it."""

    name = "who"
    caller = CallerIdentity()

    @rpc
    @authenticated
    def whoami(self, caller: Identity) -> dict[str, Any]:
        return {"user_id": caller.user_id, "service": caller.service}


class OnItsOwnAccountService:
    name = "own_account"
    forwarded_rpc = ServiceRpc("who", timeout=5)
    own_rpc = ServiceRpc("who", timeout=5, as_service="notify")

    @rpc
    def both(self) -> dict[str, Any]:
        return {"forwarded": self.forwarded_rpc.whoami(), "own": self.own_rpc.whoami()}


class CallerService:
    name = "caller"
    sleepy_rpc = ServiceRpc("sleepy", timeout=0.5)
    ghost_rpc = ServiceRpc("ghost", timeout=5)
    widgets_rpc = ServiceRpc("widgets", timeout=5)

    @rpc
    def call_nap(self, seconds: float) -> str:
        return self.sleepy_rpc.nap(seconds)

    @rpc
    def call_refuse_nap(self) -> None:
        self.sleepy_rpc.refuse_nap()

    @rpc
    def call_claim_bed(self) -> None:
        self.sleepy_rpc.claim_bed()

    @rpc
    def call_ghost(self) -> None:
        self.ghost_rpc.haunt()

    @rpc
    def create_widget(self, name: str) -> dict[str, Any]:
        return self.widgets_rpc.create_widget(name)


class WidgetsService:
    """A callee that writes a row and emits its event through the outbox."""

    name = "widgets"
    db = Database("widgets")
    caller = CallerIdentity()

    @rpc
    @authenticated
    def create_widget(self, caller: Identity, name: str) -> dict[str, Any]:
        self.db.execute(WIDGETS.insert().values(name=name))
        self.db.emit(
            "auth.widget_created",
            subject_type="widget",
            subject_id=name,
            org_id=caller.org_id,
        )
        self.db.commit()
        context = self.db.info["context_data"]
        return {
            "request_id": context.get("request_id"),
            "user_id": caller.user_id,
            "org_id": caller.org_id,
        }


Factory = Callable[..., Any]


@pytest.fixture
def sleepy_and_caller(container_factory: Factory, rabbit_config: dict) -> Any:
    """The sleepy service and a caller of it, both running."""
    containers = [
        container_factory(service, rabbit_config)
        for service in (SleepyService, CallerService)
    ]
    for container in containers:
        container.start()
    return containers[-1]


def test_a_call_that_takes_too_long_fails_with_service_timeout(
    sleepy_and_caller: Any,
) -> None:
    """A callee slower than the timeout gives ServiceTimeout at the timeout."""
    started = time.monotonic()
    with entrypoint_hook(sleepy_and_caller, "call_nap") as call_nap:
        with pytest.raises(ServiceTimeout) as caught:
            call_nap(5)

    assert time.monotonic() - started < 2
    assert caught.value.status == 504


def test_a_call_within_the_timeout_returns_its_result(sleepy_and_caller: Any) -> None:
    """A callee that answers in time returns its value."""
    with entrypoint_hook(sleepy_and_caller, "call_nap") as call_nap:
        assert call_nap(0) == "rested"


def test_calling_a_service_that_is_not_running_fails_with_service_unavailable(
    sleepy_and_caller: Any,
) -> None:
    """A service with no queue (never started) is reported unavailable at once."""
    started = time.monotonic()
    with entrypoint_hook(sleepy_and_caller, "call_ghost") as call_ghost:
        with pytest.raises(ServiceUnavailable):
            call_ghost()

    assert time.monotonic() - started < 2


def test_a_remote_platform_error_comes_back_with_its_code(
    sleepy_and_caller: Any,
) -> None:
    """An error the callee raises reaches the caller with code, status and fields."""
    with entrypoint_hook(sleepy_and_caller, "call_refuse_nap") as call_refuse_nap:
        with pytest.raises(PlatformError) as caught:
            call_refuse_nap()

    assert caught.value.code == "NAP_REFUSED"
    assert caught.value.status == 409
    assert caught.value.fields == {"seconds": ["Too long."]}


def test_a_remote_shared_error_comes_back_as_the_same_class(
    sleepy_and_caller: Any,
) -> None:
    """A shared PlatformError subclass is rebuilt as that class."""
    with entrypoint_hook(sleepy_and_caller, "call_claim_bed") as call_claim_bed:
        with pytest.raises(Conflict) as caught:
            call_claim_bed()

    assert caught.value.code == "CONFLICT"
    assert caught.value.detail == "The bed is taken"


@pytest.fixture
def widgets_and_caller(
    container_factory: Factory,
    rabbit_config: dict,
    widget_db: tuple[str, Engine],
) -> Any:
    """The widgets service on its own database, and a caller of it."""
    url, _ = widget_db
    containers = [
        container_factory(
            WidgetsService, {**rabbit_config, "WIDGETS_DATABASE_URL": url}
        ),
        container_factory(CallerService, rabbit_config),
    ]
    for container in containers:
        container.start()
    return containers[-1]


def test_request_id_and_identity_reach_the_callee_and_its_event(
    widgets_and_caller: Any, event_tap: EventTap
) -> None:
    """Context keys set on the caller arrive in the callee's worker and in the
    envelope (request_id, actor) of the event the callee emits."""
    identity = Identity(
        user_id="user-7",
        org_id="school-1",
        scopes={"staff": ["school-1"]},
        session_id="sess-1",
        ip="203.0.113.9",
        user_agent="pytest",
    )
    context = {"request_id": "req-42", "identity": identity.to_json()}

    with entrypoint_hook(widgets_and_caller, "create_widget", context) as create:
        seen = create("sprocket")

    assert seen == {"request_id": "req-42", "user_id": "user-7", "org_id": "school-1"}
    [event] = event_tap.take(expect=1)
    assert event["request_id"] == "req-42"
    assert event["org_id"] == "school-1"
    assert event["actor"] == {
        "user_id": "user-7",
        "ip": "203.0.113.9",
        "user_agent": "pytest",
    }


def test_a_call_as_a_service_carries_its_own_identity_not_the_callers(
    container_factory: Factory, rabbit_config: dict
) -> None:
    """``as_service`` replaces the worker's identity with the service's own;
    without it the caller's identity travels on."""
    containers = [
        container_factory(service, rabbit_config)
        for service in (WhoService, OnItsOwnAccountService)
    ]
    for container in containers:
        container.start()
    caller = containers[-1]
    person = Identity(user_id="user-7", org_id="school-1")

    with entrypoint_hook(caller, "both", {"identity": person.to_json()}) as both:
        seen = both()

    assert seen["forwarded"] == {"user_id": "user-7", "service": None}
    assert seen["own"] == {"user_id": "service:notify", "service": "notify"}


def test_an_authenticated_method_refuses_a_call_without_identity(
    widgets_and_caller: Any, event_tap: EventTap
) -> None:
    """No identity in the context: Unauthenticated, and nothing is written."""
    with entrypoint_hook(widgets_and_caller, "create_widget") as create:
        with pytest.raises(Unauthenticated):
            create("sprocket")

    assert event_tap.take(timeout=0.5) == []


def test_rpc_client_answers_503_while_the_broker_is_away_and_recovers_after(
    container_factory: Factory, rabbit_config: dict, broker_proxy: Any
) -> None:
    """With the caller's path to RabbitMQ cut (a TCP proxy we control stands in
    for a broker outage), calls fail fast as ServiceUnavailable; once the path
    is back, the caller reconnects and calls succeed again."""
    proxy, proxied_uri = broker_proxy
    sleepy = container_factory(SleepyService, rabbit_config)
    sleepy.start()
    caller = container_factory(
        CallerService, {**rabbit_config, "AMQP_URI": proxied_uri}
    )
    caller.start()
    with entrypoint_hook(caller, "call_nap") as call_nap:
        assert call_nap(0) == "rested"

        proxy.cut()
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            call_nap(0)
        refused_after = time.monotonic() - started

        proxy.restore()
        deadline = time.monotonic() + 15
        answer = None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = call_nap(0)
            except (ServiceUnavailable, ServiceTimeout):
                eventlet.sleep(0.2)

    assert refused_after < 5
    assert answer == "rested"
