"""What the training service accepts, as marshmallow schemas.

Every schema refuses unknown fields and bounds every string; negative
capacities, fees and hours are refused here with field errors. Rules that
need the database (overlapping sessions, states) live in the domain modules.
"""

from __future__ import annotations

from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from plumbing.errors import ValidationFailed

COURSE_STATUSES = ("draft", "published", "archived")
PROVIDER_KINDS = ("internal", "external")
ATTENDANCE = ("attended", "partial", "absent")
ACTIVITIES = (
    "course",
    "conference",
    "reading",
    "webinar",
    "coaching",
    "visit",
    "other",
)
BUDGET_POLICIES = ("warn", "refuse")
NON_NEGATIVE = validate.Range(min=0)


def _text(max_length: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


def _money(**kwargs: Any) -> fields.Decimal:
    return fields.Decimal(places=2, validate=NON_NEGATIVE, **kwargs)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class CourseSchema(StrictSchema):
    org_id = _text(36, required=True)
    title = _text(200, required=True)
    description = fields.String(validate=validate.Length(max=5000), load_default="")
    provider_kind = fields.String(
        validate=validate.OneOf(PROVIDER_KINDS), load_default="internal"
    )
    provider_name = _text(200, load_default=None, allow_none=True)
    category = _text(100, load_default=None, allow_none=True)
    cpd_hours = fields.Decimal(
        places=2, required=True, validate=validate.Range(min=0, max=1000)
    )
    fee = _money(load_default=0)
    audience = _text(200, load_default=None, allow_none=True)


class SessionSchema(StrictSchema):
    starts_at = fields.DateTime(required=True)
    ends_at = fields.DateTime(required=True)
    venue = _text(200, load_default=None, allow_none=True)
    online_link = fields.Url(load_default=None, allow_none=True)


class EventSchema(StrictSchema):
    course_id = _text(36, required=True)
    org_id = _text(36, load_default=None)
    capacity = fields.Integer(required=True, validate=NON_NEGATIVE)
    facilitator = _text(200, load_default=None, allow_none=True)
    booking_deadline = fields.DateTime(load_default=None, allow_none=True)
    sessions = fields.List(
        fields.Nested(SessionSchema), required=True, validate=validate.Length(max=50)
    )


class EventUpdateSchema(StrictSchema):
    capacity = fields.Integer(validate=NON_NEGATIVE)
    facilitator = _text(200, allow_none=True)
    booking_deadline = fields.DateTime(allow_none=True)
    sessions = fields.List(
        fields.Nested(SessionSchema), validate=validate.Length(min=1, max=50)
    )


class BookingCostSchema(StrictSchema):
    travel_cost = _money(load_default=0)
    cover_needed = fields.Boolean(load_default=False)


class DeclineSchema(StrictSchema):
    reason = _text(2000, required=True)


class AttendanceSchema(StrictSchema):
    booking_id = _text(36, required=True)
    status = fields.String(required=True, validate=validate.OneOf(ATTENDANCE))


class CpdRecordSchema(StrictSchema):
    kind = fields.String(
        load_default="informal", validate=validate.OneOf(("external", "informal"))
    )
    activity = fields.String(required=True, validate=validate.OneOf(ACTIVITIES))
    title = _text(200, required=True)
    activity_date = fields.Date(required=True)
    hours = fields.Decimal(
        places=2, required=True, validate=validate.Range(min=0, max=1000)
    )
    reflection = fields.String(validate=validate.Length(max=10000), load_default=None)
    evidence_links = fields.List(
        fields.Url(), load_default=list, validate=validate.Length(max=20)
    )


class EvaluationSchema(StrictSchema):
    rating = fields.Integer(required=True, validate=validate.Range(min=1, max=5))
    will_change = fields.String(validate=validate.Length(max=5000), load_default="")


class FollowUpSchema(StrictSchema):
    impact = fields.String(required=True, validate=validate.Length(min=1, max=5000))
    impact_rating = fields.Integer(
        load_default=None, validate=validate.Range(min=1, max=5)
    )


class ExternalRequestSchema(StrictSchema):
    provider = _text(200, required=True)
    title = _text(200, required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    days = fields.Decimal(places=1, required=True, validate=validate.Range(min=0.5))
    hours = fields.Decimal(places=2, required=True, validate=NON_NEGATIVE)
    fee = _money(required=True)
    travel_cost = _money(load_default=0)
    cover_needed = fields.Boolean(required=True)
    rationale = fields.String(required=True, validate=validate.Length(min=1, max=5000))
    intended_impact = fields.String(
        required=True, validate=validate.Length(min=1, max=5000)
    )


class AbsenceSchema(StrictSchema):
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    days = fields.Decimal(places=1, required=True, validate=validate.Range(min=0.5))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    cover_needed = fields.Boolean(required=True)


class SettingsSchema(StrictSchema):
    name = _text(200)
    timezone = _text(64)
    cover_daily_rate = _money()
    cpd_lead_approval = fields.Boolean()
    budget_policy = fields.String(validate=validate.OneOf(BUDGET_POLICIES))
    followup_weeks = fields.Integer(validate=validate.Range(min=1, max=52))


class StaffProfileSchema(StrictSchema):
    department = _text(100, allow_none=True)
    job_role = _text(32)


class BudgetSchema(StrictSchema):
    year = fields.Integer(required=True, validate=validate.Range(min=2000, max=2100))
    amount = _money(required=True)


class HoursTargetSchema(StrictSchema):
    job_role = _text(32, required=True)
    year = fields.Integer(required=True, validate=validate.Range(min=2000, max=2100))
    hours = fields.Decimal(places=2, required=True, validate=NON_NEGATIVE)


class ReportSchema(StrictSchema):
    org_id = _text(36, load_default=None)
    start = fields.Date(load_default=None)
    end = fields.Date(load_default=None)
    year = fields.Integer(load_default=None, validate=validate.Range(min=2000))
    group_by = fields.String(
        load_default="person",
        validate=validate.OneOf(("person", "department", "school", "trust")),
    )


class NoticeContextSchema(StrictSchema):
    """What the notify service asks a notice's context for: exactly one of a
    booking, an event and an external request."""

    booking_id = _text(36, load_default=None, allow_none=True)
    event_id = _text(36, load_default=None, allow_none=True)
    external_request_id = _text(36, load_default=None, allow_none=True)

    @validates_schema(skip_on_field_errors=True)
    def _exactly_one(self, data: dict[str, Any], **kwargs: Any) -> None:
        keys = ("booking_id", "event_id", "external_request_id")
        given = [key for key in keys if data.get(key)]
        if len(given) != 1:
            message = "Give exactly one of booking_id, event_id and external_request_id"
            raise ValidationError({key: [message] for key in keys})


class SessionWindowSchema(StrictSchema):
    """A window of session starts, ``[start, end)``, and a page of it. Times
    must carry their offset: there is no school whose zone they could be in."""

    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)
    offset = fields.Integer(strict=True, load_default=0, validate=NON_NEGATIVE)
    limit = fields.Integer(
        strict=True, load_default=500, validate=validate.Range(min=1, max=1000)
    )

    @validates_schema(skip_on_field_errors=True)
    def _end_after_start(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["end"] <= data["start"]:
            raise ValidationError({"end": ["Must be after start"]})


def load(schema: Schema, data: Any) -> dict[str, Any]:
    """Load with a schema; ValidationFailed with the field errors if bad."""
    try:
        return schema.load(data if data is not None else {})
    except ValidationError as error:
        messages = error.messages
        if not isinstance(messages, dict):
            messages = {"_schema": messages}
        raise ValidationFailed("The request is not valid", messages) from None
