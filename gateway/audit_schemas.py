"""What the audit routes accept and answer, as marshmallow schemas.

Query schemas refuse unknown parameters and bound every value, so a bad
request is answered 422 before the audit service is asked; the audit service
validates again by the same rules. The answer schemas document the shapes of
:mod:`services.audit.queries` for the OpenAPI document and are not used to
filter the answers. Every name starts with ``Audit`` so that the components
apispec registers from here never collide with those of
:mod:`gateway.schemas`.
"""

from __future__ import annotations

from typing import Unpack

from marshmallow import RAISE, Schema, fields, validate

from gateway.schemas import FieldOptions

MAX_PAGE = 100
DEFAULT_PAGE = 50
ORDERS = ("newest", "oldest")
OUTCOMES = ("succeeded", "failed", "locked", "throttled", "logged_out", "refreshed")
EXPORT_FORMATS = ("jsonl", "csv")


class _StrictQuery(Schema):
    class Meta:
        unknown = RAISE


def _text(max_length: int, **kwargs: Unpack[FieldOptions]) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


# Requests


class AuditPageQuerySchema(_StrictQuery):
    """Cursor pages by sequence number, newest or oldest first."""

    cursor = fields.Integer(
        validate=validate.Range(min=0, max=2**62),
        metadata={"description": "next_cursor of the previous page"},
    )
    limit = fields.Integer(
        load_default=DEFAULT_PAGE, validate=validate.Range(min=1, max=MAX_PAGE)
    )
    order = fields.String(load_default="newest", validate=validate.OneOf(ORDERS))


class AuditTimeRangeQuerySchema(AuditPageQuerySchema):
    since = fields.AwareDateTime(
        metadata={"description": "ISO 8601 with offset; entries at or after"}
    )
    until = fields.AwareDateTime(
        metadata={"description": "ISO 8601 with offset; entries before"}
    )
    org_id = _text(64, metadata={"description": "one of the caller's organisations"})


class AuditLoginQuerySchema(AuditTimeRangeQuerySchema):
    """Filters of the login log."""

    user_id = _text(64)
    outcome = fields.String(validate=validate.OneOf(OUTCOMES))
    reason = _text(64, metadata={"description": "e.g. bad_password"})
    ip = _text(64)


class AuditChangeQuerySchema(AuditTimeRangeQuerySchema):
    """Filters of the change log."""

    entity_type = _text(64, metadata={"description": "the subject's type, e.g. user"})
    entity_id = _text(128)
    actor_user_id = _text(64)
    type = _text(100, metadata={"description": "event type, e.g. auth.user_updated"})


class AuditExportQuerySchema(_StrictQuery):
    """An export of the entries from ``from_seq`` to ``to_seq`` (default: head)."""

    format = fields.String(
        load_default="jsonl", validate=validate.OneOf(EXPORT_FORMATS)
    )
    from_seq = fields.Integer(load_default=1, validate=validate.Range(min=1))
    to_seq = fields.Integer(validate=validate.Range(min=1))


class AuditCheckpointQuerySchema(AuditPageQuerySchema):
    limit = fields.Integer(
        load_default=MAX_PAGE, validate=validate.Range(min=1, max=MAX_PAGE)
    )


class AuditDeadLetterQuerySchema(_StrictQuery):
    cursor = fields.Integer(validate=validate.Range(min=0, max=2**62))
    limit = fields.Integer(
        load_default=DEFAULT_PAGE, validate=validate.Range(min=1, max=MAX_PAGE)
    )


class AuditEraseKeySchema(_StrictQuery):
    """Whose key: the subject's type (the id is in the path)."""

    subject_type = _text(
        64, load_default="user", metadata={"description": "e.g. user (the default)"}
    )


# Answers


class AuditLoginSchema(Schema):
    seq = fields.Integer()
    event_id = fields.String()
    type = fields.String()
    outcome = fields.String(metadata={"description": "|".join(OUTCOMES)})
    reason = fields.String(allow_none=True)
    occurred_at = fields.String()
    org_id = fields.String()
    user_id = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    data = fields.Dict(metadata={"description": "personal values decrypted"})
    hash = fields.String()


class AuditLoginPageSchema(Schema):
    items = fields.List(fields.Nested(AuditLoginSchema))
    next_cursor = fields.Integer(allow_none=True)


class AuditFieldChangeSchema(Schema):
    field = fields.String()
    before = fields.Raw(
        allow_none=True, metadata={"description": '"[erased]" once the key is gone'}
    )
    after = fields.Raw(allow_none=True)


class AuditChangeSchema(Schema):
    seq = fields.Integer()
    event_id = fields.String()
    type = fields.String()
    occurred_at = fields.String()
    org_id = fields.String()
    actor = fields.Dict()
    subject = fields.Dict()
    changes = fields.List(fields.Nested(AuditFieldChangeSchema))
    data = fields.Dict()
    request_id = fields.String(allow_none=True)
    hash = fields.String()


class AuditChangePageSchema(Schema):
    items = fields.List(fields.Nested(AuditChangeSchema))
    next_cursor = fields.Integer(allow_none=True)


class AuditCheckpointSchema(Schema):
    """A signed checkpoint, as in an export (``docs/audit-log-format.md``)."""

    record = fields.String()
    checkpoint = fields.Dict(metadata={"description": "the signed statement"})
    signature = fields.String(metadata={"description": "Ed25519, base64url"})


class AuditCheckpointPageSchema(Schema):
    items = fields.List(fields.Nested(AuditCheckpointSchema))
    next_cursor = fields.Integer(allow_none=True)


class AuditPublicKeySchema(Schema):
    public_key = fields.String(metadata={"description": "PEM"})
    key_id = fields.String()


class AuditProblemSchema(Schema):
    seq = fields.Integer()
    reason = fields.String()


class AuditVerifySchema(Schema):
    """The chain's state: ``ok``, the first bad seq and the problems found."""

    ok = fields.Boolean()
    first_bad_seq = fields.Integer(allow_none=True)
    head_seq = fields.Integer()
    head_hash = fields.String()
    entries = fields.Integer()
    checkpoints = fields.Integer()
    first_seq = fields.Integer(allow_none=True)
    last_seq = fields.Integer(allow_none=True)
    last_hash = fields.String(allow_none=True)
    sealed = fields.Boolean()
    problems = fields.List(
        fields.Nested(AuditProblemSchema), metadata={"description": "the first 20"}
    )


class AuditDeadLetterSchema(Schema):
    id = fields.Integer()
    received_at = fields.String()
    reason = fields.String()
    detail = fields.String()
    message_id = fields.String(allow_none=True)
    exchange = fields.String(allow_none=True)
    routing_key = fields.String(allow_none=True)
    size = fields.Integer()
    body_sha256 = fields.String()


class AuditDeadLetterPageSchema(Schema):
    total = fields.Integer()
    items = fields.List(fields.Nested(AuditDeadLetterSchema))
    next_cursor = fields.Integer(allow_none=True)
    ingestion = fields.Dict(metadata={"description": "the ingestion loop's counters"})


class AuditKeyErasedSchema(Schema):
    subject = fields.String()
    key_id = fields.String()
    erased_at = fields.String()
