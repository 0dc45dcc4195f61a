"""The one envelope every event travels in, checked on publish and on receipt.

``type`` is ``<service>.<past_tense>``; the event goes to the exchange
``<service>.events`` with the past-tense part as routing key, which is what a
nameko ``event_handler(service, past_tense)`` binds to.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
)

from plumbing.errors import ValidationFailed

TYPE_PATTERN = r"^[a-z]+\.[a-z][a-z_]*$"
ENVELOPE_VERSION = 1


class ActorSchema(Schema):
    class Meta:
        unknown = RAISE

    user_id = fields.String(allow_none=True, load_default=None)
    ip = fields.String(allow_none=True, load_default=None)
    user_agent = fields.String(allow_none=True, load_default=None)
    service = fields.String(allow_none=True, load_default=None)


class SubjectSchema(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    id = fields.String(required=True, validate=validate.Length(min=1, max=128))


class ChangeSchema(Schema):
    class Meta:
        unknown = RAISE

    before = fields.Raw(allow_none=True, load_default=None)
    after = fields.Raw(allow_none=True, load_default=None)


class EnvelopeSchema(Schema):
    """An event as published: who did what to which object, and what changed."""

    class Meta:
        unknown = RAISE

    event_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Regexp(TYPE_PATTERN))
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    # No default timezone: a naive timestamp is refused, not guessed at.
    occurred_at = fields.AwareDateTime(required=True)
    org_id = fields.String(allow_none=True, required=True)
    actor = fields.Nested(ActorSchema, required=True)
    subject = fields.Nested(SubjectSchema, required=True)
    changes = fields.Dict(
        keys=fields.String(), values=fields.Nested(ChangeSchema), load_default=dict
    )
    data = fields.Dict(keys=fields.String(), load_default=dict)
    request_id = fields.String(allow_none=True, load_default=None)

    @validates("occurred_at")
    def _in_utc(self, value: datetime, **_kwargs: Any) -> None:
        offset = value.utcoffset()
        if offset is None or offset.total_seconds() != 0:
            raise ValidationError("Must be in UTC.")


_schema = EnvelopeSchema()


def make_event(
    type: str,
    *,
    subject_type: str,
    subject_id: str,
    org_id: str | None,
    actor: dict[str, Any] | None = None,
    changes: dict[str, dict[str, Any]] | None = None,
    data: dict[str, Any] | None = None,
    request_id: str | None = None,
    version: int = ENVELOPE_VERSION,
) -> dict[str, Any]:
    """Build and validate an envelope, ready to be JSON-encoded."""
    envelope = {
        "event_id": str(uuid.uuid4()),
        "type": type,
        "version": version,
        "occurred_at": datetime.now(UTC).isoformat(),
        "org_id": org_id,
        "actor": actor or {},
        "subject": {"type": subject_type, "id": str(subject_id)},
        "changes": changes or {},
        "data": data or {},
        "request_id": request_id,
    }
    validate_envelope(envelope)
    return envelope


def validate_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    """Check an envelope; raise ValidationFailed with the field errors if bad."""
    try:
        return _schema.load(envelope)
    except ValidationError as error:
        raise ValidationFailed("Event envelope is not valid", error.messages) from None


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``changes`` of an update: each field whose value differs."""
    changes = {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            changes[key] = {"before": before.get(key), "after": after.get(key)}
    return changes


def routing(event_type: str) -> tuple[str, str]:
    """``auth.user_created`` -> (``auth.events``, ``user_created``)."""
    service, name = event_type.split(".", 1)
    return f"{service}.events", name
