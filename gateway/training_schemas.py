"""What the training routes accept and answer, as marshmallow schemas.

Request schemas refuse unknown fields and bound every string and number, so
that a bad request is answered 422 before the training service is asked;
the service validates again by its own rules (overlapping sessions, states,
budgets). Response schemas document the answers for the OpenAPI document.
Money is a string with two decimals; times are ISO 8601.
"""

from __future__ import annotations

from typing import Unpack

from marshmallow import RAISE, Schema, fields, validate

from gateway.schemas import FieldOptions

NON_NEGATIVE = validate.Range(min=0)
MAX_ID = 64


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _text(max_length: int, **kwargs: Unpack[FieldOptions]) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


def _id(**kwargs: Unpack[FieldOptions]) -> fields.String:
    return _text(MAX_ID, **kwargs)


def _money(**kwargs: Unpack[FieldOptions]) -> fields.Decimal:
    return fields.Decimal(places=2, as_string=True, validate=NON_NEGATIVE, **kwargs)


def _hours(**kwargs: Unpack[FieldOptions]) -> fields.Decimal:
    return fields.Decimal(
        places=2, as_string=True, validate=validate.Range(min=0, max=1000), **kwargs
    )


def _year(**kwargs: Unpack[FieldOptions]) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=2000, max=2100), **kwargs)


# Requests


class TrainingCourseCreateSchema(_Strict):
    """A draft course in a school's or a trust's catalogue."""

    org_id = _id(required=True)
    title = _text(200, required=True)
    description = fields.String(validate=validate.Length(max=5000))
    provider_kind = fields.String(validate=validate.OneOf(("internal", "external")))
    provider_name = _text(200, allow_none=True)
    category = _text(100, allow_none=True)
    cpd_hours = _hours(required=True)
    fee = _money()
    audience = _text(200, allow_none=True)


class TrainingCourseUpdateSchema(_Strict):
    title = _text(200)
    description = fields.String(validate=validate.Length(max=5000))
    provider_kind = fields.String(validate=validate.OneOf(("internal", "external")))
    provider_name = _text(200, allow_none=True)
    category = _text(100, allow_none=True)
    cpd_hours = _hours()
    fee = _money()
    audience = _text(200, allow_none=True)


class TrainingCourseQuerySchema(_Strict):
    status = fields.String(validate=validate.OneOf(("draft", "published", "archived")))


class TrainingSessionInSchema(_Strict):
    """A session; a time without an offset is the school's local time."""

    starts_at = fields.String(required=True, validate=validate.Length(min=10, max=40))
    ends_at = fields.String(required=True, validate=validate.Length(min=10, max=40))
    venue = _text(200, allow_none=True)
    online_link = fields.Url(allow_none=True)


class TrainingEventCreateSchema(_Strict):
    course_id = _id(required=True)
    org_id = _id()
    capacity = fields.Integer(required=True, validate=validate.Range(min=0, max=10000))
    facilitator = _text(200, allow_none=True)
    booking_deadline = fields.String(
        allow_none=True, validate=validate.Length(min=10, max=40)
    )
    sessions = fields.List(
        fields.Nested(TrainingSessionInSchema),
        required=True,
        validate=validate.Length(min=1, max=50),
    )


class TrainingEventUpdateSchema(_Strict):
    capacity = fields.Integer(validate=validate.Range(min=0, max=10000))
    facilitator = _text(200, allow_none=True)
    booking_deadline = fields.String(
        allow_none=True, validate=validate.Length(min=10, max=40)
    )
    sessions = fields.List(
        fields.Nested(TrainingSessionInSchema), validate=validate.Length(min=1, max=50)
    )


class TrainingEventQuerySchema(_Strict):
    course_id = _id()
    status = fields.String(
        validate=validate.OneOf(("draft", "scheduled", "completed", "cancelled"))
    )


class TrainingBookingRequestSchema(_Strict):
    """Ask for a place; travel and cover make up the true cost."""

    travel_cost = _money()
    cover_needed = fields.Boolean()


class TrainingBookStaffSchema(TrainingBookingRequestSchema):
    user_id = _id(required=True)


class TrainingBookingQuerySchema(_Strict):
    event_id = _id()
    status = _text(20)
    mine = fields.Boolean(load_default=False)


class TrainingDeclineSchema(_Strict):
    reason = _text(2000, required=True)


class TrainingAttendanceEntrySchema(_Strict):
    booking_id = _id(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf(("attended", "partial", "absent"))
    )


class TrainingAttendanceSchema(_Strict):
    entries = fields.List(
        fields.Nested(TrainingAttendanceEntrySchema),
        required=True,
        validate=validate.Length(max=1000),
    )


class TrainingCpdRecordCreateSchema(_Strict):
    kind = fields.String(validate=validate.OneOf(("external", "informal")))
    activity = fields.String(
        required=True,
        validate=validate.OneOf(
            ("course", "conference", "reading", "webinar", "coaching", "visit", "other")
        ),
    )
    title = _text(200, required=True)
    activity_date = fields.Date(required=True)
    hours = _hours(required=True)
    reflection = fields.String(validate=validate.Length(max=10000))
    evidence_links = fields.List(fields.Url(), validate=validate.Length(max=20))


