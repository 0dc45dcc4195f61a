"""Input validation the services share: marshmallow schemas that refuse
unknown fields, and loading that answers VALIDATION_FAILED."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError

from plumbing.errors import ValidationFailed


class StrictSchema(Schema):
    """A schema that refuses fields it does not name."""

    class Meta:
        unknown = RAISE


def load(schema: Schema, data: Any) -> dict[str, Any]:
    """Validate input with a schema; ValidationFailed with field errors if bad."""
    if not isinstance(data, dict):
        raise ValidationFailed("Expected an object", {"_schema": ["Not an object."]})
    try:
        return schema.load(data)
    except ValidationError as error:
        raise ValidationFailed(fields=error.messages_dict) from None
