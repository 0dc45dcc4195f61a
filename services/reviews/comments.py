"""Comment threads on reviews and objectives.

``shared`` comments are read by the reviewee, the reviewer and the admins
over the review; ``reviewers`` comments by the reviewer and those admins
only. The reviewee writes shared comments only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from plumbing.database import ServiceSession
from plumbing.errors import ValidationFailed
from plumbing.identity import Identity
from services.reviews import events
from services.reviews.access import (
    is_reviewer_side,
    readable_objective,
    readable_review,
)
from services.reviews.models import Comment, Review
from services.reviews.schemas import CommentCreateSchema, dump_comment, load


def _review_of(
    db: ServiceSession, caller: Identity, target_type: Any, target_id: Any, action: str
) -> Review:
    if target_type == "objective":
        return readable_objective(db, caller, target_id, action)[1]
    if target_type == "review":
        return readable_review(db, caller, target_id, action)
    raise ValidationFailed(fields={"target_type": ["Must be review or objective."]})


def _visible(caller: Identity, review: Review, comment: Comment) -> bool:
    return comment.visibility == "shared" or is_reviewer_side(caller, review)


def add_comment(
    db: ServiceSession, caller: Identity, data: object, *, now: datetime
) -> dict[str, Any]:
    values = load(CommentCreateSchema(), data)
    review = _review_of(
        db, caller, values["target_type"], values["target_id"], "reviews.add_comment"
    )
    if values["visibility"] == "reviewers" and not is_reviewer_side(caller, review):
        raise ValidationFailed(
            fields={"visibility": ["Only reviewers may write private comments."]}
        )
    parent_id = values["parent_id"]
    if parent_id is not None:
        parent = db.get(Comment, parent_id)
        if (
            parent is None
            or parent.target_id != values["target_id"]
            or not _visible(caller, review, parent)
        ):
            raise ValidationFailed(fields={"parent_id": ["No such comment here."]})
    comment = Comment(
        review_id=review.id, author_id=caller.user_id, created_at=now, **values
    )
    db.add(comment)
    db.flush()
    db.emit(
        events.COMMENT_ADDED,
        subject_type="comment",
        subject_id=comment.id,
        org_id=review.org_id,
        changes={"text": {"before": None, "after": comment.text}},
        data={
            "user_id": review.reviewee_id,
            "review_id": review.id,
            "target_type": comment.target_type,
            "target_id": comment.target_id,
            "visibility": comment.visibility,
            "parent_id": comment.parent_id,
        },
    )
    db.commit()
    return dump_comment(comment)


def list_comments(
    db: ServiceSession, caller: Identity, target_type: Any, target_id: Any
) -> dict[str, Any]:
    """The comments the caller may read, oldest first (``parent_id`` threads)."""
    review = _review_of(db, caller, target_type, target_id, "reviews.list_comments")
    query = select(Comment).where(
        Comment.target_type == target_type, Comment.target_id == target_id
    )
    if not is_reviewer_side(caller, review):
        query = query.where(Comment.visibility == "shared")
    rows = db.scalars(query.order_by(Comment.created_at, Comment.id))
    return {"items": [dump_comment(row) for row in rows]}
