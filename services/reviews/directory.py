"""This service's copy of the staff directory, kept from auth's events.

Why a copy and not an RPC to auth: opening a cycle needs every member of
staff of a school or trust with their line manager, and reports need names,
without making every review depend on auth answering. The copy is fed by
``auth.organisation_created``, ``auth.user_created``, ``auth.user_updated``,
``auth.user_deactivated`` and ``auth.user_reactivated``.

Delivery is at least once and the events of one user travel on different
queues, so they may arrive twice or out of order. Each applied event id is
kept (a repeat is skipped), and each field remembers the ``occurred_at`` of
the event that set it: an older event never overwrites a newer value.

Users created before the reviews service first declared its queues never
reach it as events: an admin copies them with ``sync_directory``, which asks
auth by RPC (with the admin's identity, so only what the admin may read).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from plumbing.database import ServiceSession
from plumbing.identity import Identity
from services.reviews import events
from services.reviews.access import admin_orgs, refuse
from services.reviews.models import DirectoryOrganisation, DirectoryUser, ProcessedEvent

USER_FIELDS = ("org_id", "line_manager_id", "given_name", "family_name", "active")
SYNC_PAGE = 100


def apply_event(db: ServiceSession, envelope: dict[str, Any], *, now: datetime) -> bool:
    """Apply one auth event to the directory and commit; False for a repeat."""
    db.add(ProcessedEvent(event_id=str(envelope["event_id"]), processed_at=now))
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        return False
    event_type = envelope["type"]
    subject_id = envelope["subject"]["id"]
    values = {k: c.get("after") for k, c in (envelope.get("changes") or {}).items()}
    if event_type == "auth.organisation_created":
        _apply_organisation(db, subject_id, values)
    else:
        if event_type == "auth.user_deactivated":
            values = {"active": False}
        elif event_type == "auth.user_reactivated":
            values = {"active": True}
        _apply_user(db, subject_id, values, _stamp(envelope["occurred_at"]))
    db.commit()
    return True


def _stamp(occurred_at: Any) -> str:
    """A sortable text form of the event time (UTC, microseconds always)."""
    when = (
        occurred_at
        if isinstance(occurred_at, datetime)
        else datetime.fromisoformat(str(occurred_at))
    )
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def _apply_organisation(
    db: ServiceSession, org_id: str, values: dict[str, Any]
) -> None:
    if db.get(DirectoryOrganisation, org_id) is None:
        db.add(
            DirectoryOrganisation(
                id=org_id,
                kind=values.get("kind") or "school",
                name=values.get("name") or "",
                parent_trust_id=values.get("parent_trust_id"),
            )
        )


def _apply_user(
    db: ServiceSession, user_id: str, values: dict[str, Any], occurred_at: str
) -> None:
    user = db.get(DirectoryUser, user_id, with_for_update=True)
    if user is None:
        user = DirectoryUser(id=user_id, active=True, versions={})
        db.add(user)
    versions = dict(user.versions or {})
    for field in USER_FIELDS:
        if field not in values:
            continue
        if versions.get(field, "") > occurred_at:
            continue
        setattr(user, field, values[field])
        versions[field] = occurred_at
    user.versions = versions


def schools_of(db: ServiceSession, org_id: str) -> set[str]:
    """The organisation and, for a trust, its schools."""
    found = {org_id}
    found.update(
        db.scalars(
            select(DirectoryOrganisation.id).where(
                DirectoryOrganisation.parent_trust_id == org_id
            )
        )
    )
    return found


def staff_of(db: ServiceSession, org_ids: set[str]) -> list[DirectoryUser]:
    """Active staff of these organisations."""
    return list(
        db.scalars(
            select(DirectoryUser)
            .where(DirectoryUser.org_id.in_(org_ids), DirectoryUser.active.is_(True))
            .order_by(DirectoryUser.id)
        )
    )


def sync_from_auth(
    db: ServiceSession, caller: Identity, auth_rpc: Any, *, now: datetime
) -> dict[str, Any]:
    """An admin copies from auth the organisations and users their roles
    cover, for people created before this service first listened to auth's
    events; commits. Each value is stamped ``now``, so an event that
    happened earlier does not undo it and a later one does."""
    orgs = admin_orgs(caller)
    if not orgs:
        raise refuse(
            db, caller, "organisation", caller.org_id, "reviews.sync_directory"
        )
    stamp = _stamp(now)
    organisations = [
        org for org in auth_rpc.list_organisations()["items"] if org["id"] in orgs
    ]
    for org in organisations:
        _apply_organisation(db, org["id"], org)
    synced = 0
    offset = 0
    while True:
        page = auth_rpc.list_users(offset=offset, limit=SYNC_PAGE)
        for user in page["items"]:
            if user["org_id"] in orgs:
                values = {field: user.get(field) for field in USER_FIELDS}
                _apply_user(db, user["id"], values, stamp)
                synced += 1
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            break
    db.emit(
        events.STAFF_DIRECTORY_SYNCED,
        subject_type="organisation",
        subject_id=caller.org_id,
        org_id=caller.org_id,
        data={"organisations": len(organisations), "users": synced},
    )
    db.commit()
    return {"organisations": len(organisations), "users": synced}
