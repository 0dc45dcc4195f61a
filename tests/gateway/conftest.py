"""Fixtures for the gateway tests: the gateway on a free port with a fake
``auth`` service beside it (same RPC names and shapes as the contract, real
tokens), over the RabbitMQ vhost of each test.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import requests
from gateway_support import SECRET, FakeAuthService, reset_fake_auth

from gateway.service import GatewayService


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Client:
    """``requests`` against one gateway; the base URL is prefixed."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)


@pytest.fixture
def gateway_config(rabbit_config: dict[str, Any]) -> dict[str, Any]:
    """Container config: this test's vhost, a free port, the test JWT secret."""
    config = dict(rabbit_config)
    config.update(
        {
            "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
            "JWT_SECRET": SECRET,
            "RPC_TIMEOUT": 3,
            "serializer": "json",
            # These tests run auth (or its fake) only.
            "READY_SERVICES": "auth",
        }
    )
    return config


@pytest.fixture
def start_platform(
    runner_factory: Callable[..., Any], gateway_config: dict[str, Any]
) -> Callable[..., Client]:
    """Start the gateway and the given services; return an HTTP client."""

    def start(*services: type, **config: Any) -> Client:
        reset_fake_auth()
        merged = dict(gateway_config, **config)
        runner = runner_factory(merged, GatewayService, *services)
        runner.start()
        return Client(f"http://{merged['WEB_SERVER_ADDRESS']}")

    return start


@pytest.fixture
def client(start_platform: Callable[..., Client]) -> Client:
    """The gateway with the fake auth service."""
    return start_platform(FakeAuthService)
