"""Input validation (unknown fields are refused) and output shapes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from marshmallow import (
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from plumbing.validation import StrictSchema
from plumbing.validation import load as load  # re-exported for this service
from services.reviews.models import (
    COMMENT_TARGETS,
    COMMENT_VISIBILITIES,
    EVIDENCE_TARGETS,
    OBJECTIVE_TYPES,
    OBSERVATION_TYPES,
    PROGRESS_STATUSES,
    REVIEW_STATES,
    VISIBILITIES,
)

MAX_TEXT = 20_000
MAX_PAGE = 100


def _id(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=36), **kwargs)


def _text(max_length: int = MAX_TEXT, **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


class WholeNumber(fields.Integer):
    """An integer given as one: not ``"7"``, ``7.5`` or ``True``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class NoticeContextSchema(StrictSchema):
    """``notification_context``: exactly one of a review and an observation."""

    review_id = _id()
    observation_id = _id()

    @validates_schema(skip_on_field_errors=True)
    def _exactly_one(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = [key for key in ("review_id", "observation_id") if key in data]
        if len(given) != 1:
            message = "Give exactly one of review_id and observation_id."
            raise ValidationError({"review_id": [message], "observation_id": [message]})


class MilestoneWindowSchema(StrictSchema):
    """``milestones_due``: milestones from ``today`` to ``today + days``."""

    today = fields.Date(required=True)
    days = WholeNumber(required=True, validate=validate.Range(min=0, max=60))
    offset = WholeNumber(load_default=0, validate=validate.Range(min=0))
    limit = WholeNumber(load_default=500, validate=validate.Range(min=1, max=1000))

    @validates_schema(skip_on_field_errors=True)
    def _window_fits(self, data: dict[str, Any], **kwargs: Any) -> None:
        try:
            data["today"] + timedelta(days=data["days"])
        except OverflowError:
            raise ValidationError({"today": ["Too late a date."]}) from None


class CycleCreateSchema(StrictSchema):
    """``open_cycle``: a school's or a trust's cycle with its milestones."""

    org_id = _id(required=True)
    name = _text(200, required=True)
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(required=True)
    objectives_due = fields.Date(required=True)
    interim_due = fields.Date(required=True)
    final_due = fields.Date(required=True)


class ReviewAddSchema(StrictSchema):
    reviewee_id = _id(required=True)
    reviewer_id = _id(allow_none=True, load_default=None)


class ReviewListSchema(StrictSchema):
    cycle_id = _id(allow_none=True, load_default=None)
    org_id = _id(allow_none=True, load_default=None)
    state = fields.String(
        allow_none=True, load_default=None, validate=validate.OneOf(REVIEW_STATES)
    )
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class ObjectiveCreateSchema(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(OBJECTIVE_TYPES))
    description = _text(required=True)
    success_criteria = _text(required=True)
    due_on = fields.Date(required=True)
    cpd_record_ids = fields.List(_id(), load_default=list)


class ObjectiveUpdateSchema(ObjectiveCreateSchema):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(partial=True, **kwargs)


class ProgressSchema(StrictSchema):
    on = fields.Date(required=True)
    status = fields.String(required=True, validate=validate.OneOf(PROGRESS_STATUSES))
    note = _text(allow_none=True, load_default=None)


class ObservationCreateSchema(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(OBSERVATION_TYPES))
    observed_id = _id(required=True)
    observed_on = fields.Date(required=True)
    focus = _text(2000, required=True)
    strengths = _text(allow_none=True, load_default=None)
    areas_for_development = _text(allow_none=True, load_default=None)
    actions = _text(allow_none=True, load_default=None)
    visibility = fields.String(
        load_default="reviewer", validate=validate.OneOf(VISIBILITIES)
    )


class ObservationUpdateSchema(StrictSchema):
    type = fields.String(validate=validate.OneOf(OBSERVATION_TYPES))
    observed_on = fields.Date()
    focus = _text(2000)
    strengths = _text(allow_none=True)
    areas_for_development = _text(allow_none=True)
    actions = _text(allow_none=True)
    visibility = fields.String(validate=validate.OneOf(VISIBILITIES))


class EvidenceLinkSchema(StrictSchema):
    target_type = fields.String(
        required=True, validate=validate.OneOf(EVIDENCE_TARGETS)
    )
    target_id = _id(required=True)
    url = fields.Url(
        required=True, schemes={"http", "https"}, validate=validate.Length(max=2000)
    )
    title = _text(200, allow_none=True, load_default=None)


class EvidenceUploadSchema(StrictSchema):
    target_type = fields.String(
        required=True, validate=validate.OneOf(EVIDENCE_TARGETS)
    )
    target_id = _id(required=True)
    filename = _text(255, required=True)
    content_base64 = fields.String(required=True)
    sha256 = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Regexp(r"^[0-9a-f]{64}$"),
    )
    title = _text(200, allow_none=True, load_default=None)


