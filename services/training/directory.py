"""Organisations and staff as the auth service announced them, plus the
training settings of each school and the department and job role of each
member of staff.

Line managers decide booking requests, but a caller's identity carries only
roles, not who manages whom. Rather than asking the auth service on every
approval (which would make approvals fail whenever auth is away), the
training service keeps a local copy of the relation, fed by auth's
``auth.organisation_created``, ``auth.user_created``, ``auth.user_updated``,
``auth.user_deactivated`` and ``auth.user_reactivated`` events. Each event is
applied once: its id is stored in the same transaction as its effect.

Events published before the training service first declared its queues
never reach it, so what the copy lacks is asked of the auth service by RPC,
under the caller's own identity, and kept: the caller's organisation (its
trust and time zone), the caller's own line manager, and, for a line
manager deciding a request, whether the requester reports to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.exc import IntegrityError

from plumbing.database import ServiceSession
from plumbing.envelope import diff
from plumbing.errors import ValidationFailed
from plumbing.identity import Identity
from services.training import access, events
from services.training.formatting import money
from services.training.models import Organisation, ProcessedEvent, Staff
from services.training.schemas import SettingsSchema, StaffProfileSchema, load


class AuthLookup(Protocol):
    """What the auth service answers about a user or organisation; None
    when it does not know, may not say, or cannot be reached."""

    def get_user(self, user_id: str) -> dict[str, Any] | None: ...

    def get_organisation(self, org_id: str) -> dict[str, Any] | None: ...


def organisation(db: ServiceSession, org_id: str) -> Organisation:
    """The organisation's row, made with default settings if none exists yet."""
    org = db.get(Organisation, org_id)
    if org is None:
        org = Organisation(id=org_id)
        db.add(org)
        db.flush()
    return org


def staff_member(db: ServiceSession, user_id: str, org_id: str) -> Staff:
    """The staff row of a user, made if the auth event has not arrived yet."""
    staff = db.get(Staff, user_id)
    if staff is None:
        staff = Staff(user_id=user_id, org_id=org_id)
        db.add(staff)
        db.flush()
    return staff


def _after(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        key: change.get("after")
        for key, change in (payload.get("changes") or {}).items()
    }


def apply_auth_event(
    db: ServiceSession, payload: dict[str, Any], now: datetime
) -> bool:
    """Apply one auth event to the local copy, once; commits.

    Returns False when the event was already applied (a redelivery).
    """
    event_id = str(payload["event_id"])
    if db.get(ProcessedEvent, event_id) is not None:
        return False
    db.add(ProcessedEvent(event_id=event_id, processed_at=now))
    subject_id = payload["subject"]["id"]
    values = _after(payload)
    if payload["type"] == "auth.organisation_created":
        _apply_organisation(db, subject_id, values)
    else:
        _apply_user(db, subject_id, payload.get("org_id"), values)
    try:
        db.commit()
    except IntegrityError:
        # Another instance applied the same event at the same moment.
        db.rollback()
        return False
    return True


def _apply_organisation(
    db: ServiceSession, org_id: str, values: dict[str, Any]
) -> None:
    org = organisation(db, org_id)
    for key in ("kind", "name", "parent_trust_id", "timezone"):
        if key not in values:
            continue
        if values[key] is not None or key == "parent_trust_id":
            setattr(org, key, values[key])


def _apply_user(
    db: ServiceSession, user_id: str, org_id: str | None, values: dict[str, Any]
) -> Staff:
    """Apply a user's values to their copy, made if missing; the copy."""
    staff = staff_member(db, user_id, values.get("org_id") or org_id or "")
    if "org_id" in values and "line_manager_id" in values:
        staff.synced = True  # the whole user, as created
    if "org_id" in values:
        staff.org_id = values["org_id"]
    if "line_manager_id" in values:
        staff.line_manager_id = values["line_manager_id"]
    if "active" in values:
        staff.active = bool(values["active"])
    if "given_name" in values or "family_name" in values:
        names = staff.display_name.split(" ", 1) if staff.display_name else ["", ""]
        given = values.get("given_name", names[0])
        family = values.get("family_name", names[1] if len(names) > 1 else "")
        staff.display_name = f"{given} {family}".strip()
    return staff


def ensure_organisation(
    db: ServiceSession, org_id: str | None, auth: AuthLookup | None
) -> None:
    """Copy the organisation from auth if its event never arrived; commits."""
    if not org_id or auth is None:
        return
    org = db.get(Organisation, org_id)
    if org is not None and org.synced:
        return
    found = auth.get_organisation(org_id)
    if not found:
        return
    values = {key: found.get(key) for key in ("kind", "name", "parent_trust_id")}
    values["timezone"] = found.get("timezone") or "Europe/London"
    _apply_organisation(db, org_id, values)
    db.commit()


