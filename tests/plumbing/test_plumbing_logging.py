"""Structured logging: JSON lines with the service, request ids bound per
worker, and secrets never written."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import eventlet
import pytest
import structlog
from nameko.rpc import rpc
from nameko.testing.services import entrypoint_hook

import plumbing.logging as plumbing_logging
from plumbing.identity import Identity
from plumbing.logging import LogContext, configure

SEEDED_SECRETS = ("hunter2-hunter2", "eyJ.secret.token", "RC-918273")


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """Each test configures logging itself; undo it afterwards."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    plumbing_logging._configured = False
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "plumbing"]:
        root.removeHandler(handler)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_json_lines_carry_the_service(capsys: pytest.CaptureFixture[str]) -> None:
    """configure(fmt="json") writes one JSON object per line, with ``service``."""
    configure("x", fmt="json")

    structlog.get_logger().info("widget_made", widget_id=3)

    [line] = _lines(capsys)
    assert line["event"] == "widget_made"
    assert line["service"] == "x"
    assert line["widget_id"] == 3
    assert line["level"] == "info"
    assert "timestamp" in line


def test_lines_from_other_green_threads_carry_the_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A line logged from a new green thread (a worker, the relay) has ``service``."""
    configure("x", fmt="json")

    eventlet.spawn(structlog.get_logger().warning, "relay_said").wait()

    [line] = _lines(capsys)
    assert line["service"] == "x"


def test_stdlib_records_are_json_lines_too(capsys: pytest.CaptureFixture[str]) -> None:
    """nameko's and kombu's stdlib log records come out as JSON with ``service``."""
    configure("x", fmt="json")

    logging.getLogger("nameko.containers").warning("container %s stopped", "c1")

    [line] = _lines(capsys)
    assert line["event"] == "container c1 stopped"
    assert line["service"] == "x"
    assert line["level"] == "warning"


def test_secret_keys_are_redacted_at_any_depth(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Passwords, tokens and reset codes never reach a log line."""
    configure("x", fmt="json")

    structlog.get_logger().info(
        "login_attempted",
        username="ann",
        password=SEEDED_SECRETS[0],
        token=SEEDED_SECRETS[1],
        data={"reset_code": SEEDED_SECRETS[2], "fields": [{"new_password": "p"}]},
    )
    logging.getLogger("kombu").warning("x", extra={"refresh_token": SEEDED_SECRETS[1]})

    err = capsys.readouterr().err
    for secret in SEEDED_SECRETS:
        assert secret not in err
    line = json.loads(err.splitlines()[0])
    assert line["username"] == "ann"
    assert line["password"] == "[redacted]"
    assert line["data"]["reset_code"] == "[redacted]"
    assert line["data"]["fields"] == [{"new_password": "[redacted]"}]


class ChattyService:
    name = "chatty"
    log = LogContext("chatty")

    @rpc
    def chat(self) -> None:
        self.log.info("chatted")


def test_log_context_binds_request_and_caller_ids(
    capsys: pytest.CaptureFixture[str],
    container_factory: Any,
    rabbit_config: dict[str, Any],
) -> None:
    """Inside a worker every line has request_id, user_id and org_id."""
    configure("chatty", fmt="json")
    container = container_factory(ChattyService, rabbit_config)
    container.start()
    identity = Identity(user_id="user-7", org_id="school-1")
    context = {"request_id": "req-9", "identity": identity.to_json()}

    with entrypoint_hook(container, "chat", context) as chat:
        chat()

    [line] = [line for line in _lines(capsys) if line["event"] == "chatted"]
    assert line["service"] == "chatty"
    assert line["request_id"] == "req-9"
    assert line["user_id"] == "user-7"
    assert line["org_id"] == "school-1"
