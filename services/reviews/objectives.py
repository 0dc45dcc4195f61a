"""Objectives of a review and their progress over the year.

The reviewer adds and edits objectives until the interim review is done;
the reviewee may propose and edit them while the review is still a draft.
Both record progress until the review is signed off. CPD records of the
training service are linked by id only: rendering a review never calls it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from plumbing.database import ServiceSession
from plumbing.envelope import diff
from plumbing.errors import ValidationFailed
from plumbing.identity import Identity
from services.reviews import events
from services.reviews.access import forbid, readable_objective, readable_review
from services.reviews.exceptions import ObjectivesLocked, ReviewClosed
from services.reviews.models import (
    CLOSED,
    DRAFT,
    INTERIM_REVIEW_DONE,
    OBJECTIVES_AGREED,
    SIGNED_OFF,
    Cycle,
    Evidence,
    Objective,
    ProgressUpdate,
    Review,
)
from services.reviews.schemas import (
    ObjectiveCreateSchema,
    ObjectiveUpdateSchema,
    ProgressSchema,
    dump_evidence,
    dump_objective,
    dump_progress,
    load,
)

EDITABLE_BY_REVIEWER = (DRAFT, OBJECTIVES_AGREED, INTERIM_REVIEW_DONE)
EDITED_FIELDS = ("type", "description", "success_criteria", "due_on", "cpd_record_ids")


def _check_editor(
    db: ServiceSession, caller: Identity, review: Review, action: str
) -> None:
    if caller.user_id == review.reviewer_id:
        if review.state not in EDITABLE_BY_REVIEWER:
            raise ObjectivesLocked(fields={"state": review.state})
        return
    if caller.user_id == review.reviewee_id:
        if review.state != DRAFT:
            raise ObjectivesLocked(fields={"state": review.state})
        return
    raise forbid(db, caller, "review", review.id, action, review.org_id)


def _check_due(db: ServiceSession, review: Review, values: dict[str, Any]) -> None:
    cycle = db.get(Cycle, review.cycle_id)
    due = values.get("due_on")
    if (
        cycle is not None
        and due is not None
        and not (cycle.starts_on <= due <= cycle.ends_on)
    ):
        raise ValidationFailed(fields={"due_on": ["Must be within the cycle's dates."]})


def _snapshot(objective: Objective) -> dict[str, Any]:
    dumped = dump_objective(objective)
    return {name: dumped[name] for name in EDITED_FIELDS}


def add_objective(
    db: ServiceSession, caller: Identity, review_id: Any, data: object, *, now: datetime
) -> dict[str, Any]:
    values = load(ObjectiveCreateSchema(), data)
    action = "reviews.add_objective"
    review = readable_review(db, caller, review_id, action)
    _check_editor(db, caller, review, action)
    _check_due(db, review, values)
    objective = Objective(
        review_id=review.id,
        **values,
        status="not_started",
        created_by=caller.user_id,
        created_at=now,
        updated_at=now,
    )
    db.add(objective)
    db.flush()
    db.emit(
        events.OBJECTIVE_ADDED,
        subject_type="objective",
        subject_id=objective.id,
        org_id=review.org_id,
        changes={
            k: {"before": None, "after": v} for k, v in _snapshot(objective).items()
        },
        data={"review_id": review.id, "user_id": review.reviewee_id},
    )
    db.commit()
    return dump_objective(objective)


def update_objective(
    db: ServiceSession,
    caller: Identity,
    objective_id: Any,
    data: object,
    *,
    now: datetime,
) -> dict[str, Any]:
    values = load(ObjectiveUpdateSchema(), data)
    action = "reviews.update_objective"
    objective, review = readable_objective(db, caller, objective_id, action)
    _check_editor(db, caller, review, action)
    _check_due(db, review, values)
    before = _snapshot(objective)
    for key, value in values.items():
        setattr(objective, key, value)
    changes = diff(before, _snapshot(objective))
    if changes:
        objective.updated_at = now
        db.emit(
            events.OBJECTIVE_UPDATED,
            subject_type="objective",
            subject_id=objective.id,
            org_id=review.org_id,
            changes=changes,
            data={"review_id": review.id, "user_id": review.reviewee_id},
        )
    db.commit()
    return dump_objective(objective)


def record_progress(
    db: ServiceSession,
    caller: Identity,
    objective_id: Any,
    data: object,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The reviewer or the reviewee notes progress; the objective takes the
    latest status."""
    values = load(ProgressSchema(), data)
    action = "reviews.record_progress"
    objective, review = readable_objective(db, caller, objective_id, action)
    if caller.user_id not in (review.reviewer_id, review.reviewee_id):
        raise forbid(db, caller, "objective", objective.id, action, review.org_id)
    if review.state in (SIGNED_OFF, CLOSED):
        raise ReviewClosed("Progress cannot be added after sign-off")
    update = ProgressUpdate(
        objective_id=objective.id, by=caller.user_id, at=now, **values
    )
    db.add(update)
    before = objective.status
    objective.status = values["status"]
    objective.updated_at = now
    db.flush()
    db.emit(
        events.PROGRESS_RECORDED,
        subject_type="objective",
        subject_id=objective.id,
        org_id=review.org_id,
        changes={
            "status": {"before": before, "after": values["status"]},
            "note": {"before": None, "after": values["note"]},
        },
        data={
            "review_id": review.id,
            "user_id": review.reviewee_id,
            "progress_id": update.id,
            "on": str(values["on"]),
        },
    )
    db.commit()
    return dump_progress(update)


def get_objective(
    db: ServiceSession, caller: Identity, objective_id: Any
) -> dict[str, Any]:
    """The objective with its progress updates (oldest first) and evidence;
    its CPD records are ids only, so the training service is not asked."""
    objective, _review = readable_objective(
        db, caller, objective_id, "reviews.get_objective"
    )
    updates = db.scalars(
        select(ProgressUpdate)
        .where(ProgressUpdate.objective_id == objective.id)
        .order_by(ProgressUpdate.on, ProgressUpdate.at, ProgressUpdate.id)
    )
    answer = dump_objective(objective)
    answer["progress"] = [dump_progress(update) for update in updates]
    attached = db.scalars(
        select(Evidence)
        .where(Evidence.target_type == "objective", Evidence.target_id == objective.id)
        .order_by(Evidence.added_at, Evidence.id)
    )
    answer["evidence"] = [dump_evidence(item) for item in attached]
    return answer
