"""A review's states and who takes each step.

draft -> objectives_agreed (reviewer) -> interim_review_done (reviewer)
-> self_review_submitted (reviewee) -> final_review_done (reviewer)
-> signed_off (reviewee, with their comments) -> closed (reviewer or admin).
An admin may reopen a closed review with a reason; it goes back to
final_review_done so that the reviewer can correct it and the reviewee signs
off again. The self review is locked once submitted, reopened or not.

Every check happens before anything changes: the caller's right to see the
review (else NotFound), their right to take this step (else NOT_YOUR_STEP),
then the state (else INVALID_TRANSITION naming the state it needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from plumbing.database import ServiceSession
from plumbing.errors import ValidationFailed
from plumbing.identity import Identity
from services.reviews import events
from services.reviews.access import (
    admin_orgs,
    forbid,
    is_admin_of,
    readable_review,
    refuse,
)
from services.reviews.exceptions import (
    InvalidTransition,
    ObjectivesRequired,
    ReviewClosed,
    ReviewerRequired,
    SelfReviewLocked,
)
from services.reviews.models import (
    CLOSED,
    DRAFT,
    FINAL_REVIEW_DONE,
    INTERIM_REVIEW_DONE,
    OBJECTIVES_AGREED,
    SELF_REVIEW_SUBMITTED,
    SIGNED_OFF,
    Objective,
    Review,
    ReviewStep,
)
from services.reviews.schemas import (
    MAX_TEXT,
    ReviewListSchema,
    dump_objective,
    dump_review,
    load,
)

REVIEWER = "reviewer"
REVIEWEE = "reviewee"
REVIEWER_OR_ADMIN = "reviewer_or_admin"
ADMIN = "admin"


@dataclass(frozen=True)
class Step:
    name: str
    source: str
    target: str
    taken_by: str
    event: str
    # The review column the step's text goes in, its name in the event, and
    # whether the step needs it.
    column: str | None = None
    text_field: str | None = None
    text_required: bool = False


STEPS = {
    step.name: step
    for step in (
        Step("agree_objectives", DRAFT, OBJECTIVES_AGREED, REVIEWER,
             events.OBJECTIVES_AGREED),
        Step("record_interim_review", OBJECTIVES_AGREED, INTERIM_REVIEW_DONE,
             REVIEWER, events.INTERIM_REVIEW_RECORDED, "interim_notes", "notes",
             True),
        Step("submit_self_review", INTERIM_REVIEW_DONE, SELF_REVIEW_SUBMITTED,
             REVIEWEE, events.SELF_REVIEW_SUBMITTED, "self_review_text", "text"),
        Step("record_final_review", SELF_REVIEW_SUBMITTED, FINAL_REVIEW_DONE,
             REVIEWER, events.FINAL_REVIEW_RECORDED, "final_notes", "notes", True),
        Step("sign_off", FINAL_REVIEW_DONE, SIGNED_OFF, REVIEWEE,
             events.REVIEW_SIGNED_OFF, "sign_off_comment", "comment"),
        Step("close", SIGNED_OFF, CLOSED, REVIEWER_OR_ADMIN, events.REVIEW_CLOSED),
        Step("reopen", CLOSED, FINAL_REVIEW_DONE, ADMIN, events.REVIEW_REOPENED,
             None, "reason", True),
    )
}  # fmt: skip


def _locked_review(
    db: ServiceSession, caller: Identity, review_id: Any, action: str
) -> Review:
    review = readable_review(db, caller, review_id, action)
    db.refresh(review, with_for_update=True)
    return review


def _check_taker(
    db: ServiceSession, caller: Identity, review: Review, step: Step, action: str
) -> None:
    admin = is_admin_of(caller, review.org_id)
    if step.taken_by in (REVIEWER, REVIEWER_OR_ADMIN) and review.reviewer_id is None:
        if not (step.taken_by == REVIEWER_OR_ADMIN and admin):
            raise ReviewerRequired()
    allowed = {
        REVIEWER: caller.user_id == review.reviewer_id,
        REVIEWEE: caller.user_id == review.reviewee_id,
        REVIEWER_OR_ADMIN: caller.user_id == review.reviewer_id or admin,
        ADMIN: admin,
    }[step.taken_by]
    if not allowed:
        raise forbid(db, caller, "review", review.id, action, review.org_id)


def _text(value: Any, field: str, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationFailed(fields={field: ["Missing data for required field."]})
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ValidationFailed(fields={field: [f"Text of at most {MAX_TEXT} chars."]})
    return value


def take_step(
    db: ServiceSession,
    caller: Identity,
    review_id: Any,
    name: str,
    text: Any = None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Move the review one step on; commits and emits the step's event."""
    step = STEPS[name]
    action = f"reviews.{name}"
    review = _locked_review(db, caller, review_id, action)
    _check_taker(db, caller, review, step, action)
    if step.name == "submit_self_review" and review.self_review_submitted_at:
        raise SelfReviewLocked()
    if review.state != step.source:
        raise InvalidTransition(
            f"{name} needs the review to be {step.source}, not {review.state}",
            fields={"state": review.state, "step": name, "needs": step.source},
        )
    value = None
    if step.text_field is not None:
        value = _text(text, step.text_field, step.text_required)
    if step.name == "submit_self_review":
        value = value or review.self_review_text
        if not value:
            raise ValidationFailed(fields={"text": ["Write the self review first."]})
    if step.name == "agree_objectives":
        count = db.scalar(select(func.count()).where(Objective.review_id == review.id))
        if not count:
            raise ObjectivesRequired()
    changes = _apply(review, step, value, caller, now)
    db.add(
        ReviewStep(
            review_id=review.id,
            from_state=step.source,
            to_state=step.target,
            by=caller.user_id,
            at=now,
            reason=value if step.name == "reopen" else None,
        )
    )
    db.emit(
        step.event,
        subject_type="review",
        subject_id=review.id,
        org_id=review.org_id,
        changes=changes,
        data={
            "user_id": review.reviewee_id,
            "cycle_id": review.cycle_id,
            "reviewee_id": review.reviewee_id,
        },
    )
    db.commit()
    return dump_review(review)


