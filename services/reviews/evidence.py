"""Evidence attached to a review, an objective or an observation: a file
uploaded to this service or a link.

Adding needs the right to act on the target (the review's reviewer or
reviewee, an observation's observer or observed teacher); reading and
downloading need the right to read the target. A file is written before the
row that names it is committed, and removed again if that commit fails, so a
failed upload leaves neither a row nor a file.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select

from plumbing.database import ServiceSession
from plumbing.errors import ValidationFailed
from plumbing.identity import Identity
from services.reviews import events
from services.reviews.access import (
    forbid,
    readable_objective,
    readable_observation,
    readable_review,
    refuse,
)
from services.reviews.exceptions import ReviewClosed, UploadChecksumMismatch
from services.reviews.models import CLOSED, Evidence
from services.reviews.schemas import (
    EvidenceLinkSchema,
    EvidenceUploadSchema,
    dump_evidence,
    load,
)
from services.reviews.storage import EvidenceStore


def _target(
    db: ServiceSession,
    caller: Identity,
    target_type: str,
    target_id: Any,
    action: str,
    write: bool,
) -> tuple[str, str]:
    """Check the caller's right to the target; return its organisation and
    the person it is about (the reviewee or the observed teacher)."""
    if target_type == "observation":
        observation = readable_observation(db, caller, target_id, action)
        if write and caller.user_id not in (
            observation.observer_id,
            observation.observed_id,
        ):
            raise forbid(
                db, caller, "observation", target_id, action, observation.org_id
            )
        return observation.org_id, observation.observed_id
    if target_type == "objective":
        _objective, review = readable_objective(db, caller, target_id, action)
    else:
        review = readable_review(db, caller, target_id, action)
    if write:
        if caller.user_id not in (review.reviewer_id, review.reviewee_id):
            raise forbid(db, caller, target_type, target_id, action, review.org_id)
        if review.state == CLOSED:
            raise ReviewClosed()
    return review.org_id, review.reviewee_id


def _decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            fields={"content_base64": ["Not valid base64."]}
        ) from None


def upload_evidence(
    db: ServiceSession,
    caller: Identity,
    data: object,
    store: EvidenceStore,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Check and keep a file; emits ``reviews.evidence_uploaded``."""
    values = load(EvidenceUploadSchema(), data)
    action = "reviews.upload_evidence"
    org_id, person = _target(
        db, caller, values["target_type"], values["target_id"], action, write=True
    )
    content = _decode(values["content_base64"])
    checked = store.check(values["filename"], content)
    if values["sha256"] is not None and values["sha256"] != checked.sha256:
        raise UploadChecksumMismatch()
    evidence = Evidence(
        id=str(uuid.uuid4()),
        org_id=org_id,
        target_type=values["target_type"],
        target_id=values["target_id"],
        kind="file",
        title=values["title"],
        filename=checked.filename,
        content_type=checked.content_type,
        size=checked.size,
        sha256=checked.sha256,
        added_by=caller.user_id,
        added_at=now,
    )
    db.add(evidence)
    _emit_added(db, evidence, events.EVIDENCE_UPLOADED, person)
    store.save(evidence.id, content)
    try:
        db.commit()
    except BaseException:
        store.discard(evidence.id)
        raise
    return dump_evidence(evidence)


def link_evidence(
    db: ServiceSession, caller: Identity, data: object, *, now: datetime
) -> dict[str, Any]:
    """Attach a link; emits ``reviews.evidence_linked``."""
    values = load(EvidenceLinkSchema(), data)
    org_id, person = _target(
        db,
        caller,
        values["target_type"],
        values["target_id"],
        "reviews.link_evidence",
        write=True,
    )
    evidence = Evidence(
        id=str(uuid.uuid4()),
        org_id=org_id,
        kind="link",
        added_by=caller.user_id,
        added_at=now,
        **values,
    )
    db.add(evidence)
    _emit_added(db, evidence, events.EVIDENCE_LINKED, person)
    db.commit()
    return dump_evidence(evidence)


def _emit_added(
    db: ServiceSession, evidence: Evidence, event_type: str, person: str
) -> None:
    db.flush()
    db.emit(
        event_type,
        subject_type="evidence",
        subject_id=evidence.id,
        org_id=evidence.org_id,
        changes={
            name: {"before": None, "after": value}
            for name, value in dump_evidence(evidence).items()
            if name not in ("id", "added_at", "added_by") and value is not None
        },
        data={"user_id": person},
    )


def list_evidence(
    db: ServiceSession, caller: Identity, target_type: Any, target_id: Any
) -> dict[str, Any]:
    if target_type not in ("review", "objective", "observation"):
        raise ValidationFailed(fields={"target_type": ["Unknown target type."]})
    _target(db, caller, target_type, target_id, "reviews.list_evidence", write=False)
    rows = db.scalars(
        select(Evidence)
        .where(Evidence.target_type == target_type, Evidence.target_id == target_id)
        .order_by(Evidence.added_at, Evidence.id)
    )
    return {"items": [dump_evidence(row) for row in rows]}


def download_evidence(
    db: ServiceSession,
    caller: Identity,
    evidence_id: Any,
    store: EvidenceStore,
) -> dict[str, Any]:
    """The file, checked like a read of its target and against its checksum;
    emits ``reviews.evidence_downloaded``."""
    action = "reviews.download_evidence"
    evidence = db.get(Evidence, evidence_id) if isinstance(evidence_id, str) else None
    if evidence is None:
        raise refuse(db, caller, "evidence", evidence_id, action)
    _org, person = _target(
        db, caller, evidence.target_type, evidence.target_id, action, False
    )
    if evidence.kind != "file":
        raise ValidationFailed(
            "This evidence is a link", fields={"kind": ["Not a file."]}
        )
    content = store.read(evidence.id, evidence.sha256 or "")
    db.emit(
        events.EVIDENCE_DOWNLOADED,
        subject_type="evidence",
        subject_id=evidence.id,
        org_id=evidence.org_id,
        data={
            "user_id": person,
            "target_type": evidence.target_type,
            "target_id": evidence.target_id,
        },
    )
    db.commit()
    return dict(
        dump_evidence(evidence),
        content_base64=base64.b64encode(content).decode("ascii"),
    )
