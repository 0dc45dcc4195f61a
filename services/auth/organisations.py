"""Trusts and schools: creating them and who may see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from plumbing.database import ServiceSession
from plumbing.errors import NotFound, ValidationFailed
from plumbing.identity import Identity, deny
from services.auth import events
from services.auth.models import Organisation
from services.auth.schemas import OrganisationCreateSchema, dump_org, load


def create_organisation(
    db: ServiceSession,
    data: dict[str, Any],
    *,
    now: datetime,
    actor: dict[str, Any] | None = None,
) -> Organisation:
    """Create a trust or a school (within a trust, or standalone); commits."""
    values = load(OrganisationCreateSchema(), data)
    parent_id = values["parent_trust_id"]
    if parent_id is not None:
        if values["kind"] != "school":
            raise ValidationFailed(
                fields={"parent_trust_id": ["Only a school can belong to a trust."]}
            )
        parent = db.get(Organisation, parent_id)
        if parent is None or parent.kind != "trust":
            raise ValidationFailed(fields={"parent_trust_id": ["No such trust."]})
    org = Organisation(**values, created_at=now)
    db.add(org)
    db.flush()
    db.emit(
        events.ORGANISATION_CREATED,
        subject_type="organisation",
        subject_id=org.id,
        org_id=org.id,
        changes={
            key: {"before": None, "after": value} for key, value in values.items()
        },
        actor=actor,
    )
    db.commit()
    return org


def family(db: ServiceSession, org: Organisation) -> set[str]:
    """The organisation's trust and all its schools, or a standalone school."""
    trust_id = org.id if org.kind == "trust" else org.parent_trust_id
    if trust_id is None:
        return {org.id}
    rows = db.scalars(
        select(Organisation.id).where(
            or_(Organisation.id == trust_id, Organisation.parent_trust_id == trust_id)
        )
    )
    return set(rows)


def visible_org_ids(caller: Identity) -> set[str]:
    """Every organisation the caller's roles cover, and their own."""
    return caller.orgs_for(caller.scopes) | {caller.org_id}


def list_organisations(db: ServiceSession, caller: Identity) -> dict[str, Any]:
    orgs = db.scalars(
        select(Organisation)
        .where(Organisation.id.in_(visible_org_ids(caller)))
        .order_by(Organisation.kind.desc(), Organisation.name)
    )
    return {"items": [dump_org(org) for org in orgs]}


def get_organisation(
    db: ServiceSession, caller: Identity, org_id: str
) -> dict[str, Any]:
    org = db.get(Organisation, org_id) if isinstance(org_id, str) else None
    if org is None or org.id not in visible_org_ids(caller):
        deny(
            db,
            caller,
            subject_type="organisation",
            subject_id=org_id,
            action="auth.get_organisation",
        )
        raise NotFound("No such organisation")
    return dump_org(org)


def list_all(db: ServiceSession) -> list[Organisation]:
    """Every organisation, trusts first (for operators)."""
    return list(
        db.scalars(
            select(Organisation).order_by(Organisation.kind.desc(), Organisation.name)
        )
    )
