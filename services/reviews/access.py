"""Who may read or act on what.

- School and trust admins (``school_admin``, ``trust_admin``) run cycles,
  assign reviewers, reopen reviews and read every review and report of the
  organisations their roles cover. They are the "school leaders" of an
  observation's ``leaders`` visibility.
- A review is read by its reviewee, its reviewer and those admins; nobody
  else. Another organisation's object, or one the caller may not read, is
  answered NotFound after an ``authz.denied`` event.
- A step the caller may read but is not theirs is NOT_YOUR_STEP (403),
  also recorded as ``authz.denied``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select

from plumbing.database import ServiceSession
from plumbing.errors import NotFound, PlatformError
from plumbing.identity import Identity, deny
from services.reviews.exceptions import NotYourStep
from services.reviews.models import Objective, Observation, Review

SCHOOL_ADMIN = "school_admin"
TRUST_ADMIN = "trust_admin"
ADMIN_ROLES = (SCHOOL_ADMIN, TRUST_ADMIN)


def admin_orgs(caller: Identity) -> set[str]:
    return caller.orgs_for(ADMIN_ROLES)


def is_admin_of(caller: Identity, org_id: str) -> bool:
    return org_id in admin_orgs(caller)


def refuse(
    db: ServiceSession,
    caller: Identity,
    subject_type: str,
    subject_id: Any,
    action: str,
    org_id: str | None = None,
) -> NotFound:
    """Record ``authz.denied``; return the NotFound to raise."""
    deny(
        db,
        caller,
        subject_type=subject_type,
        subject_id=subject_id,
        action=action,
        org_id=org_id,
    )
    return NotFound(f"No such {subject_type}")


def forbid(
    db: ServiceSession,
    caller: Identity,
    subject_type: str,
    subject_id: Any,
    action: str,
    org_id: str | None = None,
    error: PlatformError | None = None,
) -> PlatformError:
    """Record ``authz.denied`` for a visible object; return the error to raise."""
    deny(
        db,
        caller,
        subject_type=subject_type,
        subject_id=subject_id,
        action=action,
        org_id=org_id,
    )
    return error or NotYourStep()


def can_read_review(caller: Identity, review: Review) -> bool:
    return caller.user_id in (
        review.reviewee_id,
        review.reviewer_id,
    ) or is_admin_of(caller, review.org_id)


def is_reviewer_side(caller: Identity, review: Review) -> bool:
    """The reviewer, or an admin over the review: may read private comments."""
    return caller.user_id == review.reviewer_id or is_admin_of(caller, review.org_id)


def readable_review(
    db: ServiceSession, caller: Identity, review_id: Any, action: str
) -> Review:
    review = db.get(Review, review_id) if isinstance(review_id, str) else None
    if review is None or not can_read_review(caller, review):
        raise refuse(db, caller, "review", review_id, action)
    return review


def readable_objective(
    db: ServiceSession, caller: Identity, objective_id: Any, action: str
) -> tuple[Objective, Review]:
    objective = (
        db.get(Objective, objective_id) if isinstance(objective_id, str) else None
    )
    review = db.get(Review, objective.review_id) if objective is not None else None
    if objective is None or review is None or not can_read_review(caller, review):
        raise refuse(db, caller, "objective", objective_id, action)
    return objective, review


def reviews_user(db: ServiceSession, reviewer_id: str, reviewee_id: str) -> bool:
    """Is ``reviewer_id`` the reviewer of any review of ``reviewee_id``?"""
    query = select(
        exists().where(
            Review.reviewee_id == reviewee_id, Review.reviewer_id == reviewer_id
        )
    )
    return bool(db.scalar(query))


def can_read_observation(
    db: ServiceSession, caller: Identity, observation: Observation
) -> bool:
    """The observer always; once shared, the observed teacher, and by its
    visibility their reviewer and the school's admins."""
    if caller.user_id == observation.observer_id:
        return True
    if observation.shared_at is None:
        return False
    if caller.user_id == observation.observed_id:
        return True
    if observation.visibility in ("reviewer", "leaders") and reviews_user(
        db, caller.user_id, observation.observed_id
    ):
        return True
    return observation.visibility == "leaders" and is_admin_of(
        caller, observation.org_id
    )


def readable_observation(
    db: ServiceSession, caller: Identity, observation_id: Any, action: str
) -> Observation:
    observation = (
        db.get(Observation, observation_id) if isinstance(observation_id, str) else None
    )
    if observation is None or not can_read_observation(db, caller, observation):
        raise refuse(db, caller, "observation", observation_id, action)
    return observation
