"""Input schemas of the notify service's RPC methods (marshmallow)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from plumbing.validation import load as load  # re-exported for this service
from services.notify.catalogue import CATEGORIES
from services.notify.models import EMAIL_STATES


class PageSchema(Schema):
    offset = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=1_000_000_000)
    )
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class InboxSchema(PageSchema):
    unread_only = fields.Boolean(load_default=False)


class PreferencesSchema(Schema):
    daily_digest = fields.Boolean()
    email = fields.Dict(
        keys=fields.String(validate=validate.OneOf(CATEGORIES)),
        values=fields.Boolean(required=True),
    )


class EmailQuerySchema(PageSchema):
    status = fields.String(load_default="failed", validate=validate.OneOf(EMAIL_STATES))
    org_id = fields.String(load_default=None, validate=validate.Length(max=36))


class RecipientSchema(Schema):
    user_id = fields.String(required=True, validate=validate.Length(min=1, max=36))
    org_id = fields.String(required=True, validate=validate.Length(min=1, max=36))
    email = fields.Email(required=True)
    given_name = fields.String(load_default=None, validate=validate.Length(max=100))
    family_name = fields.String(load_default=None, validate=validate.Length(max=100))
    username = fields.String(required=True, validate=validate.Length(min=1, max=150))


class ResetSchema(Schema):
    recipient = fields.Nested(RecipientSchema, required=True)
    code = fields.String(required=True, validate=validate.Length(min=8, max=64))
    expires_at = fields.AwareDateTime(required=True)


class InvitationSchema(Schema):
    recipient = fields.Nested(RecipientSchema, required=True)
    code = fields.String(load_default=None, validate=validate.Length(min=8, max=64))
    expires_at = fields.AwareDateTime(load_default=None)


class InvitationsSchema(Schema):
    invitations = fields.List(
        fields.Nested(InvitationSchema),
        required=True,
        validate=validate.Length(max=5000),
    )
