"""What the notify service asks of reviews, on its own account: the context
of one review or observation to address a notice about it, and the reviews
whose next milestone falls in the coming days (the reminders).

Only notify calling as itself may ask (``plumbing.identity.require_service``;
anyone else is refused with Forbidden after ``authz.denied``). Answers carry
ids, names of cycles and organisations, states and dates, never free text
(notes, self review, focus, strengths, ...): notify fetches no more than it
needs to address and date a notice. Both reads commit nothing and emit
nothing. An unknown id is NotFound, without ``authz.denied``: notify may
read any review, so a missing one is no refusal.

The next milestone of a review, and who still has a step to take before it
(see :mod:`services.reviews.reviews` for who takes each step):

- ``draft``: ``objectives_due``; the reviewer and the reviewee, who agree
  the objectives (the reviewee may add them while a draft, the reviewer
  agrees them);
- ``objectives_agreed``: ``interim_due``; the reviewer (interim review);
- ``interim_review_done``: ``final_due``; the reviewee (self review);
- ``self_review_submitted``: ``final_due``; the reviewer (final review);
- ``final_review_done``: ``final_due``; the reviewee alone, who signs off
  (``sign_off`` is the reviewee's step; the reviewer has nothing left to do
  until the review is signed off and may be closed).

``signed_off`` and ``closed`` reviews have no milestone left.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, func, select, true

from plumbing.database import ServiceSession
from plumbing.errors import NotFound
from plumbing.identity import Identity, require_service
from services.reviews.models import (
    DRAFT,
    FINAL_REVIEW_DONE,
    INTERIM_REVIEW_DONE,
    OBJECTIVES_AGREED,
    SELF_REVIEW_SUBMITTED,
    Cycle,
    DirectoryOrganisation,
    Observation,
    Review,
)
from services.reviews.reviews import REVIEWEE, REVIEWER
from services.reviews.schemas import MilestoneWindowSchema, NoticeContextSchema, load

CALLERS = ("notify",)
DEFAULT_LIMIT = 500

# State: the milestone it still needs, and who has a step to take before it.
NEXT_MILESTONE: dict[str, tuple[str, tuple[str, ...]]] = {
    DRAFT: ("objectives_due", (REVIEWER, REVIEWEE)),
    OBJECTIVES_AGREED: ("interim_due", (REVIEWER,)),
    INTERIM_REVIEW_DONE: ("final_due", (REVIEWEE,)),
    SELF_REVIEW_SUBMITTED: ("final_due", (REVIEWER,)),
    FINAL_REVIEW_DONE: ("final_due", (REVIEWEE,)),
}


def notification_context(
    db: ServiceSession,
    caller: Identity,
    review_id: Any = None,
    observation_id: Any = None,
) -> dict[str, Any]:
    """Notify: ``{"review": {...}}`` or ``{"observation": {...}}``, for
    exactly one of ``review_id`` and ``observation_id``. One query."""
    require_service(db, caller, CALLERS, "reviews.notification_context")
    given = {"review_id": review_id, "observation_id": observation_id}
    values = load(
        NoticeContextSchema(), {k: v for k, v in given.items() if v is not None}
    )
    db.read_without_transaction()
    if "review_id" in values:
        return {"review": _review_context(db, values["review_id"])}
    return {"observation": _observation_context(db, values["observation_id"])}


def _review_context(db: ServiceSession, review_id: str) -> dict[str, Any]:
    row = db.execute(
        select(
            Review.id,
            Review.org_id,
            DirectoryOrganisation.name.label("org_name"),
            Review.cycle_id,
            Cycle.name.label("cycle_name"),
            Review.state,
            Review.reviewee_id,
            Review.reviewer_id,
            Cycle.objectives_due,
            Cycle.interim_due,
            Cycle.final_due,
        )
        .join(Cycle, Cycle.id == Review.cycle_id)
        .outerjoin(DirectoryOrganisation, DirectoryOrganisation.id == Review.org_id)
        .where(Review.id == review_id)
    ).one_or_none()
    if row is None:
        raise NotFound("No such review")
    return {
        "id": row.id,
        "org_id": row.org_id,
        "org_name": row.org_name or "",
        "cycle_id": row.cycle_id,
        "cycle_name": row.cycle_name,
        "state": row.state,
        "reviewee_id": row.reviewee_id,
        "reviewer_id": row.reviewer_id,
        "milestones": {
            "objectives_due": row.objectives_due.isoformat(),
            "interim_due": row.interim_due.isoformat(),
            "final_due": row.final_due.isoformat(),
        },
    }


def _observation_context(db: ServiceSession, observation_id: str) -> dict[str, Any]:
    # Named columns only: the free text is never even read.
    row = db.execute(
        select(
            Observation.id,
            Observation.org_id,
            DirectoryOrganisation.name.label("org_name"),
            Observation.observer_id,
            Observation.observed_id,
            Observation.observed_on,
            Observation.type,
            Observation.visibility,
            Observation.shared_at,
        )
        .outerjoin(
            DirectoryOrganisation, DirectoryOrganisation.id == Observation.org_id
        )
        .where(Observation.id == observation_id)
    ).one_or_none()
    if row is None:
        raise NotFound("No such observation")
    return {
        "id": row.id,
        "org_id": row.org_id,
        "org_name": row.org_name or "",
        "observer_id": row.observer_id,
        "observed_id": row.observed_id,
        "observed_on": row.observed_on.isoformat(),
        "type": row.type,
        "visibility": row.visibility,
        "shared": row.shared_at is not None,
    }


def milestones_due(
    db: ServiceSession,
    caller: Identity,
    today: Any,
    days: Any,
    offset: Any = 0,
    limit: Any = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Notify: ``{items, total}``, one item per review (not signed off or
    closed) whose next milestone falls from ``today`` to ``today + days``
    inclusive, ordered by ``due_on`` then ``review_id``, paged.

    Each page, with the total, is one SQL query whatever the number of
    reviews: the due date is worked out in SQL from the review's state, the
    milestone and who has a step to take from the row itself.
    """
    require_service(db, caller, CALLERS, "reviews.milestones_due")
    window = load(
        MilestoneWindowSchema(),
        {"today": today, "days": days, "offset": offset, "limit": limit},
    )
    first = window["today"]
    last = first + timedelta(days=window["days"])
    offset, limit = window["offset"], window["limit"]
    db.read_without_transaction()
    rows = db.execute(_due_query(first, last, offset, limit)).all()
    total = rows[0].total if rows else 0
    return {
        "items": [_due_item(row) for row in rows if row.review_id is not None],
        "total": total,
    }


