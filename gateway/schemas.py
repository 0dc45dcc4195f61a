"""What the gateway accepts and answers, as marshmallow schemas.

Request schemas refuse unknown fields (``unknown = RAISE``) and bound every
string, so that a bad request is answered 422 with field errors before any
service is asked. The services validate again by their own rules (password
policy, usernames in use); the response schemas here document the answers
for the OpenAPI document and are not used to filter them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, Unpack

from marshmallow import RAISE, Schema, fields, validate

MAX_PAGE = 100
DEFAULT_PAGE = 50
ROLES = ("staff", "line_manager", "cpd_lead", "school_admin", "trust_admin", "auditor")
SESSION_MODES = ("token", "cookie")
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"
# Long enough for any password policy; the auth service applies the real one.
MAX_SECRET = 1024


class FieldOptions(TypedDict, total=False):
    """The marshmallow field options that the field helpers of the gateway's
    schemas pass on, so that a misspelt or mistyped option is a type error."""

    required: bool
    allow_none: bool
    load_default: Any
    dump_default: Any
    data_key: str
    load_only: bool
    dump_only: bool
    metadata: Mapping[str, Any]


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


def _text(max_length: int, **kwargs: Unpack[FieldOptions]) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


def _secret() -> fields.String:
    return fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=MAX_SECRET)
    )


def _id(**kwargs: Unpack[FieldOptions]) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=64), **kwargs)


# Requests


class LoginSchema(StrictSchema):
    """Sign in. ``session: "cookie"`` keeps the tokens out of the body."""

    username = _text(254, required=True)
    password = _secret()
    session = fields.String(
        load_default="token",
        validate=validate.OneOf(SESSION_MODES),
        metadata={"description": "token: tokens in the body too; cookie: only set"},
    )


class RefreshSchema(StrictSchema):
    """Rotate the refresh token: from this field, else from the refresh cookie."""

    refresh_token = fields.String(
        load_only=True, validate=validate.Length(min=1, max=MAX_SECRET)
    )
    session = fields.String(
        load_default="token", validate=validate.OneOf(SESSION_MODES)
    )


class PasswordChangeSchema(StrictSchema):
    current_password = _secret()
    new_password = _secret()


class PasswordResetRequestSchema(StrictSchema):
    login = _text(254, required=True, metadata={"description": "username or email"})


class PasswordResetConfirmSchema(StrictSchema):
    code = _secret()
    new_password = _secret()


class RoleGrantSchema(StrictSchema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    org_id = _id(required=True)


class UserFieldsSchema(StrictSchema):
    username = fields.String(
        required=True,
        validate=[
            validate.Length(min=2, max=64),
            validate.Regexp(USERNAME_PATTERN, error="Letters, digits and ._@- only."),
        ],
    )
    given_name = _text(100, required=True)
    family_name = _text(100, required=True)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    line_manager_id = _id(allow_none=True)


class UserCreateSchema(UserFieldsSchema):
    """A new user; with no password the user sets one through a reset."""

    org_id = _id(required=True)
    roles = fields.List(
        fields.Nested(RoleGrantSchema), validate=validate.Length(max=50)
    )
    password = fields.String(
        load_only=True, allow_none=True, validate=validate.Length(min=1, max=MAX_SECRET)
    )


class UserUpdateSchema(UserFieldsSchema):
    """Any subset of a user's fields."""

    org_id = _id()
    roles = fields.List(
        fields.Nested(RoleGrantSchema), validate=validate.Length(max=50)
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(partial=True, **kwargs)


class UsersImportSchema(StrictSchema):
    """CSV text with the header ``username,given_name,family_name,email,roles,
    line_manager_username``; every row is checked, and one bad row imports
    nothing."""

    org_id = _id(required=True)
    csv = fields.String(required=True, validate=validate.Length(min=1))


class PageQuerySchema(StrictSchema):
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10**9))
    limit = fields.Integer(
        load_default=DEFAULT_PAGE, validate=validate.Range(min=1, max=MAX_PAGE)
    )


class UserListQuerySchema(PageQuerySchema):
    org_id = _id()
    query = fields.String(validate=validate.Length(max=100))
    active = fields.Boolean()


# Responses


class RoleOutSchema(Schema):
    role = fields.String()
    org_id = fields.String()


class UserSchema(Schema):
    id = fields.String()
    org_id = fields.String()
    username = fields.String()
    given_name = fields.String()
    family_name = fields.String()
    email = fields.String()
    active = fields.Boolean()
    line_manager_id = fields.String(allow_none=True)
    roles = fields.List(fields.Nested(RoleOutSchema))
    has_password = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class UserCreatedSchema(UserSchema):
    invitation_sent = fields.Boolean(
        metadata={
            "description": "false when the notify service could not take the "
            "invitation email; if it was not running, auth sends it again "
            "by itself for a day, and POST .../invitation sends it at once"
        }
    )


class InvitationSentSchema(Schema):
    invitation_sent = fields.Boolean()
    expires_at = fields.DateTime(
        metadata={"description": "until when the set-password code works"}
    )


class UserPageSchema(Schema):
    items = fields.List(fields.Nested(UserSchema))
    total = fields.Integer()
    offset = fields.Integer()
    limit = fields.Integer()


class OrganisationSchema(Schema):
    id = fields.String()
    kind = fields.String(metadata={"description": "trust or school"})
    name = fields.String()
    parent_trust_id = fields.String(allow_none=True)
    timezone = fields.String()
    created_at = fields.DateTime()


class OrganisationListSchema(Schema):
    items = fields.List(fields.Nested(OrganisationSchema))


class RoleSchema(Schema):
    role = fields.String()
    description = fields.String()


class RoleListSchema(Schema):
    items = fields.List(fields.Nested(RoleSchema))


class TokenSchema(Schema):
    """Tokens are left out of the body when the client asked for cookies."""

    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserSchema)


class ImportResultSchema(Schema):
    imported = fields.Integer()
    users = fields.List(fields.Nested(UserSchema))
    invitations_sent = fields.Boolean(
        metadata={
            "description": "false when notify could not take every invitation; "
            "if it was not running, auth sends them again by itself for a day"
        }
    )


class SessionsRevokedSchema(Schema):
    revoked = fields.Integer()
    session_ids = fields.List(fields.String())


class EmptySchema(Schema):
    pass


class HealthSchema(Schema):
    status = fields.String()


class ReadySchema(Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())


class ProblemSchema(Schema):
    """RFC 9457 problem document (``application/problem+json``)."""

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String(metadata={"description": "stable, UPPER_SNAKE"})
    errors = fields.Dict(metadata={"description": "field name to its messages"})
    request_id = fields.String()
