"""Observations: written by the observer, draft until shared; the observed
teacher acknowledges and may respond. Visibility: ``participants`` (the two
of them), ``reviewer`` (also the observed teacher's reviewer), ``leaders``
(also the admins of the school). Every read of one observation by anyone but
its observer is an ``reviews.observation_viewed`` event and a row the
observed teacher can list. Lists carry no free text, so are not views.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from plumbing.database import ServiceSession
from plumbing.envelope import diff
from plumbing.errors import ValidationFailed
from plumbing.identity import Identity
from services.reviews import events
from services.reviews.access import (
    admin_orgs,
    forbid,
    readable_observation,
    refuse,
)
from services.reviews.exceptions import ObservationNotShared, ObservationShared
from services.reviews.models import (
    DirectoryUser,
    Observation,
    ObservationView,
    Review,
)
from services.reviews.schemas import (
    MAX_TEXT,
    ObservationCreateSchema,
    ObservationUpdateSchema,
    dump_observation,
    load,
    observation_state,
)

TEXT_FIELDS = ("focus", "strengths", "areas_for_development", "actions")
EDITED_FIELDS = ("type", "observed_on", "visibility", *TEXT_FIELDS)


def _snapshot(observation: Observation) -> dict[str, Any]:
    dumped = dump_observation(observation)
    return {name: dumped[name] for name in EDITED_FIELDS}


def _may_observe(db: ServiceSession, caller: Identity, person: DirectoryUser) -> bool:
    """Colleagues of the same school, its admins, and the person's reviewers."""
    if person.org_id == caller.org_id or person.org_id in admin_orgs(caller):
        return True
    query = select(Review.id).where(
        Review.reviewee_id == person.id, Review.reviewer_id == caller.user_id
    )
    return db.scalar(query.limit(1)) is not None


def create_observation(
    db: ServiceSession, caller: Identity, data: object, *, now: datetime
) -> dict[str, Any]:
    """Anyone may record an observation of a colleague; it starts as a draft."""
    values = load(ObservationCreateSchema(), data)
    action = "reviews.create_observation"
    if values["observed_id"] == caller.user_id:
        raise ValidationFailed(fields={"observed_id": ["Cannot observe yourself."]})
    person = db.get(DirectoryUser, values["observed_id"])
    if person is None or person.org_id is None or not _may_observe(db, caller, person):
        raise refuse(db, caller, "user", values["observed_id"], action)
    observation = Observation(
        **values,
        org_id=person.org_id,
        observer_id=caller.user_id,
        created_at=now,
        updated_at=now,
    )
    db.add(observation)
    db.flush()
    db.emit(
        events.OBSERVATION_CREATED,
        subject_type="observation",
        subject_id=observation.id,
        org_id=observation.org_id,
        changes={
            k: {"before": None, "after": v} for k, v in _snapshot(observation).items()
        },
        data={
            "user_id": person.id,
            "observer_id": caller.user_id,
            "observed_id": person.id,
        },
    )
    db.commit()
    return dump_observation(observation)


def _authored(
    db: ServiceSession, caller: Identity, observation_id: Any, action: str
) -> Observation:
    observation = readable_observation(db, caller, observation_id, action)
    if caller.user_id != observation.observer_id:
        raise forbid(
            db, caller, "observation", observation.id, action, observation.org_id
        )
    return observation


