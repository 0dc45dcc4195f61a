"""Input validation (unknown fields are refused) and output shapes."""

from __future__ import annotations

from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
)

from plumbing.validation import StrictSchema
from plumbing.validation import load as load  # re-exported for this service
from services.auth.models import ORG_KINDS
from services.auth.roles import ROLES

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"
MAX_PAGE = 100


def _trimmed(max_length: int) -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=max_length))


def _username() -> fields.String:
    return fields.String(
        required=True,
        validate=[
            validate.Length(min=2, max=64),
            validate.Regexp(USERNAME_PATTERN, error="Letters, digits and ._@- only."),
        ],
    )


class RoleGrantSchema(StrictSchema):
    role = fields.String(required=True, validate=validate.OneOf(list(ROLES)))
    org_id = fields.String(required=True, validate=validate.Length(min=1, max=36))


class UserFieldsSchema(StrictSchema):
    username = _username()
    given_name = _trimmed(100)
    family_name = _trimmed(100)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    line_manager_id = fields.String(allow_none=True, load_default=None)

    @post_load
    def _lower_username(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "username" in data:
            data["username"] = data["username"].lower()
        for key in ("given_name", "family_name", "email"):
            if key in data:
                data[key] = data[key].strip()
        return data


class UserCreateSchema(UserFieldsSchema):
    """``create_user`` input. With no password the user sets one via reset."""

    org_id = fields.String(required=True, validate=validate.Length(min=1, max=36))
    roles = fields.List(fields.Nested(RoleGrantSchema), load_default=list)
    password = fields.String(load_default=None, allow_none=True)


class UserUpdateSchema(UserFieldsSchema):
    """``update_user`` input: any subset of the fields."""

    org_id = fields.String(validate=validate.Length(min=1, max=36))
    roles = fields.List(fields.Nested(RoleGrantSchema))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(partial=True, **kwargs)


class ImportRowSchema(StrictSchema):
    """One CSV row of ``import_users``."""

    username = _username()
    given_name = _trimmed(100)
    family_name = _trimmed(100)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    roles = fields.String(load_default="")
    line_manager_username = fields.String(load_default="")


class ListUsersSchema(StrictSchema):
    org_id = fields.String(allow_none=True, load_default=None)
    query = fields.String(
        allow_none=True, load_default=None, validate=validate.Length(max=100)
    )
    active = fields.Boolean(allow_none=True, load_default=None)
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=MAX_PAGE)
    )


class OrganisationCreateSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(ORG_KINDS))
    name = _trimmed(200)
    parent_trust_id = fields.String(allow_none=True, load_default=None)
    timezone = fields.String(load_default="Europe/London")

    @validates("timezone")
    def _known_zone(self, value: str, **_: Any) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("Unknown time zone.") from None


class RoleOutSchema(Schema):
    role = fields.String()
    org_id = fields.String()


class UserOutSchema(Schema):
    id = fields.String()
    org_id = fields.String()
    username = fields.String()
    given_name = fields.String()
    family_name = fields.String()
    email = fields.String()
    active = fields.Boolean()
    line_manager_id = fields.String(allow_none=True)
    roles = fields.List(fields.Nested(RoleOutSchema))
    has_password = fields.Method("_has_password")
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    def _has_password(self, user: Any) -> bool:
        return user.password_hash is not None


class OrganisationOutSchema(Schema):
    id = fields.String()
    kind = fields.String()
    name = fields.String()
    parent_trust_id = fields.String(allow_none=True)
    timezone = fields.String()
    created_at = fields.DateTime()


_user_out = UserOutSchema()
_org_out = OrganisationOutSchema()


def dump_user(user: Any) -> dict[str, Any]:
    """A user as answered over RPC: no password hash, no lockout counters."""
    return _user_out.dump(user)


def dump_org(org: Any) -> dict[str, Any]:
    return _org_out.dump(org)
