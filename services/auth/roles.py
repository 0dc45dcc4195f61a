"""The role catalogue and what each role's organisation covers."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.auth.models import Organisation, RoleGrant

STAFF = "staff"
LINE_MANAGER = "line_manager"
CPD_LEAD = "cpd_lead"
SCHOOL_ADMIN = "school_admin"
TRUST_ADMIN = "trust_admin"
AUDITOR = "auditor"

ROLES: dict[str, str] = {
    STAFF: "Sees and keeps their own records.",
    LINE_MANAGER: "Staff, plus the records of the people they line-manage.",
    CPD_LEAD: "Runs training across their school (or trust): courses and CPD.",
    SCHOOL_ADMIN: "Manages the users and settings of their school.",
    TRUST_ADMIN: "School admin across the trust and its central team.",
    AUDITOR: "Reads the audit log of their school or trust.",
}

# Roles that manage users of the organisations they cover.
ADMIN_ROLES = (SCHOOL_ADMIN, TRUST_ADMIN)
# Roles that may read the users of the organisations they cover.
READER_ROLES = (SCHOOL_ADMIN, TRUST_ADMIN, CPD_LEAD, AUDITOR)


def catalogue() -> list[dict[str, str]]:
    return [{"role": role, "description": text} for role, text in ROLES.items()]


def covered_orgs(db: Session, org_ids: Iterable[str]) -> dict[str, set[str]]:
    """For each organisation, the ones a role held there covers: a school
    covers itself, a trust itself and all its schools."""
    org_ids = set(org_ids)
    covered = {org_id: {org_id} for org_id in org_ids}
    if org_ids:
        schools = db.execute(
            select(Organisation.id, Organisation.parent_trust_id).where(
                Organisation.parent_trust_id.in_(org_ids)
            )
        )
        for school_id, trust_id in schools:
            covered[trust_id].add(school_id)
    return covered


def scopes_for(db: Session, grants: Iterable[RoleGrant]) -> dict[str, list[str]]:
    """The ``scopes`` claim: each role held, to the organisation ids it covers."""
    grants = list(grants)
    covered = covered_orgs(db, {grant.org_id for grant in grants})
    scopes: dict[str, set[str]] = {}
    for grant in grants:
        scopes.setdefault(grant.role, set()).update(covered[grant.org_id])
    return {role: sorted(orgs) for role, orgs in sorted(scopes.items())}