class CommentCreateSchema(StrictSchema):
    target_type = fields.String(required=True, validate=validate.OneOf(COMMENT_TARGETS))
    target_id = _id(required=True)
    text = _text(required=True)
    visibility = fields.String(
        load_default="shared", validate=validate.OneOf(COMMENT_VISIBILITIES)
    )
    parent_id = _id(allow_none=True, load_default=None)


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def dump_cycle(cycle: Any) -> dict[str, Any]:
    return {
        "id": cycle.id,
        "org_id": cycle.org_id,
        "name": cycle.name,
        "starts_on": iso(cycle.starts_on),
        "ends_on": iso(cycle.ends_on),
        "objectives_due": iso(cycle.objectives_due),
        "interim_due": iso(cycle.interim_due),
        "final_due": iso(cycle.final_due),
        "created_by": cycle.created_by,
        "created_at": iso(cycle.created_at),
    }


def dump_review(review: Any) -> dict[str, Any]:
    return {
        "id": review.id,
        "cycle_id": review.cycle_id,
        "org_id": review.org_id,
        "reviewee_id": review.reviewee_id,
        "reviewer_id": review.reviewer_id,
        "state": review.state,
        "interim_notes": review.interim_notes,
        "self_review_text": review.self_review_text,
        "self_review_submitted_at": iso(review.self_review_submitted_at),
        "final_notes": review.final_notes,
        "sign_off_comment": review.sign_off_comment,
        "signed_off_at": iso(review.signed_off_at),
        "closed_at": iso(review.closed_at),
        "created_at": iso(review.created_at),
        "updated_at": iso(review.updated_at),
    }


def dump_objective(objective: Any) -> dict[str, Any]:
    return {
        "id": objective.id,
        "review_id": objective.review_id,
        "type": objective.type,
        "description": objective.description,
        "success_criteria": objective.success_criteria,
        "due_on": iso(objective.due_on),
        "status": objective.status,
        "cpd_record_ids": list(objective.cpd_record_ids or []),
        "created_by": objective.created_by,
        "created_at": iso(objective.created_at),
        "updated_at": iso(objective.updated_at),
    }


def dump_progress(update: Any) -> dict[str, Any]:
    return {
        "id": update.id,
        "objective_id": update.objective_id,
        "on": iso(update.on),
        "status": update.status,
        "note": update.note,
        "by": update.by,
        "at": iso(update.at),
    }


def dump_observation(observation: Any) -> dict[str, Any]:
    return {
        "id": observation.id,
        "org_id": observation.org_id,
        "type": observation.type,
        "observer_id": observation.observer_id,
        "observed_id": observation.observed_id,
        "observed_on": iso(observation.observed_on),
        "focus": observation.focus,
        "strengths": observation.strengths,
        "areas_for_development": observation.areas_for_development,
        "actions": observation.actions,
        "visibility": observation.visibility,
        "state": observation_state(observation),
        "shared_at": iso(observation.shared_at),
        "acknowledged_at": iso(observation.acknowledged_at),
        "response": observation.response,
        "created_at": iso(observation.created_at),
        "updated_at": iso(observation.updated_at),
    }


def observation_state(observation: Any) -> str:
    if observation.acknowledged_at is not None:
        return "acknowledged"
    if observation.shared_at is not None:
        return "shared"
    return "draft"


def dump_evidence(evidence: Any) -> dict[str, Any]:
    return {
        "id": evidence.id,
        "target_type": evidence.target_type,
        "target_id": evidence.target_id,
        "kind": evidence.kind,
        "title": evidence.title,
        "filename": evidence.filename,
        "content_type": evidence.content_type,
        "size": evidence.size,
        "sha256": evidence.sha256,
        "url": evidence.url,
        "added_by": evidence.added_by,
        "added_at": iso(evidence.added_at),
    }


def dump_comment(comment: Any) -> dict[str, Any]:
    return {
        "id": comment.id,
        "review_id": comment.review_id,
        "target_type": comment.target_type,
        "target_id": comment.target_id,
        "parent_id": comment.parent_id,
        "author_id": comment.author_id,
        "visibility": comment.visibility,
        "text": comment.text,
        "created_at": iso(comment.created_at),
    }
