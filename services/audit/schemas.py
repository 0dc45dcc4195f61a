"""What the audit RPCs accept: filters and page parameters, validated with
unknown fields refused."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from plumbing.errors import ValidationFailed

OUTCOMES = ("succeeded", "failed", "locked", "throttled", "logged_out", "refreshed")
ORDERS = ("newest", "oldest")
EXPORT_FORMATS = ("jsonl", "csv")
MAX_PAGE = 100
MAX_EXPORT_PAGE = 5000


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class TimeRange(_Strict):
    since = fields.AwareDateTime(load_default=None)
    until = fields.AwareDateTime(load_default=None)
    org_id = fields.String(load_default=None, validate=validate.Length(max=64))


class LoginFiltersSchema(TimeRange):
    user_id = fields.String(load_default=None, validate=validate.Length(max=64))
    outcome = fields.String(load_default=None, validate=validate.OneOf(OUTCOMES))
    reason = fields.String(load_default=None, validate=validate.Length(max=64))
    ip = fields.String(load_default=None, validate=validate.Length(max=64))


class ChangeFiltersSchema(TimeRange):
    entity_type = fields.String(load_default=None, validate=validate.Length(max=64))
    entity_id = fields.String(load_default=None, validate=validate.Length(max=128))
    actor_user_id = fields.String(load_default=None, validate=validate.Length(max=64))
    type = fields.String(load_default=None, validate=validate.Length(max=100))


class PageSchema(_Strict):
    cursor = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=0)
    )
    limit = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=MAX_PAGE)
    )
    order = fields.String(load_default="newest", validate=validate.OneOf(ORDERS))


class ExportSchema(_Strict):
    from_seq = fields.Integer(load_default=1, validate=validate.Range(min=1))
    to_seq = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1)
    )
    format = fields.String(
        load_default="jsonl", validate=validate.OneOf(EXPORT_FORMATS)
    )
    cursor = fields.String(load_default=None, allow_none=True)
    limit = fields.Integer(
        load_default=1000, validate=validate.Range(min=1, max=MAX_EXPORT_PAGE)
    )


class EraseSubjectSchema(_Strict):
    subject_type = fields.String(required=True, validate=validate.Length(min=1, max=64))
    subject_id = fields.String(required=True, validate=validate.Length(min=1, max=128))


def load(schema: Schema, data: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``data``; raise ValidationFailed with the field errors."""
    try:
        return schema.load({k: v for k, v in (data or {}).items() if v is not None})
    except ValidationError as error:
        raise ValidationFailed(
            "The request is not valid", error.messages_dict
        ) from None
