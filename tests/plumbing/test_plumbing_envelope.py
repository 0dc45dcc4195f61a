"""The event envelope: what passes, what is refused and why."""

from __future__ import annotations

import copy
import random
import uuid
from datetime import datetime
from typing import Any

import pytest
from marshmallow import ValidationError

from plumbing.envelope import (
    EnvelopeSchema,
    _fast_load,
    diff,
    make_event,
    routing,
    validate_envelope,
)
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


# --- the fast path agrees with the schema -------------------------------------

_TRICKY_VALUES: list[Any] = [
    None,
    "",
    " ",
    "x",
    "x" * 64,
    "x" * 65,
    "x" * 128,
    "x" * 129,
    "é",
    0,
    1,
    -1,
    2,
    10**30,
    1.0,
    1.5,
    float("nan"),
    True,
    False,
    [],
    ["a"],
    {},
    {"a": 1},
    {"before": 1},
    {"before": None, "after": "b"},
    {"before": 1, "extra": 2},
    b"bytes",
    b"0123456789abcdef",
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    datetime(2024, 9, 1, 8, 30),
    "1",
    "12345678-1234-5678-1234-567812345678",
    "12345678-1234-5678-1234-56781234567",
    "12345678-1234-5678-1234-567812345678\n",
    "12345678123456781234567812345678",
    "{12345678-1234-5678-1234-567812345678}",
    "urn:uuid:12345678-1234-5678-1234-567812345678",
    "ABCDEF78-1234-5678-1234-567812345678",
    "auth.user_created",
    "auth.user_created\n",
    "Auth.user_created",
    "auth.",
    "auth.user-created",
    "auth.user_created.x",
    "2024-09-01T08:30:00+00:00",
    "2024-09-01T08:30:00Z",
    "2024-09-01T08:30:00.5Z",
    "2024-09-01T08:30:00.123456789Z",
    "2024-09-01T08:30:00-00:00",
    "2024-09-01T08:30:00+0000",
    "2024-09-01T08:30:00+00",
    "2024-09-01T08:30:00+02:00",
    "2024-09-01T08:30:00",
    "2024-09-01 08:30:00Z",
    "2024-09-01T08:30Z",
    "2024-9-1T8:30:00Z",
    "2024-02-30T08:30:00Z",
    "2024-09-01T24:00:00Z",
    "2024-09-01T23:59:60Z",
    "2024-09-01T08:30:00+00:00\n",
    "２０２４-09-01T08:30:00Z",
    "not a date",
]
_ENVELOPE_KEYS = [
    "event_id",
    "type",
    "version",
    "occurred_at",
    "org_id",
    "actor",
    "subject",
    "changes",
    "data",
    "request_id",
]
_NESTED_KEYS = {
    "actor": ["user_id", "ip", "user_agent", "service"],
    "subject": ["type", "id"],
}


def _random_envelope(rng: random.Random) -> dict[str, Any]:
    envelope = make_event(
        rng.choice(["auth.user_created", "reviews.review_submitted", "a.b"]),
        subject_type=rng.choice(["user", "review", "s" * 64]),
        subject_id=rng.choice(["u-1", "1", "i" * 128]),
        org_id=rng.choice([None, "org-1"]),
        actor=rng.choice([None, {"user_id": "u"}, {"user_id": None, "ip": "10.0.0.1"}]),
        changes=rng.choice(
            [None, {"email": {"before": None, "after": "a@x"}}, {"n": {"after": 2}}]
        ),
        data=rng.choice([None, {"n": 1}, {"reason": "x", "nested": {"a": [1]}}]),
        request_id=rng.choice([None, "req-1"]),
    )
    if rng.random() < 0.3:
        envelope["occurred_at"] = envelope["occurred_at"].replace("+00:00", "Z")
    for optional in ("changes", "data", "request_id"):
        if rng.random() < 0.1:
            del envelope[optional]
    return envelope


def _alter(envelope: dict[str, Any], rng: random.Random) -> None:
    """One random change: a field removed, added or given a tricky value, at
    the top level or inside actor, subject, changes or data."""
    target: dict[str, Any] = envelope
    keys = _ENVELOPE_KEYS
    if rng.random() < 0.4:
        name = rng.choice(["actor", "subject", "changes", "data"])
        inner = envelope.get(name)
        if isinstance(inner, dict):
            if name == "changes" and inner and rng.random() < 0.6:
                change = inner[rng.choice(list(inner))]
                if isinstance(change, dict):
                    target, keys = change, ["before", "after"]
                else:
                    target, keys = inner, list(inner) or ["email"]
            else:
                target = inner
                keys = _NESTED_KEYS.get(name, list(inner) or ["n"])
    action = rng.random()
    if action < 0.15 and target:
        del target[rng.choice(list(target))]
    elif action < 0.25:
        target[rng.choice(["colour", "", "Type", 1, None])] = rng.choice(_TRICKY_VALUES)
    else:
        target[rng.choice(keys)] = rng.choice(_TRICKY_VALUES)


def test_the_fast_path_accepts_only_what_the_schema_accepts() -> None:
    """20,000 randomly altered envelopes (fixed seed): whatever the fast path
    accepts, marshmallow accepts and loads to the same values; whatever
    marshmallow refuses, validate_envelope refuses with marshmallow's errors."""
    rng = random.Random(20261203)
    schema = EnvelopeSchema()
    fast_accepted = refused = 0
    for _ in range(20_000):
        envelope = _random_envelope(rng)
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            _alter(envelope, rng)
        snapshot = copy.deepcopy(envelope)
        fast = _fast_load(envelope)
        try:
            expected = schema.load(envelope)
        except ValidationError as error:
            refused += 1
            assert fast is None, envelope
            with pytest.raises(ValidationFailed) as caught:
                validate_envelope(envelope)
            assert caught.value.fields == error.messages
            continue
        if fast is not None:
            fast_accepted += 1
            assert fast == expected, envelope
            assert fast["occurred_at"].tzinfo == expected["occurred_at"].tzinfo
        assert validate_envelope(envelope) == expected
        assert envelope == snapshot  # the input is left as it was
    assert fast_accepted > 3_000 and refused > 5_000, (fast_accepted, refused)


def test_the_fast_path_takes_plain_envelopes() -> None:
    """An envelope as make_event builds it never needs marshmallow."""
    envelope = _event()
    assert _fast_load(envelope) == EnvelopeSchema().load(envelope)
    assert _fast_load(_event(occurred_at="2024-09-01T08:30:00.5Z")) is not None
