"""Each person's choices: email per category, and one daily digest instead
of single emails. Security messages are always emailed, at once; asking to
turn them off is refused, not ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from plumbing.database import ServiceSession
from plumbing.errors import ValidationFailed
from plumbing.identity import Identity
from services.notify import events
from services.notify.catalogue import CATEGORIES, CATEGORY_LABELS, LOCKED_CATEGORIES
from services.notify.models import HELD, QUEUED, Email, Preference, RecipientSettings
from services.notify.schemas import PreferencesSchema, load


def get_preferences(db: ServiceSession, caller: Identity) -> dict[str, Any]:
    """``{daily_digest, categories: [{category, label, email, locked}]}``."""
    chosen = {
        p.category: p.email
        for p in db.scalars(
            select(Preference).where(Preference.user_id == caller.user_id)
        )
    }
    settings = db.get(RecipientSettings, caller.user_id)
    return {
        "daily_digest": bool(settings and settings.daily_digest),
        "categories": [
            {
                "category": category,
                "label": CATEGORY_LABELS[category],
                "email": True
                if category in LOCKED_CATEGORIES
                else chosen.get(category, True),
                "locked": category in LOCKED_CATEGORIES,
            }
            for category in CATEGORIES
        ],
    }


def update_preferences(
    db: ServiceSession, caller: Identity, data: Any, *, now: datetime
) -> dict[str, Any]:
    """Change some choices; the others stay. Emits
    ``notify.preferences_updated`` with what changed. Turning digests off
    sends what was held for the digest now."""
    values = load(PreferencesSchema(), data)
    locked = sorted(
        c
        for c, on in (values.get("email") or {}).items()
        if not on and c in LOCKED_CATEGORIES
    )
    if locked:
        raise ValidationFailed(
            fields={
                "email": {
                    c: ["Security messages cannot be turned off."] for c in locked
                }
            }
        )
    before = get_preferences(db, caller)
    for category, on in (values.get("email") or {}).items():
        if category in LOCKED_CATEGORIES:
            continue
        preference = db.get(Preference, (caller.user_id, category))
        if preference is None:
            preference = Preference(user_id=caller.user_id, category=category)
            db.add(preference)
        preference.email = on
        preference.updated_at = now
    if "daily_digest" in values:
        settings = db.get(RecipientSettings, caller.user_id)
        if settings is None:
            settings = RecipientSettings(user_id=caller.user_id)
            db.add(settings)
        settings.daily_digest = values["daily_digest"]
        settings.updated_at = now
        if not values["daily_digest"]:
            db.execute(
                update(Email)
                .where(
                    Email.user_id == caller.user_id,
                    Email.status == HELD,
                    # Held by choice; those over the hourly limit still wait.
                    Email.last_error.is_(None),
                )
                .values(status=QUEUED, next_attempt_at=now)
            )
    db.flush()
    after = get_preferences(db, caller)
    changes = _diff(before, after)
    if changes:
        db.emit(
            events.PREFERENCES_UPDATED,
            subject_type="user",
            subject_id=caller.user_id,
            org_id=caller.org_id,
            changes=changes,
        )
    db.commit()
    return after


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if before["daily_digest"] != after["daily_digest"]:
        changes["daily_digest"] = {
            "before": before["daily_digest"],
            "after": after["daily_digest"],
        }
    was = {c["category"]: c["email"] for c in before["categories"]}
    for item in after["categories"]:
        if was[item["category"]] != item["email"]:
            changes[f"email_{item['category']}"] = {
                "before": was[item["category"]],
                "after": item["email"],
            }
    return changes
