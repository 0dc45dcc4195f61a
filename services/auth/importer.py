"""Importing users from CSV: every row is checked before any is written, and
one bad row imports nothing.

Columns: ``username,given_name,family_name,email,roles,line_manager_username``.
``roles`` is a ``;``-separated list of role names held at the import's
organisation (``staff`` when empty). A line manager may be an existing user
of the same school or trust, or another row of the file. Rows are numbered as
a spreadsheet shows them: the header is row 1, the first user row 2. Imported
users have no password: each is invited with a code that sets one, all the
invitations of a file in one call to notify after the import commits.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select

from plumbing.database import ServiceSession
from plumbing.identity import Identity
from services.auth import delivery, events, invitations
from services.auth.exceptions import ImportInvalid
from services.auth.models import Organisation, User
from services.auth.organisations import family
from services.auth.roles import ROLES, TRUST_ADMIN
from services.auth.schemas import ImportRowSchema, dump_user
from services.auth.users import announce_created, insert_user, managed_org

COLUMNS = (
    "username",
    "given_name",
    "family_name",
    "email",
    "roles",
    "line_manager_username",
)
MAX_ROWS = 5000
# Where csv puts the values of a row beyond the header's columns.
EXTRA_VALUES = "_extra_values"


def import_users(
    db: ServiceSession,
    caller: Identity,
    org_id: object,
    csv_text: object,
    *,
    now: datetime,
    notify: delivery.Notify,
) -> dict[str, Any]:
    """Create every user of the file in an organisation the caller manages, or
    none; emits ``auth.user_created`` and ``auth.invitation_sent`` per user and
    one ``auth.users_imported``. ImportInvalid lists every problem under
    ``row N``. After the commit, one RPC sends every invitation: the answer's
    ``invitations_sent`` is false when notify could not take them."""
    org = managed_org(db, caller, org_id, "auth.import_users")
    rows = _parse(csv_text)
    checked = _check_rows(db, caller, org, rows)

    created: dict[str, User] = {}
    for values, grants, _manager in checked:
        created[values["username"]] = insert_user(
            db,
            dict(values, line_manager_id=None),
            grants,
            password_hash=None,
            now=now,
            announce=False,
        )
    for values, _grants, manager in checked:
        if manager:
            boss = created.get(manager) or db.scalar(
                select(User).where(User.username == manager)
            )
            assert boss is not None
            created[values["username"]].line_manager_id = boss.id
    db.flush()
    invited = []
    for user in created.values():
        announce_created(db, user)
        invited.append(invitations.issue(db, user, now=now))
    ids = [user.id for user in created.values()]
    db.emit(
        events.USERS_IMPORTED,
        subject_type="organisation",
        subject_id=org.id,
        org_id=org.id,
        data={"count": len(ids), "user_ids": ids},
    )
    db.commit()
    return {
        "imported": len(ids),
        "users": [dump_user(u) for u in created.values()],
        "invitations_sent": invitations.send(db, notify, invited, now=now),
    }


def _parse(csv_text: object) -> list[dict[str, str]]:
    if not isinstance(csv_text, str) or not csv_text.strip():
        raise ImportInvalid(fields={"csv_text": ["Expected CSV text with a header."]})
    # The header must be COLUMNS, so no column is called EXTRA_VALUES.
    reader = csv.DictReader(
        io.StringIO(csv_text.lstrip("\ufeff")), restkey=EXTRA_VALUES
    )
    header = [name.strip() for name in reader.fieldnames or []]
    if header != list(COLUMNS):
        raise ImportInvalid(
            fields={"row 1": {"header": [f"Expected columns: {','.join(COLUMNS)}."]}}
        )
    reader.fieldnames = header
    rows = list(reader)
    if not rows:
        raise ImportInvalid(fields={"csv_text": ["The file has no user rows."]})
    if len(rows) > MAX_ROWS:
        raise ImportInvalid(fields={"csv_text": [f"At most {MAX_ROWS} rows."]})
    return rows


def _check_rows(
    db: ServiceSession,
    caller: Identity,
    org: Organisation,
    rows: list[dict[str, str]],
) -> list[tuple[dict[str, Any], list[dict[str, str]], str]]:
    """Each row's user values, roles and line manager; ImportInvalid with every
    problem of every row."""
    schema = ImportRowSchema()
    related = family(db, org)
    in_file = {
        (row.get("username") or "").strip().lower(): number
        for number, row in enumerate(rows, start=2)
    }
    seen: dict[str, int] = {}
    problems: dict[str, dict[str, list[str]]] = {}
    checked = []

    for number, row in enumerate(rows, start=2):
        errors: dict[str, list[str]] = {}
        extra = row.pop(EXTRA_VALUES, None)
        if extra:
            errors["_row"] = ["More values than columns."]
        cleaned = {key: (value or "").strip() for key, value in row.items()}
        try:
            values = schema.load(cleaned)
        except ValidationError as error:
            errors.update(error.messages_dict)
            values = {}

        username = cleaned.get("username", "").lower()
        if username and username in seen:
            errors.setdefault("username", []).append(f"Also on row {seen[username]}.")
        elif username:
            seen[username] = number
            if db.scalar(select(User.id).where(User.username == username)):
                errors.setdefault("username", []).append("Already in use.")

        grants = _grants(cleaned.get("roles", ""), caller, org, errors)
        manager = cleaned.get("line_manager_username", "").lower()
        _check_manager(db, manager, username, in_file, related, errors)
        if errors:
            problems[f"row {number}"] = errors
            continue
        values["username"] = username
        values.pop("roles")
        values.pop("line_manager_username")
        values["org_id"] = org.id
        checked.append((values, grants, manager))

    if problems:
        raise ImportInvalid(fields=problems)
    return checked


def _grants(
    text: str, caller: Identity, org: Organisation, errors: dict[str, list[str]]
) -> list[dict[str, str]]:
    names = [name.strip() for name in text.split(";") if name.strip()] or ["staff"]
    unknown = [name for name in names if name not in ROLES]
    if unknown:
        errors.setdefault("roles", []).append(f"Unknown roles: {', '.join(unknown)}.")
    if TRUST_ADMIN in names and org.kind != "trust":
        errors.setdefault("roles", []).append("trust_admin is held at a trust.")
    elif TRUST_ADMIN in names and not caller.has_role(TRUST_ADMIN, org.id):
        errors.setdefault("roles", []).append("Only a trust admin grants trust_admin.")
    return [{"role": name, "org_id": org.id} for name in names if name in ROLES]


def _check_manager(
    db: ServiceSession,
    manager: str,
    username: str,
    in_file: dict[str, int],
    related: set[str],
    errors: dict[str, list[str]],
) -> None:
    if not manager:
        return
    if manager == username:
        errors.setdefault("line_manager_username", []).append("Cannot be themself.")
    elif manager not in in_file:
        boss_org = db.scalar(select(User.org_id).where(User.username == manager))
        if boss_org not in related:
            errors.setdefault("line_manager_username", []).append(
                "No such user in this school or trust."
            )
