"""What the gateway accepts and answers for the reviews routes.

Request schemas refuse unknown fields and bound every string, so a bad
request is answered 422 before the reviews service is asked; the service
checks again by its own rules (milestones, states, who may act). Names start
with ``Review`` so that they never clash with the other schemas of the
OpenAPI document.
"""

from __future__ import annotations

from typing import Unpack

from marshmallow import RAISE, Schema, fields, validate

from gateway.schemas import FieldOptions

MAX_TEXT = 20_000
STATES = (
    "draft",
    "objectives_agreed",
    "interim_review_done",
    "self_review_submitted",
    "final_review_done",
    "signed_off",
    "closed",
)
STEPS = (
    "agree_objectives",
    "record_interim_review",
    "submit_self_review",
    "record_final_review",
    "sign_off",
    "close",
    "reopen",
)
OBJECTIVE_TYPES = ("school_priority", "team", "personal")
PROGRESS_STATUSES = ("on_track", "at_risk", "met", "partially_met", "not_met")
OBSERVATION_TYPES = ("formal", "drop_in", "learning_walk", "work_scrutiny")
VISIBILITIES = ("participants", "reviewer", "leaders")
EVIDENCE_TARGETS = ("review", "objective", "observation")
COMMENT_TARGETS = ("review", "objective")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _id(**kwargs: Unpack[FieldOptions]) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=64), **kwargs)


def _text(max_length: int = MAX_TEXT, **kwargs: Unpack[FieldOptions]) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


# Requests


class ReviewCycleCreateSchema(_Strict):
    """A school's cycle (its admin) or a trust's (a trust admin); every
    milestone within the cycle, in order."""

    org_id = _id(required=True)
    name = _text(200, required=True)
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(required=True)
    objectives_due = fields.Date(required=True)
    interim_due = fields.Date(required=True)
    final_due = fields.Date(required=True)


class ReviewAddSchema(_Strict):
    reviewee_id = _id(required=True)
    reviewer_id = _id(allow_none=True)


class ReviewReviewerSchema(_Strict):
    reviewer_id = _id(required=True)


class ReviewStepSchema(_Strict):
    """One step of the review; ``text`` is the notes, the self review, the
    sign-off comment or the reason for reopening."""

    step = fields.String(required=True, validate=validate.OneOf(STEPS))
    text = _text(allow_none=True)


class ReviewSelfReviewSchema(_Strict):
    text = _text(required=True)


class ReviewListQuerySchema(_Strict):
    cycle_id = _id()
    org_id = _id()
    state = fields.String(validate=validate.OneOf(STATES))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10**9))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class ReviewObjectiveCreateSchema(_Strict):
    type = fields.String(required=True, validate=validate.OneOf(OBJECTIVE_TYPES))
    description = _text(required=True)
    success_criteria = _text(required=True)
    due_on = fields.Date(required=True)
    cpd_record_ids = fields.List(_id(), validate=validate.Length(max=100))


class ReviewObjectiveUpdateSchema(_Strict):
    type = fields.String(validate=validate.OneOf(OBJECTIVE_TYPES))
    description = _text()
    success_criteria = _text()
    due_on = fields.Date()
    cpd_record_ids = fields.List(_id(), validate=validate.Length(max=100))


class ReviewProgressCreateSchema(_Strict):
    on = fields.Date(required=True)
    status = fields.String(required=True, validate=validate.OneOf(PROGRESS_STATUSES))
    note = _text(allow_none=True)


class ReviewObservationCreateSchema(_Strict):
    type = fields.String(required=True, validate=validate.OneOf(OBSERVATION_TYPES))
    observed_id = _id(required=True)
    observed_on = fields.Date(required=True)
    focus = _text(2000, required=True)
    strengths = _text(allow_none=True)
    areas_for_development = _text(allow_none=True)
    actions = _text(allow_none=True)
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))


class ReviewObservationUpdateSchema(_Strict):
    type = fields.String(validate=validate.OneOf(OBSERVATION_TYPES))
    observed_on = fields.Date()
    focus = _text(2000)
    strengths = _text(allow_none=True)
    areas_for_development = _text(allow_none=True)
    actions = _text(allow_none=True)
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))


class ReviewObservationQuerySchema(_Strict):
    observed_id = _id()


class ReviewAcknowledgeSchema(_Strict):
    response = _text(allow_none=True)


class ReviewEvidenceQuerySchema(_Strict):
    target_type = fields.String(
        required=True, validate=validate.OneOf(EVIDENCE_TARGETS)
    )
    target_id = _id(required=True)


class ReviewEvidenceUploadQuerySchema(ReviewEvidenceQuerySchema):
    """Where the file goes and its name; the body is the file itself."""

    filename = _text(255, required=True)
    title = _text(200)
    sha256 = fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$"))


class ReviewEvidenceLinkSchema(_Strict):
    target_type = fields.String(
        required=True, validate=validate.OneOf(EVIDENCE_TARGETS)
    )
    target_id = _id(required=True)
    url = fields.Url(
        required=True, schemes={"http", "https"}, validate=validate.Length(max=2000)
    )
    title = _text(200, allow_none=True)


