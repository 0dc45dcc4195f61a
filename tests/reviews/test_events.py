"""What the reviews service's events carry, for the audit service."""

from __future__ import annotations

import base64

from services.reviews import comments, events, evidence, observations
from services.reviews.storage import EvidenceStore
from tests.service_support import outbox

from .conftest import T0
from .support import open_elm_cycle, review_at

# Events about an organisation's process, not about one person.
ABOUT_NO_ONE = {events.CYCLE_OPENED, events.REPORT_EXPORTED}
# Keys of ``changes`` whose values are not free text.
PLAIN_KEYS = {
    "state",
    "type",
    "due_on",
    "cpd_record_ids",
    "status",
    "observed_on",
    "visibility",
    "reviewer_id",
    "kind",
    "content_type",
    "size",
    "sha256",
    "target_type",
    "target_id",
    "name",
    "org_id",
    "starts_on",
    "ends_on",
    "objectives_due",
    "interim_due",
    "final_due",
}


def a_busy_year(db, world, tmp_path):
    """A review to closed, progress, a comment, an observation read, a file."""
    cycle = open_elm_cycle(db, world)
    review = review_at(db, world, cycle, "closed")
    made = observations.create_observation(
        db,
        world.margo.identity,
        {
            "type": "formal",
            "observed_id": world.tom.id,
            "observed_on": "2030-11-12",
            "focus": "Pace",
            "strengths": "Warm",
            "areas_for_development": "Pace",
            "actions": "Timers",
        },
        now=T0,
    )
    observations.share_observation(db, world.margo.identity, made["id"], now=T0)
    observations.get_observation(db, world.tom.identity, made["id"], now=T0)
    observations.acknowledge_observation(
        db, world.tom.identity, made["id"], "Ok", now=T0
    )
    comments.add_comment(
        db,
        world.tom.identity,
        {"target_type": "review", "target_id": review["id"], "text": "Thanks"},
        now=T0,
    )
    store = EvidenceStore(tmp_path / "ev", 10_000)
    evidence.upload_evidence(
        db,
        world.margo.identity,
        {
            "target_type": "observation",
            "target_id": made["id"],
            "filename": "notes.txt",
            "content_base64": base64.b64encode(b"notes").decode(),
        },
        store,
        now=T0,
    )
    return outbox(db)


def test_every_event_about_a_person_names_them_as_data_user_id(db, world, tmp_path):
    """Audit encrypts under data.user_id: Tom, for everything about his year."""
    emitted = [
        e for e in a_busy_year(db, world, tmp_path) if e["type"] != "authz.denied"
    ]
    about_tom = [
        e
        for e in emitted
        if e["type"] not in ABOUT_NO_ONE and e["data"].get("user_id") == world.tom.id
    ]
    assert {e["type"] for e in about_tom} >= {
        events.OBJECTIVE_ADDED,
        events.SELF_REVIEW_SUBMITTED,
        events.REVIEW_SIGNED_OFF,
        events.OBSERVATION_CREATED,
        events.OBSERVATION_VIEWED,
        events.OBSERVATION_ACKNOWLEDGED,
        events.COMMENT_ADDED,
        events.EVIDENCE_UPLOADED,
    }
    for event in emitted:
        if event["type"] not in ABOUT_NO_ONE:
            assert event["data"].get("user_id"), event["type"]


def test_free_text_travels_only_under_the_personal_field_names(db, world, tmp_path):
    """Every key of changes is a known plain key or in events.PERSONAL_FIELDS."""
    known = {v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)}
    for event in a_busy_year(db, world, tmp_path):
        assert event["type"] in known
        for key in event["changes"]:
            assert key in PLAIN_KEYS or key in events.PERSONAL_FIELDS, (
                event["type"],
                key,
            )
