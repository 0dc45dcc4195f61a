"""Who may do what: roles, the organisations a caller reaches, refusals.

Another organisation's object is answered NotFound with an ``authz.denied``
event, so that its existence is not revealed; a visible object the caller
may not act on is answered Forbidden, also with ``authz.denied``.
"""

from __future__ import annotations

from typing import Any, NoReturn

from sqlalchemy import select

from plumbing.database import ServiceSession
from plumbing.errors import Forbidden, NotFound
from plumbing.identity import Identity, deny
from services.training.models import Organisation

STAFF = "staff"
LINE_MANAGER = "line_manager"
CPD_LEAD = "cpd_lead"
SCHOOL_ADMIN = "school_admin"
TRUST_ADMIN = "trust_admin"
AUDITOR = "auditor"

# Run the catalogue, events, bookings and attendance of the orgs they cover.
LEAD_ROLES = (CPD_LEAD,)
# Change a school's training settings, budgets and targets.
SETTINGS_ROLES = (CPD_LEAD, SCHOOL_ADMIN, TRUST_ADMIN)
# Read reports and everyone's records in the orgs they cover.
READER_ROLES = (CPD_LEAD, SCHOOL_ADMIN, TRUST_ADMIN, AUDITOR)
ALL_ROLES = (STAFF, LINE_MANAGER, CPD_LEAD, SCHOOL_ADMIN, TRUST_ADMIN, AUDITOR)


def lead_orgs(caller: Identity) -> set[str]:
    return caller.orgs_for(LEAD_ROLES)


def reader_orgs(caller: Identity) -> set[str]:
    return caller.orgs_for(READER_ROLES)


def visible_orgs(db: ServiceSession, caller: Identity) -> set[str]:
    """Where the caller may see catalogues and events: their own org, every
    org a role covers, and the trusts those schools belong to."""
    orgs = {caller.org_id} | caller.orgs_for(ALL_ROLES)
    parents = db.scalars(
        select(Organisation.parent_trust_id).where(
            Organisation.id.in_(orgs), Organisation.parent_trust_id.is_not(None)
        )
    )
    return orgs | {parent for parent in parents if parent}


def not_found(
    db: ServiceSession,
    caller: Identity,
    subject_type: str,
    subject_id: Any,
    action: str,
    org_id: str | None = None,
) -> NoReturn:
    """Record ``authz.denied`` and answer NotFound."""
    deny(
        db,
        caller,
        subject_type=subject_type,
        subject_id=subject_id,
        action=action,
        org_id=org_id,
    )
    raise NotFound(f"No such {subject_type}")


def forbidden(
    db: ServiceSession,
    caller: Identity,
    subject_type: str,
    subject_id: Any,
    action: str,
    org_id: str | None = None,
    error: Exception | None = None,
) -> NoReturn:
    """Record ``authz.denied`` and answer Forbidden (or the error given)."""
    deny(
        db,
        caller,
        subject_type=subject_type,
        subject_id=subject_id,
        action=action,
        org_id=org_id,
    )
    raise error or Forbidden(f"You may not do this to this {subject_type}")
