"""The one envelope every event travels in, checked on publish and on receipt.

``type`` is ``<service>.<past_tense>``; the event goes to the exchange
``<service>.events`` with the past-tense part as routing key, which is what a
nameko ``event_handler(service, past_tense)`` binds to.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
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


# --- the fast path -------------------------------------------------------------
#
# Nearly every envelope is a plain JSON object of the expected shape. Checking
# it with a few ``type() is`` tests and two regular expressions costs a tenth
# of ``EnvelopeSchema.load``. The fast path accepts only a subset of what the
# schema accepts, and returns exactly what the schema would return; anything
# it is not sure of (and every error) goes to the schema, which decides and
# words the field errors. ``tests/plumbing/test_plumbing_envelope.py`` checks
# both properties on thousands of randomly altered envelopes.

_ENVELOPE_FIELDS = frozenset(
    {
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
    }
)
_REQUIRED_FIELDS = frozenset(
    {"event_id", "type", "version", "occurred_at", "org_id", "actor", "subject"}
)
_ACTOR_FIELDS = ("user_id", "ip", "user_agent", "service")
_ACTOR_FIELD_SET = frozenset(_ACTOR_FIELDS)
_CHANGE_FIELDS = frozenset({"before", "after"})
_SUBJECT_FIELDS = frozenset({"type", "id"})
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_TYPE_RE = re.compile(r"[a-z]+\.[a-z][a-z_]*")
_UTC_STAMP_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,6}))?(Z|\+00:00)"
)
# What marshmallow makes of "Z" and of "+00:00" (utils.get_fixed_timezone(0)).
_ZONES = {"Z": UTC, "+00:00": timezone(timedelta(0), "+0000")}


def _fast_load(envelope: Any) -> dict[str, Any] | None:
    """What ``EnvelopeSchema().load(envelope)`` returns, or None when this
    envelope is anything but plain (then the schema decides)."""
    if type(envelope) is not dict or not _REQUIRED_FIELDS <= envelope.keys():
        return None
    if not _ENVELOPE_FIELDS >= envelope.keys():
        return None
    event_id = envelope["event_id"]
    type_ = envelope["type"]
    version = envelope["version"]
    occurred_at = envelope["occurred_at"]
    org_id = envelope["org_id"]
    request_id = envelope.get("request_id")
    if (
        type(event_id) is not str
        or _UUID_RE.fullmatch(event_id) is None
        or type(type_) is not str
        or _TYPE_RE.fullmatch(type_) is None
        or type(version) is not int
        or version < 1
        or type(occurred_at) is not str
        or (org_id is not None and type(org_id) is not str)
        or (request_id is not None and type(request_id) is not str)
    ):
        return None
    stamp = _UTC_STAMP_RE.fullmatch(occurred_at)
    if stamp is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = stamp.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(fraction.ljust(6, "0")) if fraction else 0,
            _ZONES[zone],
        )
    except ValueError:
        return None
    actor = _fast_actor(envelope["actor"])
    subject = envelope["subject"]
    if actor is None or type(subject) is not dict or subject.keys() != _SUBJECT_FIELDS:
        return None
    subject_type, subject_id = subject["type"], subject["id"]
    if (
        type(subject_type) is not str
        or not 1 <= len(subject_type) <= 64
        or type(subject_id) is not str
        or not 1 <= len(subject_id) <= 128
    ):
        return None
    changes = _fast_changes(envelope.get("changes", _MISSING))
    data = envelope.get("data", _MISSING)
    if data is _MISSING:
        data = {}
    elif type(data) is dict and all(type(key) is str for key in data):
        data = dict(data)
    else:
        return None
    if changes is None:
        return None
    return {
        "event_id": uuid.UUID(event_id),
        "type": type_,
        "version": version,
        "occurred_at": moment,
        "org_id": org_id,
        "actor": actor,
        "subject": {"type": subject_type, "id": subject_id},
        "changes": changes,
        "data": data,
        "request_id": request_id,
    }


_MISSING = object()


def _fast_actor(actor: Any) -> dict[str, Any] | None:
    if type(actor) is not dict or not _ACTOR_FIELD_SET >= actor.keys():
        return None
    loaded = {}
    for name in _ACTOR_FIELDS:
        value = actor.get(name)
        if value is not None and type(value) is not str:
            return None
        loaded[name] = value
    return loaded


def _fast_changes(changes: Any) -> dict[str, Any] | None:
    if changes is _MISSING:
        return {}
    if type(changes) is not dict:
        return None
    loaded = {}
    for name, change in changes.items():
        if (
            type(name) is not str
            or type(change) is not dict
            or not _CHANGE_FIELDS >= change.keys()
        ):
            return None
        loaded[name] = {"before": change.get("before"), "after": change.get("after")}
    return loaded


def validate_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    """Check an envelope; raise ValidationFailed with the field errors if bad.

    Returns what ``EnvelopeSchema().load`` returns (UUID, aware datetime,
    defaults filled in), by the fast path when the envelope is plain."""
    loaded = _fast_load(envelope)
    if loaded is not None:
        return loaded
    try:
        return _schema.load(envelope)
    except ValidationError as error:
        raise ValidationFailed(
            "Event envelope is not valid", error.messages_dict
        ) from None


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
