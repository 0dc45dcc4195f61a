"""Users and their roles: who may read or manage whom, and the changes.

Reading a user: the user themself, their line manager, and anyone holding
school_admin, trust_admin, cpd_lead or auditor at an organisation covering the
user's. Managing (create, update, deactivate, reactivate, import): holders of
school_admin or trust_admin covering the user's organisation (and inviting:
see :mod:`services.auth.invitations`). An object
outside the caller's reach is answered NotFound after an ``authz.denied``.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, func, or_, select

from plumbing.database import ServiceSession, table_of
from plumbing.envelope import diff
from plumbing.errors import Conflict, Forbidden, NotFound, ValidationFailed
from plumbing.identity import Identity, deny
from services.auth import accounts, delivery, events, invitations, passwords, sessions
from services.auth.exceptions import PasswordAlreadySet, UsernameTaken
from services.auth.models import CODE_PURPOSE_INVITATION, Organisation, RoleGrant, User
from services.auth.organisations import family
from services.auth.roles import ADMIN_ROLES, READER_ROLES, ROLES, TRUST_ADMIN
from services.auth.schemas import (
    ListUsersSchema,
    UserCreateSchema,
    UserUpdateSchema,
    dump_user,
    load,
)

# The fields of a user that ``auth.user_created`` / ``auth.user_updated``
# report. The password hash is never among them.
AUDITED_FIELDS = (
    "username",
    "given_name",
    "family_name",
    "email",
    "org_id",
    "line_manager_id",
    "active",
)


def snapshot(user: User) -> dict[str, Any]:
    values = {name: getattr(user, name) for name in AUDITED_FIELDS}
    values["roles"] = sorted(
        ({"role": g.role, "org_id": g.org_id} for g in user.roles),
        key=lambda g: (g["role"], g["org_id"]),
    )
    return values


def manageable_orgs(caller: Identity) -> set[str]:
    return caller.orgs_for(ADMIN_ROLES)


def can_read(caller: Identity, user: User) -> bool:
    return (
        user.id == caller.user_id
        or user.line_manager_id == caller.user_id
        or user.org_id in caller.orgs_for(READER_ROLES)
    )


def _refuse(
    db: ServiceSession,
    caller: Identity,
    subject_type: str,
    subject_id: object,
    action: str,
    error: type[Exception] = NotFound,
) -> Exception:
    deny(db, caller, subject_type=subject_type, subject_id=subject_id, action=action)
    if error is NotFound:
        return NotFound(f"No such {subject_type}")
    return error("You may not do this")


def readable_user(
    db: ServiceSession, caller: Identity, user_id: object, action: str
) -> User:
    user = db.get(User, user_id) if isinstance(user_id, str) else None
    if user is None or not can_read(caller, user):
        raise _refuse(db, caller, "user", user_id, action)
    return user


def managed_user(
    db: ServiceSession, caller: Identity, user_id: object, action: str
) -> User:
    """The user, if the caller may manage them: NotFound when the user is out
    of sight, Forbidden when the caller may see but not manage them."""
    user = readable_user(db, caller, user_id, action)
    if user.org_id not in manageable_orgs(caller):
        raise _refuse(db, caller, "user", user_id, action, Forbidden)
    return user


def managed_org(
    db: ServiceSession, caller: Identity, org_id: object, action: str
) -> Organisation:
    org = db.get(Organisation, org_id) if isinstance(org_id, str) else None
    if org is None or org.id not in manageable_orgs(caller):
        raise _refuse(db, caller, "organisation", org_id, action)
    return org


def check_grants(
    db: ServiceSession,
    caller: Identity | None,
    user_org: Organisation,
    grants: list[dict[str, str]],
    action: str,
) -> None:
    """Refuse roles the caller may not grant, or at unrelated organisations.

    A role's organisation must be the user's own, or in the same trust. The
    caller (None for an operator) must cover it with an admin role, and only a
    trust_admin may grant trust_admin, which is held at a trust.
    """
    related = family(db, user_org)
    problems: dict[str, Any] = {}
    for index, grant in enumerate(grants):
        org = db.get(Organisation, grant["org_id"])
        if caller is not None and (
            org is None or org.id not in manageable_orgs(caller)
        ):
            raise _refuse(db, caller, "organisation", grant["org_id"], action)
        if org is None or org.id not in related:
            problems[str(index)] = {"org_id": ["Not the user's school or trust."]}
        elif grant["role"] == TRUST_ADMIN and org.kind != "trust":
            problems[str(index)] = {"role": ["trust_admin is held at a trust."]}
        elif (
            grant["role"] == TRUST_ADMIN
            and caller is not None
            and not caller.has_role(TRUST_ADMIN, org.id)
        ):
            raise _refuse(db, caller, "organisation", org.id, action, Forbidden)
    if problems:
        raise ValidationFailed(fields={"roles": problems})


def check_revocable(
    db: ServiceSession,
    caller: Identity,
    user: User,
    grants: list[dict[str, str]],
    action: str,
) -> None:
    """Refuse taking away a role the caller could not have granted: one held at
    an organisation outside their scope, or trust_admin by a non-trust admin."""
    wanted = {(g["role"], g["org_id"]) for g in grants}
    for grant in user.roles:
        if (grant.role, grant.org_id) in wanted:
            continue
        if grant.org_id not in manageable_orgs(caller):
            raise _refuse(db, caller, "organisation", grant.org_id, action)
        if grant.role == TRUST_ADMIN and not caller.has_role(TRUST_ADMIN, grant.org_id):
            raise _refuse(db, caller, "organisation", grant.org_id, action, Forbidden)


def check_username_free(db: ServiceSession, username: str) -> None:
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise UsernameTaken(fields={"username": ["Already in use."]})


def check_line_manager(
    db: ServiceSession, manager_id: str | None, related: set[str], user_id: str | None
) -> None:
    if manager_id is None:
        return
    manager = db.get(User, manager_id)
    if manager is None or manager.org_id not in related or manager.id == user_id:
        raise ValidationFailed(
            fields={"line_manager_id": ["No such user in this school or trust."]}
        )


def insert_user(
    db: ServiceSession,
    values: dict[str, Any],
    grants: list[dict[str, str]],
    *,
    password_hash: str | None,
    now: datetime,
    actor: dict[str, Any] | None = None,
    announce: bool = True,
) -> User:
    """Add a checked user with their roles and, unless told not to, announce
    them (see :func:`announce_created`); the caller commits. It invites no
    one: :func:`create_user` and the importer do (the operator CLI and the
    test fixtures do not)."""
    user = User(
        **values,
        active=True,
        password_hash=password_hash,
        password_changed_at=now if password_hash else None,
        failed_logins=0,
        created_at=now,
        updated_at=now,
    )
    user.roles = [
        RoleGrant(role=g["role"], org_id=g["org_id"]) for g in _unique(grants)
    ]
    db.add(user)
    db.flush()
    if announce:
        announce_created(db, user, actor)
    return user


def announce_created(
    db: ServiceSession, user: User, actor: dict[str, Any] | None = None
) -> None:
    """Emit ``auth.user_created`` with every field, and ``auth.role_granted``
    for each role."""
    after = snapshot(user)
    db.emit(
        events.USER_CREATED,
        subject_type="user",
        subject_id=user.id,
        org_id=user.org_id,
        changes={key: {"before": None, "after": value} for key, value in after.items()},
        actor=actor,
    )
    for grant in after["roles"]:
        _emit_role(db, events.ROLE_GRANTED, user, grant, actor)


def _unique(grants: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for grant in grants:
        seen.setdefault((grant["role"], grant["org_id"]), grant)
    return list(seen.values())


def _emit_role(
    db: ServiceSession,
    event_type: str,
    user: User,
    grant: dict[str, str],
    actor: dict[str, Any] | None = None,
) -> None:
    db.emit(
        event_type,
        subject_type="user",
        subject_id=user.id,
        org_id=user.org_id,
        data={"role": grant["role"], "role_org_id": grant["org_id"]},
        actor=actor,
    )


def create_user(
    db: ServiceSession,
    caller: Identity,
    data: object,
    *,
    now: datetime,
    notify: delivery.Notify,
) -> dict[str, Any]:
    """Create a user in an organisation the caller manages and invite them
    (with a code that sets the password if none was given); commits, then
    sends the invitation. The user answered has ``invitation_sent``: false
    when notify could not take it (the user exists all the same)."""
    values = load(UserCreateSchema(), data)
    org = managed_org(db, caller, values["org_id"], "auth.create_user")
    grants = values.pop("roles") or [{"role": "staff", "org_id": org.id}]
    password = values.pop("password")
    check_grants(db, caller, org, grants, "auth.create_user")
    check_username_free(db, values["username"])
    check_line_manager(db, values["line_manager_id"], family(db, org), None)
    password_hash = None
    if password is not None:
        password_hash = passwords.hash_password(passwords.check_policy(password))

    user = insert_user(db, values, grants, password_hash=password_hash, now=now)
    invitation = invitations.issue(db, user, now=now)
    db.commit()
    answer = dump_user(user)
    answer["invitation_sent"] = invitations.send(db, notify, [invitation], now=now)
    return answer


def send_invitation(
    db: ServiceSession,
    caller: Identity,
    user_id: object,
    *,
    now: datetime,
    notify: delivery.Notify,
) -> dict[str, Any]:
    """Invite a managed user who has no password again, with a new code (their
    earlier invitation codes stop working); commits, then sends it. Answers
    ``{invitation_sent, expires_at}``. PasswordAlreadySet for a user with a
    password, Conflict for a deactivated one."""
    user = managed_user(db, caller, user_id, "auth.send_invitation")
    if user.password_hash is not None:
        raise PasswordAlreadySet()
    if not user.active:
        raise Conflict("The user is deactivated; reactivate them first")
    accounts.spend_codes(db, user.id, now=now, purpose=CODE_PURPOSE_INVITATION)
    invitation = invitations.issue(db, user, now=now)
    db.commit()
    return {
        "invitation_sent": invitations.send(db, notify, [invitation], now=now),
        "expires_at": invitation["expires_at"],
    }


def update_user(
    db: ServiceSession,
    caller: Identity,
    user_id: object,
    data: object,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Change a managed user's details and roles; emits ``auth.user_updated``
    with the changed fields and ``auth.role_granted``/``auth.role_revoked``."""
    values = load(UserUpdateSchema(), data)
    user = managed_user(db, caller, user_id, "auth.update_user")
    org = db.get(Organisation, user.org_id)
    if "org_id" in values and values["org_id"] != user.org_id:
        org = managed_org(db, caller, values["org_id"], "auth.update_user")
    assert org is not None
    if "username" in values and values["username"] != user.username:
        check_username_free(db, values["username"])
    if "line_manager_id" in values:
        check_line_manager(db, values["line_manager_id"], family(db, org), user.id)
    grants = values.pop("roles", None)
    if grants is None and org.id != user.org_id:
        raise ValidationFailed(
            fields={"roles": ["Give the user's roles at the new organisation."]}
        )
    if grants is not None:
        check_grants(db, caller, org, grants, "auth.update_user")
        check_revocable(db, caller, user, grants, "auth.update_user")

    before = snapshot(user)
    for key, value in values.items():
        setattr(user, key, value)
    if grants is not None:
        _replace_roles(db, user, _unique(grants), before["roles"])
    changes = diff(before, snapshot(user))
    if changes:
        user.updated_at = now
        db.emit(
            events.USER_UPDATED,
            subject_type="user",
            subject_id=user.id,
            org_id=user.org_id,
            changes=changes,
        )
    db.commit()
    return dump_user(user)