class TrainingPersonQuerySchema(_Strict):
    user_id = _id()


class TrainingProgressQuerySchema(_Strict):
    year = _year(required=True)
    user_id = _id()


class TrainingEvaluationSchema(_Strict):
    rating = fields.Integer(required=True, validate=validate.Range(min=1, max=5))
    will_change = fields.String(validate=validate.Length(max=5000))


class TrainingFollowUpSchema(_Strict):
    impact = _text(5000, required=True)
    impact_rating = fields.Integer(validate=validate.Range(min=1, max=5))


class TrainingExternalRequestCreateSchema(_Strict):
    provider = _text(200, required=True)
    title = _text(200, required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    days = fields.Decimal(
        places=1, as_string=True, required=True, validate=validate.Range(min=0.5)
    )
    hours = _hours(required=True)
    fee = _money(required=True)
    travel_cost = _money()
    cover_needed = fields.Boolean(required=True)
    rationale = _text(5000, required=True)
    intended_impact = _text(5000, required=True)


class TrainingAbsenceCreateSchema(_Strict):
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    days = fields.Decimal(
        places=1, as_string=True, required=True, validate=validate.Range(min=0.5)
    )
    reason = _text(2000, required=True)
    cover_needed = fields.Boolean(required=True)


class TrainingAbsenceQuerySchema(_Strict):
    org_id = _id()


class TrainingSettingsSchema(_Strict):
    name = _text(200)
    timezone = _text(64)
    cover_daily_rate = _money()
    cpd_lead_approval = fields.Boolean()
    budget_policy = fields.String(validate=validate.OneOf(("warn", "refuse")))
    followup_weeks = fields.Integer(validate=validate.Range(min=1, max=52))


class TrainingStaffProfileSchema(_Strict):
    department = _text(100, allow_none=True)
    job_role = _text(32)


class TrainingBudgetSchema(_Strict):
    year = _year(required=True)
    amount = _money(required=True)


class TrainingHoursTargetSchema(_Strict):
    job_role = _text(32, required=True)
    year = _year(required=True)
    hours = _hours(required=True)


class TrainingFeedQuerySchema(_Strict):
    token = fields.String(required=True, validate=validate.Length(min=20, max=100))


class TrainingReportQuerySchema(_Strict):
    """``start`` inclusive, ``end`` exclusive; default the academic year."""

    org_id = _id()
    start = fields.Date()
    end = fields.Date()
    year = _year()
    group_by = fields.String(
        validate=validate.OneOf(("person", "department", "school", "trust"))
    )


# Answers


class TrainingCourseSchema(Schema):
    id = fields.String()
    org_id = fields.String()
    title = fields.String()
    description = fields.String()
    provider_kind = fields.String()
    provider_name = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    cpd_hours = fields.Float()
    fee = fields.String()
    audience = fields.String(allow_none=True)
    status = fields.String()


class TrainingCourseListSchema(Schema):
    items = fields.List(fields.Nested(TrainingCourseSchema))


class TrainingSessionSchema(Schema):
    id = fields.String()
    starts_at = fields.String()
    ends_at = fields.String()
    local_starts_at = fields.String()
    local_ends_at = fields.String()
    venue = fields.String(allow_none=True)
    online_link = fields.String(allow_none=True)


class TrainingEventSchema(Schema):
    id = fields.String()
    course_id = fields.String()
    title = fields.String()
    org_id = fields.String()
    status = fields.String()
    capacity = fields.Integer()
    facilitator = fields.String(allow_none=True)
    timezone = fields.String()
    booking_deadline = fields.String(allow_none=True)
    starts_at = fields.String()
    ends_at = fields.String()
    booked = fields.Integer()
    waitlisted = fields.Integer()
    sessions = fields.List(fields.Nested(TrainingSessionSchema))


class TrainingEventListSchema(Schema):
    items = fields.List(fields.Nested(TrainingEventSchema))


class TrainingBookingSchema(Schema):
    id = fields.String()
    event_id = fields.String()
    user_id = fields.String()
    org_id = fields.String()
    status = fields.String()
    waitlist_position = fields.Integer(allow_none=True)
    deadline = fields.String(allow_none=True)
    decline_reason = fields.String(allow_none=True)
    fee = fields.String()
    cover_cost = fields.String()
    travel_cost = fields.String()
    total_cost = fields.String()
    cover_needed = fields.Boolean()
    calendar_uid = fields.String()
    calendar_sequence = fields.Integer()
    warnings = fields.List(fields.String())


class TrainingBookingListSchema(Schema):
    items = fields.List(fields.Nested(TrainingBookingSchema))


class TrainingAnswerSchema(Schema):
    """An object whose fields the operation's description names."""

    class Meta:
        unknown = "include"


class TrainingFeedSchema(Schema):
    token = fields.String()
    path = fields.String()
