"""Review cycles and the reviews they hold: opening a cycle (one review per
member of staff, reviewed by their line manager), adding a review later, and
reassigning the reviewer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from plumbing.database import ServiceSession
from plumbing.identity import Identity
from services.reviews import directory, events
from services.reviews.access import (
    TRUST_ADMIN,
    admin_orgs,
    forbid,
    is_admin_of,
    readable_review,
    refuse,
)
from services.reviews.exceptions import (
    CycleOverlaps,
    MilestoneOutsideCycle,
    ReviewClosed,
    ReviewerIsReviewee,
    ReviewExists,
    UnknownStaff,
)
from services.reviews.models import (
    CLOSED,
    DRAFT,
    Cycle,
    DirectoryOrganisation,
    DirectoryUser,
    Review,
    new_id,
)
from services.reviews.schemas import (
    CycleCreateSchema,
    ReviewAddSchema,
    dump_cycle,
    dump_review,
    load,
)

MILESTONES = ("objectives_due", "interim_due", "final_due")


def check_milestones(values: dict[str, Any]) -> None:
    """Start before end; each milestone inside the cycle and after the last."""
    if values["starts_on"] >= values["ends_on"]:
        raise MilestoneOutsideCycle(
            "The cycle must end after it starts",
            fields={"ends_on": ["Must be after starts_on."]},
        )
    problems: dict[str, list[str]] = {}
    previous = values["starts_on"]
    for name in MILESTONES:
        when = values[name]
        if not values["starts_on"] <= when <= values["ends_on"]:
            problems[name] = ["Must be within the cycle's dates."]
        elif when < previous:
            problems[name] = ["Must not be before the previous milestone."]
        previous = max(previous, when)
    if problems:
        raise MilestoneOutsideCycle(fields=problems)


def open_cycle(
    db: ServiceSession, caller: Identity, data: object, *, now: datetime
) -> dict[str, Any]:
    """Open a cycle for a school (its admin) or a trust (a trust admin) and
    give every active member of staff a review; commits.

    The reviews go in one batched INSERT and their ``reviews.review_created``
    events in another (``emit_many``).
    """
    values = load(CycleCreateSchema(), data)
    org_id = values["org_id"]
    org = db.get(DirectoryOrganisation, org_id)
    trust_wide = org is not None and org.kind == "trust"
    allowed = caller.has_role(TRUST_ADMIN, org_id) if trust_wide else None
    if not is_admin_of(caller, org_id) or allowed is False:
        raise refuse(db, caller, "organisation", org_id, "reviews.open_cycle")
    check_milestones(values)
    _check_no_overlap(db, org, org_id, values)

    cycle = Cycle(**values, created_by=caller.user_id, created_at=now)
    db.add(cycle)
    db.flush()
    db.emit(
        events.CYCLE_OPENED,
        subject_type="cycle",
        subject_id=cycle.id,
        org_id=org_id,
        changes={
            key: {"before": None, "after": value}
            for key, value in dump_cycle(cycle).items()
            if key not in ("id", "created_at", "created_by")
        },
        data={"trust_wide": trust_wide},
    )
    staff = directory.staff_of(db, directory.schools_of(db, org_id))
    # One batched INSERT for the reviews, then their events.
    created = [_new_review(cycle, p, _default_reviewer(p), now) for p in staff]
    db.add_all(created)
    db.flush()
    db.emit_many(events.REVIEW_CREATED, [_created(review) for review in created])
    db.commit()
    return dict(dump_cycle(cycle), reviews_created=len(staff))


def _check_no_overlap(
    db: ServiceSession,
    org: DirectoryOrganisation | None,
    org_id: str,
    values: dict[str, Any],
) -> None:
    """Staff have one cycle at a time: a school's cycle may not overlap its
    own or its trust's, nor a trust's those of its schools."""
    covering = directory.schools_of(db, org_id)
    if org is not None and org.parent_trust_id:
        covering.add(org.parent_trust_id)
    clash = db.scalar(
        select(Cycle.id).where(
            Cycle.org_id.in_(covering),
            Cycle.starts_on <= values["ends_on"],
            Cycle.ends_on >= values["starts_on"],
        )
    )
    if clash is not None:
        raise CycleOverlaps(fields={"cycle_id": clash})


def _default_reviewer(person: DirectoryUser) -> str | None:
    manager = person.line_manager_id
    return manager if manager and manager != person.id else None


def _new_review(
    cycle: Cycle, person: DirectoryUser, reviewer_id: str | None, now: datetime
) -> Review:
    return Review(
        id=new_id(),
        cycle_id=cycle.id,
        org_id=person.org_id,
        reviewee_id=person.id,
        reviewer_id=reviewer_id,
        state=DRAFT,
        created_at=now,
        updated_at=now,
    )


def _created(review: Review) -> dict[str, Any]:
    """The ``reviews.review_created`` of a review, as ``emit`` takes it."""
    return {
        "subject_type": "review",
        "subject_id": review.id,
        "org_id": review.org_id,
        "data": {
            "user_id": review.reviewee_id,
            "cycle_id": review.cycle_id,
            "reviewee_id": review.reviewee_id,
            "reviewer_id": review.reviewer_id,
        },
    }


def administered_cycle(
    db: ServiceSession, caller: Identity, cycle_id: Any, action: str
) -> Cycle:
    cycle = db.get(Cycle, cycle_id) if isinstance(cycle_id, str) else None
    if cycle is None or not is_admin_of(caller, cycle.org_id):
        raise refuse(db, caller, "cycle", cycle_id, action)
    return cycle


def _staff_member(
    db: ServiceSession, user_id: str, org_ids: set[str], field: str
) -> DirectoryUser:
    person = db.get(DirectoryUser, user_id)
    if person is None or not person.active or person.org_id not in org_ids:
        raise UnknownStaff(fields={field: ["No such member of staff here."]})
    return person


def add_review(
    db: ServiceSession,
    caller: Identity,
    cycle_id: Any,
    data: object,
    *,
    now: datetime,
) -> dict[str, Any]:
    """An admin of the cycle adds a review for a member of staff who joined
    after it opened; the reviewer defaults to their line manager."""
    values = load(ReviewAddSchema(), data)
    cycle = administered_cycle(db, caller, cycle_id, "reviews.add_review")
    orgs = directory.schools_of(db, cycle.org_id)
    person = _staff_member(db, values["reviewee_id"], orgs, "reviewee_id")
    requested: str | None = values["reviewer_id"]
    reviewer_id = requested or _default_reviewer(person)
    if reviewer_id == person.id:
        raise ReviewerIsReviewee(fields={"reviewer_id": ["Cannot be the reviewee."]})
    if requested:
        _staff_member(db, requested, admin_orgs(caller), "reviewer_id")
    exists = db.scalar(
        select(Review.id).where(
            Review.cycle_id == cycle.id, Review.reviewee_id == person.id
        )
    )
    if exists is not None:
        raise ReviewExists(fields={"review_id": exists})
    review = _new_review(cycle, person, reviewer_id, now)
    db.add(review)
    db.flush()
    db.emit(events.REVIEW_CREATED, **_created(review))
    db.commit()
    return dump_review(review)


def assign_reviewer(
    db: ServiceSession,
    caller: Identity,
    review_id: Any,
    reviewer_id: Any,
    *,
    now: datetime,
) -> dict[str, Any]:
    """An admin over the review names another reviewer; commits."""
    action = "reviews.assign_reviewer"
    review = readable_review(db, caller, review_id, action)
    if not is_admin_of(caller, review.org_id):
        raise forbid(db, caller, "review", review.id, action, review.org_id)
    if review.state == CLOSED:
        raise ReviewClosed()
    if reviewer_id == review.reviewee_id:
        raise ReviewerIsReviewee(fields={"reviewer_id": ["Cannot be the reviewee."]})
    if not isinstance(reviewer_id, str):
        raise UnknownStaff(fields={"reviewer_id": ["No such member of staff here."]})
    _staff_member(db, reviewer_id, admin_orgs(caller), "reviewer_id")
    before = review.reviewer_id
    if before != reviewer_id:
        review.reviewer_id = reviewer_id
        review.updated_at = now
        db.emit(
            events.REVIEWER_ASSIGNED,
            subject_type="review",
            subject_id=review.id,
            org_id=review.org_id,
            changes={"reviewer_id": {"before": before, "after": reviewer_id}},
            data={"user_id": review.reviewee_id},
        )
    db.commit()
    return dump_review(review)


def visible_cycle_orgs(db: ServiceSession, caller: Identity) -> set[str]:
    """The organisations whose cycles an admin sees: those administered and
    the trusts of administered schools (a trust-wide cycle covers them)."""
    orgs = admin_orgs(caller)
    trusts = db.scalars(
        select(DirectoryOrganisation.parent_trust_id).where(
            DirectoryOrganisation.id.in_(orgs),
            DirectoryOrganisation.parent_trust_id.is_not(None),
        )
    )
    return orgs | {trust for trust in trusts if trust}


def get_cycle(db: ServiceSession, caller: Identity, cycle_id: Any) -> dict[str, Any]:
    """Admins of the cycle's organisation or of a school in its trust, and
    anyone with a review in it."""
    cycle = db.get(Cycle, cycle_id) if isinstance(cycle_id, str) else None
    if cycle is None or not (
        cycle.org_id in visible_cycle_orgs(db, caller)
        or _takes_part(db, caller, cycle.id)
    ):
        raise refuse(db, caller, "cycle", cycle_id, "reviews.get_cycle")
    return dump_cycle(cycle)


def _takes_part(db: ServiceSession, caller: Identity, cycle_id: str) -> bool:
    query = select(Review.id).where(
        Review.cycle_id == cycle_id,
        or_(Review.reviewee_id == caller.user_id, Review.reviewer_id == caller.user_id),
    )
    return db.scalar(query.limit(1)) is not None


def list_cycles(db: ServiceSession, caller: Identity) -> dict[str, Any]:
    """Cycles of the organisations the caller administers, and those in which
    the caller reviews or is reviewed; newest first."""
    mine = select(Review.cycle_id).where(
        or_(Review.reviewee_id == caller.user_id, Review.reviewer_id == caller.user_id)
    )
    query = select(Cycle).where(
        or_(Cycle.org_id.in_(visible_cycle_orgs(db, caller)), Cycle.id.in_(mine))
    )
    cycles = db.scalars(query.order_by(Cycle.starts_on.desc(), Cycle.id))
    return {"items": [dump_cycle(cycle) for cycle in cycles]}