def _replace_roles(
    db: ServiceSession,
    user: User,
    grants: list[dict[str, str]],
    before: list[dict[str, str]],
) -> None:
    wanted = {(g["role"], g["org_id"]) for g in grants}
    held = {(g["role"], g["org_id"]) for g in before}
    user.roles = [g for g in user.roles if (g.role, g.org_id) in wanted]
    for role, org_id in sorted(wanted - held):
        user.roles.append(RoleGrant(role=role, org_id=org_id))
        _emit_role(db, events.ROLE_GRANTED, user, {"role": role, "org_id": org_id})
    for role, org_id in sorted(held - wanted):
        _emit_role(db, events.ROLE_REVOKED, user, {"role": role, "org_id": org_id})
    db.flush()


def set_active(
    db: ServiceSession,
    caller: Identity,
    user_id: object,
    active: bool,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Deactivate (ending every session) or reactivate a managed user."""
    action = "auth.reactivate_user" if active else "auth.deactivate_user"
    user = managed_user(db, caller, user_id, action)
    if user.id == caller.user_id and not active:
        raise Conflict("You cannot deactivate your own account")
    if user.active == active:
        return dump_user(user)

    user.active = active
    user.updated_at = now
    changes = {"active": {"before": not active, "after": active}}
    if active:
        user.failed_logins = 0
        user.locked_until = None
    event_type = events.USER_REACTIVATED if active else events.USER_DEACTIVATED
    db.emit(
        event_type,
        subject_type="user",
        subject_id=user.id,
        org_id=user.org_id,
        changes=changes,
    )
    if not active:
        sessions.revoke_all(db, user, reason=sessions.REASON_DEACTIVATED, now=now)
    db.commit()
    return dump_user(user)


def revoke_user_sessions(
    db: ServiceSession, caller: Identity, user_id: object, *, now: datetime
) -> dict[str, Any]:
    """End every session of a user: the user themself or an admin over them."""
    if user_id == caller.user_id:
        user = readable_user(db, caller, user_id, "auth.revoke_sessions")
    else:
        user = managed_user(db, caller, user_id, "auth.revoke_sessions")
    ended = sessions.revoke_all(db, user, reason=sessions.REASON_REVOKED, now=now)
    db.commit()
    return {"revoked": len(ended), "session_ids": ended}


def get_user(db: ServiceSession, caller: Identity, user_id: object) -> dict[str, Any]:
    return dump_user(readable_user(db, caller, user_id, "auth.get_user"))


# The hottest read of the API: one Core query, the user with their role
# grants joined (in grant order, as the relationship orders them), built once
# so that its SQLAlchemy cache key is computed once. Core rows skip the ORM's
# identity map and loading machinery, which cost more than the query; the
# answer is dumped with the same schema as every other user.
_USERS = table_of(User)
_GRANTS = table_of(RoleGrant)
_CURRENT_USER = (
    select(
        _USERS,
        _GRANTS.c.id.label("grant_id"),
        _GRANTS.c.role.label("grant_role"),
        _GRANTS.c.org_id.label("grant_org_id"),
    )
    .outerjoin(_GRANTS, _GRANTS.c.user_id == _USERS.c.id)
    .where(_USERS.c.id == bindparam("user_id"))
    .order_by(_GRANTS.c.id)
)
_USER_KEYS = tuple(column.key for column in _USERS.c)


def get_current_user(db: ServiceSession, caller: Identity) -> dict[str, Any]:
    rows = db.execute(_CURRENT_USER, {"user_id": caller.user_id}).all()
    user = None
    if rows:
        first = rows[0]._mapping
        user = SimpleNamespace(**{key: first[key] for key in _USER_KEYS})
        user.roles = [
            SimpleNamespace(role=row.grant_role, org_id=row.grant_org_id)
            for row in rows
            if row.grant_id is not None
        ]
    if user is None:
        raise NotFound("No such user")
    answer = dump_user(user)
    answer["scopes"] = caller.scopes
    return answer


def list_users(
    db: ServiceSession, caller: Identity, params: dict[str, Any]
) -> dict[str, Any]:
    """A page of the users the caller may read, optionally filtered."""
    values = load(ListUsersSchema(), params)
    readable = caller.orgs_for(READER_ROLES)
    query = select(User).where(
        or_(
            User.org_id.in_(readable),
            User.line_manager_id == caller.user_id,
            User.id == caller.user_id,
        )
    )
    org_id = values["org_id"]
    if org_id is not None:
        if org_id not in readable and org_id != caller.org_id:
            raise _refuse(db, caller, "organisation", org_id, "auth.list_users")
        query = query.where(User.org_id == org_id)
    if values["active"] is not None:
        query = query.where(User.active.is_(values["active"]))
    if values["query"]:
        pattern = "%" + _escape_like(values["query"].lower()) + "%"
        query = query.where(
            or_(
                *(
                    func.lower(column).like(pattern, escape="\\")
                    for column in (
                        User.username,
                        User.given_name,
                        User.family_name,
                        User.email,
                    )
                )
            )
        )

    total = db.scalar(select(func.count()).select_from(query.subquery()))
    page = db.scalars(
        query.order_by(User.family_name, User.given_name, User.id)
        .offset(values["offset"])
        .limit(values["limit"])
    )
    return {
        "items": [dump_user(user) for user in page],
        "total": total,
        "offset": values["offset"],
        "limit": values["limit"],
    }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def create_admin(
    db: ServiceSession,
    *,
    org_id: str,
    username: str,
    email: str,
    given_name: str,
    family_name: str,
    password: str,
    now: datetime,
    actor: dict[str, Any] | None = None,
) -> User:
    """The first admin of an organisation, made by an operator: school_admin
    of a school or trust_admin of a trust. Commits."""
    org = db.get(Organisation, org_id)
    if org is None:
        raise NotFound("No such organisation")
    values = load(
        UserCreateSchema(),
        {
            "username": username,
            "email": email,
            "given_name": given_name,
            "family_name": family_name,
            "org_id": org_id,
        },
    )
    role = TRUST_ADMIN if org.kind == "trust" else "school_admin"
    assert role in ROLES
    check_username_free(db, values["username"])
    password_hash = passwords.hash_password(passwords.check_policy(password))
    del values["roles"], values["password"]
    user = insert_user(
        db,
        values,
        [{"role": role, "org_id": org.id}],
        password_hash=password_hash,
        now=now,
        actor=actor,
    )
    db.commit()
    return user