class ReviewCommentQuerySchema(_Strict):
    target_type = fields.String(required=True, validate=validate.OneOf(COMMENT_TARGETS))
    target_id = _id(required=True)


class ReviewCommentCreateSchema(ReviewCommentQuerySchema):
    text = _text(required=True)
    visibility = fields.String(validate=validate.OneOf(("shared", "reviewers")))
    parent_id = _id(allow_none=True)


# Answers (documentation only)


class ReviewCycleSchema(Schema):
    id = fields.String()
    org_id = fields.String()
    name = fields.String()
    starts_on = fields.Date()
    ends_on = fields.Date()
    objectives_due = fields.Date()
    interim_due = fields.Date()
    final_due = fields.Date()
    created_by = fields.String()
    created_at = fields.DateTime()
    reviews_created = fields.Integer()


class ReviewDirectorySyncSchema(Schema):
    organisations = fields.Integer()
    users = fields.Integer()


class ReviewCycleListSchema(Schema):
    items = fields.List(fields.Nested(ReviewCycleSchema))


class ReviewObjectiveSchema(Schema):
    id = fields.String()
    review_id = fields.String()
    type = fields.String()
    description = fields.String()
    success_criteria = fields.String()
    due_on = fields.Date()
    status = fields.String()
    cpd_record_ids = fields.List(fields.String())
    progress = fields.List(fields.Dict())


class ReviewSchema(Schema):
    id = fields.String()
    cycle_id = fields.String()
    org_id = fields.String()
    reviewee_id = fields.String()
    reviewer_id = fields.String(allow_none=True)
    state = fields.String()
    interim_notes = fields.String(allow_none=True)
    self_review_text = fields.String(allow_none=True)
    self_review_submitted_at = fields.DateTime(allow_none=True)
    final_notes = fields.String(allow_none=True)
    sign_off_comment = fields.String(allow_none=True)
    signed_off_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    objectives = fields.List(fields.Nested(ReviewObjectiveSchema))
    steps = fields.List(fields.Dict())


class ReviewPageSchema(Schema):
    items = fields.List(fields.Nested(ReviewSchema))
    total = fields.Integer()
    offset = fields.Integer()
    limit = fields.Integer()


class ReviewProgressSchema(Schema):
    id = fields.String()
    objective_id = fields.String()
    on = fields.Date()
    status = fields.String()
    note = fields.String(allow_none=True)
    by = fields.String()
    at = fields.DateTime()


class ReviewObservationSchema(Schema):
    id = fields.String()
    org_id = fields.String()
    type = fields.String()
    observer_id = fields.String()
    observed_id = fields.String()
    observed_on = fields.Date()
    focus = fields.String()
    strengths = fields.String(allow_none=True)
    areas_for_development = fields.String(allow_none=True)
    actions = fields.String(allow_none=True)
    visibility = fields.String()
    state = fields.String(metadata={"description": "draft, shared or acknowledged"})
    response = fields.String(allow_none=True)


class ReviewObservationListSchema(Schema):
    """Summaries without free text; reading one is what counts as a view."""

    items = fields.List(fields.Nested(ReviewObservationSchema))


class ReviewViewSchema(Schema):
    viewer_id = fields.String()
    viewed_at = fields.DateTime()


class ReviewViewListSchema(Schema):
    items = fields.List(fields.Nested(ReviewViewSchema))


class ReviewEvidenceSchema(Schema):
    id = fields.String()
    target_type = fields.String()
    target_id = fields.String()
    kind = fields.String(metadata={"description": "file or link"})
    title = fields.String(allow_none=True)
    filename = fields.String(allow_none=True)
    content_type = fields.String(allow_none=True)
    size = fields.Integer(allow_none=True)
    sha256 = fields.String(allow_none=True)
    url = fields.String(allow_none=True)


class ReviewEvidenceListSchema(Schema):
    items = fields.List(fields.Nested(ReviewEvidenceSchema))


class ReviewCommentSchema(Schema):
    id = fields.String()
    review_id = fields.String()
    target_type = fields.String()
    target_id = fields.String()
    parent_id = fields.String(allow_none=True)
    author_id = fields.String()
    visibility = fields.String()
    text = fields.String()
    created_at = fields.DateTime()


class ReviewCommentListSchema(Schema):
    items = fields.List(fields.Nested(ReviewCommentSchema))


class ReviewReportPartSchema(Schema):
    org_id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    reviews = fields.Integer()
    reviews_by_state = fields.Dict(keys=fields.String(), values=fields.Integer())
    overdue = fields.Dict(keys=fields.String(), values=fields.Integer())
    objectives_by_status = fields.Dict(keys=fields.String(), values=fields.Integer())


class ReviewCycleReportSchema(Schema):
    cycle = fields.Dict()
    today = fields.Date()
    organisations = fields.List(fields.Nested(ReviewReportPartSchema))
    total = fields.Nested(ReviewReportPartSchema)