def _apply(
    review: Review, step: Step, value: str | None, caller: Identity, now: datetime
) -> dict[str, dict[str, Any]]:
    changes: dict[str, dict[str, Any]] = {
        "state": {"before": review.state, "after": step.target}
    }
    review.state = step.target
    review.updated_at = now
    if step.column is not None:
        before = getattr(review, step.column)
        setattr(review, step.column, value)
        if before != value:
            changes[step.text_field or step.column] = {"before": before, "after": value}
    elif step.text_field is not None:
        changes[step.text_field] = {"before": None, "after": value}
    if step.name == "submit_self_review":
        review.self_review_submitted_at = now
    elif step.name == "sign_off":
        review.signed_off_at = now
    elif step.name == "close":
        review.closed_at = now
    elif step.name == "reopen":
        review.closed_at = None
        review.signed_off_at = None
    return changes


def save_self_review(
    db: ServiceSession, caller: Identity, review_id: Any, text: Any, *, now: datetime
) -> dict[str, Any]:
    """The reviewee keeps a draft of their self review until they submit it."""
    action = "reviews.save_self_review"
    review = _locked_review(db, caller, review_id, action)
    if caller.user_id != review.reviewee_id:
        raise forbid(db, caller, "review", review.id, action, review.org_id)
    if review.self_review_submitted_at is not None:
        raise SelfReviewLocked()
    if review.state == CLOSED:
        raise ReviewClosed()
    value = _text(text, "text", True)
    before = review.self_review_text
    review.self_review_text = value
    review.updated_at = now
    db.emit(
        events.SELF_REVIEW_SAVED,
        subject_type="review",
        subject_id=review.id,
        org_id=review.org_id,
        changes={"text": {"before": before, "after": value}},
        data={"user_id": review.reviewee_id},
    )
    db.commit()
    return dump_review(review)


def get_review(db: ServiceSession, caller: Identity, review_id: Any) -> dict[str, Any]:
    """The review with its objectives and its history of steps."""
    review = readable_review(db, caller, review_id, "reviews.get_review")
    objectives = db.scalars(
        select(Objective)
        .where(Objective.review_id == review.id)
        .order_by(Objective.created_at, Objective.id)
    )
    steps = db.scalars(
        select(ReviewStep)
        .where(ReviewStep.review_id == review.id)
        .order_by(ReviewStep.id)
    )
    answer = dump_review(review)
    answer["objectives"] = [dump_objective(o) for o in objectives]
    answer["steps"] = [
        {
            "from_state": s.from_state,
            "to_state": s.to_state,
            "by": s.by,
            "at": s.at.isoformat(),
            "reason": s.reason,
        }
        for s in steps
    ]
    return answer


def list_reviews(
    db: ServiceSession, caller: Identity, params: object
) -> dict[str, Any]:
    """Reviews the caller takes part in or administers, filtered and paged."""
    values = load(ReviewListSchema(), params if params is not None else {})
    orgs = admin_orgs(caller)
    query = select(Review).where(
        or_(
            Review.reviewee_id == caller.user_id,
            Review.reviewer_id == caller.user_id,
            Review.org_id.in_(orgs),
        )
    )
    if values["org_id"] is not None:
        if values["org_id"] not in orgs:
            raise refuse(
                db, caller, "organisation", values["org_id"], "reviews.list_reviews"
            )
        query = query.where(Review.org_id == values["org_id"])
    if values["cycle_id"] is not None:
        query = query.where(Review.cycle_id == values["cycle_id"])
    if values["state"] is not None:
        query = query.where(Review.state == values["state"])
    total = db.scalar(select(func.count()).select_from(query.subquery()))
    page = db.scalars(
        query.order_by(Review.created_at, Review.id)
        .offset(values["offset"])
        .limit(values["limit"])
    )
    return {
        "items": [dump_review(review) for review in page],
        "total": total,
        "offset": values["offset"],
        "limit": values["limit"],
    }
