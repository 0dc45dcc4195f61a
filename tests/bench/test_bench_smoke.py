"""The benchmark's raw AMQP part runs end to end (no timing is asserted)."""

from __future__ import annotations

import uuid

from bench import amqp_echo
from bench.resources import rabbit_vhost


def test_raw_amqp_echo_answers_every_call_and_reports_a_positive_rate() -> None:
    """A tiny echo run on a fresh vhost answers all its calls at a rate above 0."""
    with rabbit_vhost(f"smoke_{uuid.uuid4().hex[:8]}") as amqp_uri:
        result = amqp_echo.measure(amqp_uri, calls=50, in_flight=10, max_seconds=20)

    assert result.operations == 50
    assert result.errors == 0
    assert result.rate > 0
