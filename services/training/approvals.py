"""Who decides a pending request (a booking or an external CPD request).

Stage one is the requester's line manager, as the local copy of the auth
service's users says; stage two, when the school asks for it, a CPD lead of
the requester's school. Nobody decides their own request.
"""

from __future__ import annotations

from typing import Any, NoReturn

from plumbing.database import ServiceSession
from plumbing.identity import Identity
from services.training import access
from services.training.exceptions import InvalidState, NotYourReport, SelfApproval
from services.training.models import Staff

PENDING = ("pending_manager", "pending_cpd_lead")


def may_read(db: ServiceSession, caller: Identity, user_id: str, org_id: str) -> bool:
    """The person themself, their line manager, or a CPD lead or reader of
    their organisation."""
    if user_id == caller.user_id:
        return True
    if org_id in access.lead_orgs(caller) | access.reader_orgs(caller):
        return True
    staff = db.get(Staff, user_id)
    return staff is not None and staff.line_manager_id == caller.user_id


def refuse_unreadable(
    db: ServiceSession, caller: Identity, subject_type: str, subject: Any, action: str
) -> NoReturn:
    """A line manager of the same school asking about someone else's report
    is told NOT_YOUR_REPORT; anyone else NotFound."""
    if caller.has_role(access.LINE_MANAGER, subject.org_id):
        access.forbidden(
            db,
            caller,
            subject_type,
            subject.id,
            action,
            subject.org_id,
            NotYourReport(),
        )
    access.not_found(db, caller, subject_type, subject.id, action, subject.org_id)


def stage_of(
    db: ServiceSession, caller: Identity, subject_type: str, subject: Any, action: str
) -> str:
    """``manager`` or ``cpd_lead``: the decision the caller may take now.

    SELF_APPROVAL for the requester, NOT_YOUR_REPORT for anyone not the
    decider at this stage, each recorded as ``authz.denied``.
    """
    if subject.user_id == caller.user_id:
        access.forbidden(
            db,
            caller,
            subject_type,
            subject.id,
            action,
            subject.org_id,
            SelfApproval(),
        )
    staff = db.get(Staff, subject.user_id)
    is_manager = staff is not None and staff.line_manager_id == caller.user_id
    is_lead = subject.org_id in access.lead_orgs(caller)
    if subject.status == "pending_manager" and is_manager:
        return "manager"
    if subject.status == "pending_cpd_lead" and is_lead:
        return "cpd_lead"
    if subject.status not in PENDING:
        raise InvalidState(f"It is {subject.status}, not awaiting a decision")
    access.forbidden(
        db, caller, subject_type, subject.id, action, subject.org_id, NotYourReport()
    )