def update_observation(
    db: ServiceSession,
    caller: Identity,
    observation_id: Any,
    data: object,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The observer edits a draft."""
    values = load(ObservationUpdateSchema(), data)
    observation = _authored(db, caller, observation_id, "reviews.update_observation")
    if observation.shared_at is not None:
        raise ObservationShared()
    before = _snapshot(observation)
    for key, value in values.items():
        setattr(observation, key, value)
    changes = diff(before, _snapshot(observation))
    if changes:
        observation.updated_at = now
        db.emit(
            events.OBSERVATION_UPDATED,
            subject_type="observation",
            subject_id=observation.id,
            org_id=observation.org_id,
            changes=changes,
            data={"user_id": observation.observed_id},
        )
    db.commit()
    return dump_observation(observation)


def share_observation(
    db: ServiceSession, caller: Identity, observation_id: Any, *, now: datetime
) -> dict[str, Any]:
    """The observer shares a draft with the observed teacher (and, by its
    visibility, their reviewer and the school's leaders)."""
    observation = _authored(db, caller, observation_id, "reviews.share_observation")
    if observation.shared_at is not None:
        raise ObservationShared()
    observation.shared_at = now
    observation.updated_at = now
    db.emit(
        events.OBSERVATION_SHARED,
        subject_type="observation",
        subject_id=observation.id,
        org_id=observation.org_id,
        changes={"state": {"before": "draft", "after": "shared"}},
        data={
            "user_id": observation.observed_id,
            "visibility": observation.visibility,
        },
    )
    db.commit()
    return dump_observation(observation)


def acknowledge_observation(
    db: ServiceSession,
    caller: Identity,
    observation_id: Any,
    response: Any = None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The observed teacher acknowledges a shared observation, optionally
    with a response; acknowledging again replaces the response."""
    action = "reviews.acknowledge_observation"
    observation = readable_observation(db, caller, observation_id, action)
    if caller.user_id != observation.observed_id:
        raise forbid(
            db, caller, "observation", observation.id, action, observation.org_id
        )
    if observation.shared_at is None:
        raise ObservationNotShared()
    if response is not None and (
        not isinstance(response, str) or not 0 < len(response) <= MAX_TEXT
    ):
        raise ValidationFailed(fields={"response": [f"1 to {MAX_TEXT} characters."]})
    changes: dict[str, dict[str, str | None]] = {
        "state": {"before": observation_state(observation), "after": "acknowledged"}
    }
    if response is not None:
        changes["response"] = {"before": observation.response, "after": response}
        observation.response = response
    if observation.acknowledged_at is None:
        observation.acknowledged_at = now
    observation.updated_at = now
    db.emit(
        events.OBSERVATION_ACKNOWLEDGED,
        subject_type="observation",
        subject_id=observation.id,
        org_id=observation.org_id,
        changes=changes,
        data={"user_id": observation.observed_id},
    )
    db.commit()
    return dump_observation(observation)


def get_observation(
    db: ServiceSession, caller: Identity, observation_id: Any, *, now: datetime
) -> dict[str, Any]:
    """One observation; a read by anyone but its observer is recorded."""
    observation = readable_observation(
        db, caller, observation_id, "reviews.get_observation"
    )
    if caller.user_id != observation.observer_id:
        db.add(
            ObservationView(
                observation_id=observation.id, viewer_id=caller.user_id, viewed_at=now
            )
        )
        db.emit(
            events.OBSERVATION_VIEWED,
            subject_type="observation",
            subject_id=observation.id,
            org_id=observation.org_id,
            data={
                "user_id": observation.observed_id,
                "viewer_id": caller.user_id,
                "observed_id": observation.observed_id,
                "observer_id": observation.observer_id,
            },
        )
        db.commit()
    return dump_observation(observation)


def list_observation_views(
    db: ServiceSession, caller: Identity, observation_id: Any
) -> dict[str, Any]:
    """The observed teacher and the observer: who read it, and when."""
    action = "reviews.list_observation_views"
    observation = readable_observation(db, caller, observation_id, action)
    if caller.user_id not in (observation.observed_id, observation.observer_id):
        raise forbid(
            db, caller, "observation", observation.id, action, observation.org_id
        )
    views = db.scalars(
        select(ObservationView)
        .where(ObservationView.observation_id == observation.id)
        .order_by(ObservationView.viewed_at, ObservationView.id)
    )
    return {
        "items": [
            {"viewer_id": v.viewer_id, "viewed_at": v.viewed_at.isoformat()}
            for v in views
        ]
    }


def list_observations(
    db: ServiceSession, caller: Identity, observed_id: Any = None
) -> dict[str, Any]:
    """Summaries (no free text) of the observations the caller may read."""
    reviewees = select(Review.reviewee_id).where(Review.reviewer_id == caller.user_id)
    shared = Observation.shared_at.is_not(None)
    query = select(Observation).where(
        or_(
            Observation.observer_id == caller.user_id,
            and_(shared, Observation.observed_id == caller.user_id),
            and_(
                shared,
                Observation.visibility.in_(("reviewer", "leaders")),
                Observation.observed_id.in_(reviewees),
            ),
            and_(
                shared,
                Observation.visibility == "leaders",
                Observation.org_id.in_(admin_orgs(caller)),
            ),
        )
    )
    if observed_id is not None:
        query = query.where(Observation.observed_id == observed_id)
    rows = db.scalars(
        query.order_by(Observation.observed_on.desc(), Observation.id).limit(500)
    )
    return {"items": [_summary(o) for o in rows]}


def _summary(observation: Observation) -> dict[str, Any]:
    full = dump_observation(observation)
    for name in (*TEXT_FIELDS, "response"):
        full.pop(name)
    return full