def ensure_staff(db: ServiceSession, caller: Identity, auth: AuthLookup | None) -> None:
    """Copy the caller's own record (school, line manager) from auth if its
    event never arrived; commits."""
    staff = db.get(Staff, caller.user_id)
    if auth is None or (staff is not None and staff.synced):
        return
    found = auth.get_user(caller.user_id)
    if found:
        staff = _apply_user(db, caller.user_id, caller.org_id, _user_values(found))
        staff.synced = True
        db.commit()


def ensure_user(db: ServiceSession, user_id: str, auth: AuthLookup | None) -> None:
    """Copy a user the caller may read (a CPD lead's or admin's staff) from
    auth if their event never arrived; commits."""
    staff = db.get(Staff, user_id)
    if auth is None or (staff is not None and staff.synced):
        return
    found = auth.get_user(user_id)
    if found and found.get("org_id"):
        staff = _apply_user(db, user_id, found["org_id"], _user_values(found))
        staff.synced = True
        db.commit()


def ensure_manager(
    db: ServiceSession, caller: Identity, user_id: str, auth: AuthLookup | None
) -> None:
    """For a line manager the copy does not show as ``user_id``'s: ask auth
    (which lets a manager read their reports) and keep its answer; commits."""
    if auth is None or not caller.has_role(access.LINE_MANAGER):
        return
    staff = db.get(Staff, user_id)
    if staff is not None and staff.line_manager_id == caller.user_id:
        return
    found = auth.get_user(user_id)
    if found and found.get("line_manager_id") == caller.user_id:
        staff = _apply_user(db, user_id, found.get("org_id"), _user_values(found))
        staff.synced = True
        db.commit()


def _user_values(found: dict[str, Any]) -> dict[str, Any]:
    keys = ("org_id", "line_manager_id", "active", "given_name", "family_name")
    return {key: found[key] for key in keys if key in found}


def dump_settings(org: Organisation) -> dict[str, Any]:
    return {
        "org_id": org.id,
        "kind": org.kind,
        "name": org.name,
        "parent_trust_id": org.parent_trust_id,
        "timezone": org.timezone,
        "cover_daily_rate": money(org.cover_daily_rate),
        "cpd_lead_approval": org.cpd_lead_approval,
        "budget_policy": org.budget_policy,
        "followup_weeks": org.followup_weeks,
    }


def get_settings(db: ServiceSession, caller: Identity, org_id: str) -> dict[str, Any]:
    """Anyone whose roles cover the org, or who works there."""
    if org_id != caller.org_id and org_id not in caller.orgs_for(access.ALL_ROLES):
        access.not_found(db, caller, "organisation", org_id, "training.get_settings")
    return dump_settings(organisation(db, org_id))


def update_settings(
    db: ServiceSession, caller: Identity, org_id: str, data: Any
) -> dict[str, Any]:
    """A CPD lead or admin covering the org; emits
    ``training.organisation_settings_updated``."""
    values = load(SettingsSchema(), data)
    if "timezone" in values:
        try:
            ZoneInfo(values["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed(
                fields={"timezone": ["Not a known time zone."]}
            ) from None
    if org_id not in caller.orgs_for(access.SETTINGS_ROLES):
        access.not_found(db, caller, "organisation", org_id, "training.update_settings")
    org = organisation(db, org_id)
    before = dump_settings(org)
    for key, value in values.items():
        setattr(org, key, value)
    db.flush()
    changes = diff(before, dump_settings(org))
    if changes:
        db.emit(
            events.ORGANISATION_SETTINGS_UPDATED,
            subject_type="organisation",
            subject_id=org_id,
            org_id=org_id,
            changes=changes,
        )
    db.commit()
    return dump_settings(org)


def dump_staff(staff: Staff) -> dict[str, Any]:
    return {
        "user_id": staff.user_id,
        "org_id": staff.org_id,
        "line_manager_id": staff.line_manager_id,
        "display_name": staff.display_name,
        "active": staff.active,
        "department": staff.department,
        "job_role": staff.job_role,
    }


def update_staff_profile(
    db: ServiceSession, caller: Identity, user_id: str, data: Any
) -> dict[str, Any]:
    """A CPD lead or admin covering the member of staff's org: set their
    department and job role. Emits ``training.staff_profile_updated``."""
    values = load(StaffProfileSchema(), data)
    staff = db.get(Staff, user_id)
    if staff is None or staff.org_id not in caller.orgs_for(access.SETTINGS_ROLES):
        access.not_found(db, caller, "user", user_id, "training.update_staff_profile")
    before = dump_staff(staff)
    for key, value in values.items():
        setattr(staff, key, value)
    changes = diff(before, dump_staff(staff))
    if changes:
        db.emit(
            events.STAFF_PROFILE_UPDATED,
            subject_type="user",
            subject_id=user_id,
            org_id=staff.org_id,
            changes=changes,
        )
    db.commit()
    return dump_staff(staff)
