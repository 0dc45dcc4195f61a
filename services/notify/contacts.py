"""This service's copy of names and addresses, kept from auth's events, and
its erasure.

Why a copy: a booking decided while the auth service is down must still be
emailed. The copy is fed by ``auth.organisation_created``,
``auth.user_created``, ``auth.user_updated`` (which carries the changed
fields, roles included), ``auth.user_deactivated``,
``auth.user_reactivated``, ``auth.role_granted`` and ``auth.role_revoked``;
``notify.send_invitations`` also fills it, since an invitation can arrive
before the event of the same user.

People created before notify first listened (an installation that adds
notify later) are copied by a school or trust admin with
:func:`sync_from_auth`, which asks auth by RPC with the admin's identity,
so it copies only what the admin may read.

Delivery is at least once and in any order: each field remembers the
``occurred_at`` of the event that set it, and an older event never
overwrites a newer value (see the reviews service's directory, which works
the same way).

Erasure (``audit.subject_key_erased`` for a user, the platform's erasure
step): the contact keeps only its id; the person's notifications, emails and
preferences are deleted, and notifications of others that name them lose
the name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update

from plumbing.database import ServiceSession
from plumbing.errors import NotFound
from plumbing.identity import Identity, deny
from services.notify import events
from services.notify.models import (
    HELD,
    QUEUED,
    SUPPRESSED,
    Contact,
    Email,
    Notification,
    Organisation,
    Preference,
    RecipientSettings,
)

FIELDS = (
    "org_id",
    "username",
    "email",
    "given_name",
    "family_name",
    "line_manager_id",
    "active",
    "roles",
)
ERASED_TITLE = "A message about a person whose details were erased"


def stamp(occurred_at: Any) -> str:
    """A sortable text form of an event time (UTC, microseconds always)."""
    when = (
        occurred_at
        if isinstance(occurred_at, datetime)
        else datetime.fromisoformat(str(occurred_at))
    )
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def apply_organisation(db: ServiceSession, org_id: str, values: dict[str, Any]) -> None:
    organisation = db.get(Organisation, org_id)
    if organisation is None:
        organisation = Organisation(id=org_id, kind="school", name="")
        db.add(organisation)
    for field in ("kind", "name", "parent_trust_id"):
        if values.get(field) is not None:
            setattr(organisation, field, values[field])


def apply_user(
    db: ServiceSession, user_id: str, values: dict[str, Any], occurred_at: str
) -> Contact:
    contact = db.get(Contact, user_id, with_for_update=True)
    if contact is None:
        contact = Contact(user_id=user_id, active=True, roles=[], versions={})
        db.add(contact)
    if contact.erased_at is not None:
        return contact
    versions = dict(contact.versions or {})
    for field in FIELDS:
        if field not in values or versions.get(field, "") > occurred_at:
            continue
        value = values[field]
        if field == "roles":
            value = [{"role": g["role"], "org_id": g["org_id"]} for g in value or ()]
        setattr(contact, field, value)
        versions[field] = occurred_at
    contact.versions = versions
    return contact


def apply_role(
    db: ServiceSession, user_id: str, grant: dict[str, str], granted: bool, when: str
) -> None:
    contact = db.get(Contact, user_id, with_for_update=True)
    if contact is None:
        contact = Contact(user_id=user_id, active=True, roles=[], versions={})
        db.add(contact)
    if contact.erased_at is not None:
        return
    versions = dict(contact.versions or {})
    if versions.get("roles", "") > when:
        return
    roles = [g for g in contact.roles or () if g != grant]
    if granted:
        roles.append(grant)
    contact.roles = roles
    versions["roles"] = when
    contact.versions = versions


def apply_auth_event(db: ServiceSession, envelope: dict[str, Any]) -> Contact | None:
    """Apply one auth event to the copy; the contact it concerns, if any."""
    event_type = envelope["type"]
    subject_id = envelope["subject"]["id"]
    values = {k: c.get("after") for k, c in (envelope.get("changes") or {}).items()}
    when = stamp(envelope["occurred_at"])
    if event_type == "auth.organisation_created":
        apply_organisation(db, subject_id, values)
        return None
    if event_type in ("auth.role_granted", "auth.role_revoked"):
        data = envelope.get("data") or {}
        role, role_org_id = data.get("role"), data.get("role_org_id")
        # Auth always names both; a grant without them would match no role.
        if isinstance(role, str) and isinstance(role_org_id, str):
            grant = {"role": role, "org_id": role_org_id}
            granted = event_type == "auth.role_granted"
            apply_role(db, subject_id, grant, granted, when)
        return db.get(Contact, subject_id)
    if event_type == "auth.user_deactivated":
        values = {"active": False}
    elif event_type == "auth.user_reactivated":
        values = {"active": True}
    elif event_type not in ("auth.user_created", "auth.user_updated"):
        return db.get(Contact, subject_id)
    return apply_user(db, subject_id, values, when)


SYNC_PAGE = 100
ADMIN_ROLES = ("school_admin", "trust_admin")


def admin_orgs(caller: Identity) -> set[str]:
    """The organisations whose staff and email the caller administers."""
    return caller.orgs_for(ADMIN_ROLES)


def sync_from_auth(
    db: ServiceSession, caller: Identity, auth_rpc: Any, *, now: datetime
) -> dict[str, Any]:
    """A school or trust admin: copy from auth the organisations and users
    their roles cover; commits. Each value is stamped ``now``, so an event
    that happened earlier does not undo it, and a later one does. Answers
    ``{organisations, users}``; emits ``notify.contacts_synced``."""
    orgs = admin_orgs(caller)
    if not orgs:
        deny(
            db,
            caller,
            subject_type="organisation",
            subject_id=caller.org_id,
            action="notify.sync_contacts",
        )
        raise NotFound("No organisation of yours to copy")
    when = stamp(now)
    organisations = [
        o for o in auth_rpc.list_organisations()["items"] if o["id"] in orgs
    ]
    for organisation in organisations:
        apply_organisation(db, organisation["id"], organisation)
    synced = 0
    offset = 0
    while True:
        page = auth_rpc.list_users(offset=offset, limit=SYNC_PAGE)
        for user in page["items"]:
            if user.get("org_id") in orgs:
                values = {field: user.get(field) for field in FIELDS if field in user}
                apply_user(db, user["id"], values, when)
                synced += 1
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            break
    db.emit(
        events.CONTACTS_SYNCED,
        subject_type="organisation",
        subject_id=caller.org_id,
        org_id=caller.org_id,
        data={"organisations": len(organisations), "users": synced},
    )
    db.commit()
    return {"organisations": len(organisations), "users": synced}


def cpd_leads(db: ServiceSession, org_id: str) -> list[str]:
    """Active users holding ``cpd_lead`` at the school or at its trust.

    Roles are granted within a trust, so only the people of the school's
    trust (or of the school alone) are read.
    """
    organisation = db.get(Organisation, org_id)
    covering = {org_id}
    family = {org_id}
    trust_id = organisation.parent_trust_id if organisation is not None else None
    if trust_id:
        covering.add(trust_id)
        family.add(trust_id)
        family.update(
            db.scalars(
                select(Organisation.id).where(Organisation.parent_trust_id == trust_id)
            )
        )
    found = []
    for contact in db.scalars(
        select(Contact).where(
            Contact.org_id.in_(family),
            Contact.active.is_(True),
            Contact.erased_at.is_(None),
        )
    ):
        if any(
            g.get("role") == "cpd_lead" and g.get("org_id") in covering
            for g in contact.roles or ()
        ):
            found.append(contact.user_id)
    return sorted(found)


def erase(db: ServiceSession, user_id: str, *, now: datetime) -> None:
    """Forget a person: keep the id only, so later events about them are
    not mistaken for someone new."""
    contact = db.get(Contact, user_id, with_for_update=True)
    if contact is None:
        contact = Contact(user_id=user_id, active=False, roles=[], versions={})
        db.add(contact)
    contact.org_id = None
    contact.username = None
    contact.email = None
    contact.given_name = None
    contact.family_name = None
    contact.line_manager_id = None
    contact.roles = []
    contact.active = False
    contact.erased_at = now
    db.execute(
        update(Email)
        .where(Email.user_id == user_id)
        .values(
            to_address=None,
            subject="(erased)",
            text_body="",
            html_body="",
            attachments=[],
            notification_id=None,
        )
    )
    db.execute(
        update(Email)
        .where(Email.user_id == user_id, Email.status.in_((QUEUED, HELD)))
        .values(status=SUPPRESSED, last_error="The recipient was erased")
    )
    db.execute(delete(Notification).where(Notification.user_id == user_id))
    db.execute(delete(Preference).where(Preference.user_id == user_id))
    db.execute(delete(RecipientSettings).where(RecipientSettings.user_id == user_id))
    # Others' notifications that name the person lose the name; emails not
    # yet sent about them are not sent.
    named = list(
        db.scalars(select(Notification.id).where(Notification.about_user_id == user_id))
    )
    if named:
        db.execute(
            update(Notification)
            .where(Notification.id.in_(named))
            .values(title=ERASED_TITLE, body="", about_user_id=None)
        )
        db.execute(
            update(Email)
            .where(Email.notification_id.in_(named), Email.status.in_((QUEUED, HELD)))
            .values(
                status=SUPPRESSED,
                last_error="The person it named was erased",
                subject="(erased)",
                text_body="",
                html_body="",
                attachments=[],
                # No address: it can never be queued again.
                to_address=None,
            )
        )
