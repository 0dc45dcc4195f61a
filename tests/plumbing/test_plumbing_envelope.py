"""The event envelope: what passes, what is refused and why."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from plumbing.envelope import diff, make_event, routing, validate_envelope
from plumbing.errors import ValidationFailed


def _event(**overrides: Any) -> dict[str, Any]:
    envelope = make_event(
        "auth.user_created",
        subject_type="user",
        subject_id="u-1",
        org_id="org-1",
        actor={"user_id": "admin-1", "ip": "10.0.0.1", "user_agent": "curl"},
        changes={"email": {"before": None, "after": "a@school.example"}},
        request_id="req-1",
    )
    envelope.update(overrides)
    return envelope


def test_a_valid_envelope_round_trips() -> None:
    """make_event builds an envelope that validates back to the same values."""
    envelope = _event()

    loaded = validate_envelope(envelope)

    assert loaded["event_id"] == uuid.UUID(envelope["event_id"])
    assert loaded["type"] == "auth.user_created"
    assert loaded["occurred_at"].utcoffset().total_seconds() == 0
    assert loaded["actor"]["user_id"] == "admin-1"
    assert loaded["subject"] == {"type": "user", "id": "u-1"}
    assert loaded["changes"]["email"]["after"] == "a@school.example"
    assert loaded["request_id"] == "req-1"


def _field_errors(envelope: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationFailed) as caught:
        validate_envelope(envelope)
    return caught.value.fields


def test_an_envelope_without_a_required_field_is_refused() -> None:
    """A missing event_id is named in the field errors."""
    envelope = _event()
    del envelope["event_id"]

    assert "event_id" in _field_errors(envelope)


@pytest.mark.parametrize(
    "bad_type", ["user_created", "Auth.user_created", "auth.", "auth.user-created"]
)
def test_an_event_type_not_shaped_service_dot_past_tense_is_refused(
    bad_type: str,
) -> None:
    """``type`` must be ``<service>.<snake_case>``."""
    assert "type" in _field_errors(_event(type=bad_type))


def test_a_naive_occurred_at_is_refused() -> None:
    """A timestamp without a timezone is ambiguous, so it is refused."""
    naive = datetime(2024, 9, 1, 8, 30).isoformat()

    assert "occurred_at" in _field_errors(_event(occurred_at=naive))


def test_an_occurred_at_outside_utc_is_refused() -> None:
    """Every envelope carries UTC, so consumers can compare timestamps."""
    assert "occurred_at" in _field_errors(
        _event(occurred_at="2024-09-01T08:30:00+02:00")
    )


def test_an_unknown_field_is_refused() -> None:
    """An unknown top-level or nested field is refused, not silently dropped."""
    assert "colour" in _field_errors(_event(colour="red"))
    actor = {"user_id": "u", "password": "nope"}
    assert "actor" in _field_errors(_event(actor=actor))


def test_make_event_refuses_a_bad_type() -> None:
    """The publisher side checks too: make_event raises on a bad envelope."""
    with pytest.raises(ValidationFailed):
        make_event("nodot", subject_type="user", subject_id="1", org_id=None)


def test_diff_lists_only_changed_fields_with_before_and_after() -> None:
    """diff names each changed, added or removed field; equal ones are left out."""
    before = {"name": "Ann", "email": "a@x.example", "phone": "1"}
    after = {"name": "Ann", "email": "b@x.example", "title": "Dr"}

    assert diff(before, after) == {
        "email": {"before": "a@x.example", "after": "b@x.example"},
        "phone": {"before": "1", "after": None},
        "title": {"before": None, "after": "Dr"},
    }
    assert diff(before, before) == {}


def test_routing_splits_type_into_exchange_and_key() -> None:
    """``auth.user_created`` goes to ``auth.events`` with key ``user_created``."""
    assert routing("auth.user_created") == ("auth.events", "user_created")