def _due_query(first: date, last: date, offset: int, limit: int) -> Any:
    """The page of due reviews left-joined to their count: always one row at
    least, so an empty page (past the end) still answers the total."""
    states = list(NEXT_MILESTONE)
    due_on = case(
        *(
            (Review.state == s, getattr(Cycle, name))
            for s, (name, _) in NEXT_MILESTONE.items()
        ),
    )
    due = (
        select(
            Review.id.label("review_id"),
            Review.cycle_id,
            Cycle.name.label("cycle_name"),
            Review.org_id,
            Review.state,
            Review.reviewee_id,
            Review.reviewer_id,
            due_on.label("due_on"),
        )
        .join(Cycle, Cycle.id == Review.cycle_id)
        .where(
            Review.state.in_(states),
            due_on.between(first, last),
            # Implied by the line above; lets the planner pick the cycles
            # first and their reviews by index.
            Cycle.objectives_due.between(first, last)
            | Cycle.interim_due.between(first, last)
            | Cycle.final_due.between(first, last),
        )
        .cte("due")
    )
    count = select(func.count().label("total")).select_from(due).subquery("counted")
    page = (
        select(due)
        .order_by(due.c.due_on, due.c.review_id)
        .offset(offset)
        .limit(limit)
        .subquery("page")
    )
    return (
        select(
            count.c.total,
            page,
            DirectoryOrganisation.name.label("org_name"),
        )
        .select_from(count)
        .outerjoin(page, true())
        .outerjoin(DirectoryOrganisation, DirectoryOrganisation.id == page.c.org_id)
        .order_by(page.c.due_on, page.c.review_id)
    )


def _due_item(row: Any) -> dict[str, Any]:
    milestone, takers = NEXT_MILESTONE[row.state]
    people = {REVIEWER: row.reviewer_id, REVIEWEE: row.reviewee_id}
    return {
        "review_id": row.review_id,
        "cycle_id": row.cycle_id,
        "cycle_name": row.cycle_name,
        "org_id": row.org_id,
        "org_name": row.org_name or "",
        "milestone": milestone,
        "due_on": row.due_on.isoformat(),
        # Whose review it is: a reminder to the reviewer names them.
        "reviewee_id": row.reviewee_id,
        "user_ids": sorted({people[t] for t in takers if people[t] is not None}),
    }
