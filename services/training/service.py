"""The training service's entrypoints. The rules live in the domain modules
(catalogue, bookings, records, costs, calendar, reports, directory,
notices); each
method here says who may call it and what it emits, and hands over."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nameko.events import SERVICE_POOL, event_handler
from nameko.timer import timer

from plumbing.database import Database
from plumbing.envelope import validate_envelope
from plumbing.errors import PlatformError, ValidationFailed
from plumbing.identity import (
    CallerIdentity,
    Identity,
    anonymous,
    authenticated,
    require_service,
)
from plumbing.logging import LogContext
from plumbing.rpc import ServiceRpc, rpc
from services.training import (
    bookings,
    calendar,
    catalogue,
    costs,
    directory,
    notices,
    records,
    reports,
)
from services.training.dependencies import AuthFallback, Clock

entrypoint = rpc(expected_exceptions=PlatformError)

# How often undecided requests past their deadline are expired, and due
# evaluation follow-ups asked for.
EXPIRY_INTERVAL = 60.0
FOLLOW_UP_INTERVAL = 3600.0


def auth_event(name: str) -> Any:
    """A handler of one auth event on the training service's durable queue;
    a failure puts the message back rather than losing it."""
    return event_handler("auth", name, handler_type=SERVICE_POOL, requeue_on_error=True)


class TrainingService:
    """Courses, events, bookings, attendance, CPD records, costs, calendars
    and reports."""

    name = "training"

    db = Database("training")
    caller = CallerIdentity()
    log = LogContext("training")
    now = Clock()
    # Asked only for what the local copy of auth's users and organisations
    # lacks (see services.training.directory).
    auth_rpc = ServiceRpc("auth", timeout=5.0)

    def _auth(self) -> AuthFallback:
        return AuthFallback(self.auth_rpc)

    def _know(self, caller: Identity, *org_ids: str | None) -> None:
        """Make sure the caller's organisation (and any given) is copied."""
        for org_id in (caller.org_id, *org_ids):
            directory.ensure_organisation(self.db, org_id, self._auth())

    @entrypoint
    @anonymous
    def ping(self) -> dict[str, Any]:
        """Anyone: readiness check. Emits nothing."""
        return {"service": self.name, "ok": True}

    # The local copy of organisations and staff

    @auth_event("organisation_created")
    def handle_organisation_created(self, payload: dict[str, Any]) -> None:
        """Keep the new organisation (its trust and time zone); once per event."""
        self._apply_auth_event(payload)

    @auth_event("user_created")
    def handle_user_created(self, payload: dict[str, Any]) -> None:
        """Keep the new user's school and line manager; once per event."""
        self._apply_auth_event(payload)

    @auth_event("user_updated")
    def handle_user_updated(self, payload: dict[str, Any]) -> None:
        """Follow a change of school, line manager or name; once per event."""
        self._apply_auth_event(payload)

    @auth_event("user_deactivated")
    def handle_user_deactivated(self, payload: dict[str, Any]) -> None:
        """Mark the user inactive (left out of target reports)."""
        self._apply_auth_event(payload)

    @auth_event("user_reactivated")
    def handle_user_reactivated(self, payload: dict[str, Any]) -> None:
        """Mark the user active again."""
        self._apply_auth_event(payload)

    def _apply_auth_event(self, payload: Any) -> None:
        """Apply a valid envelope once. One that can never be applied (not an
        envelope) is logged and dropped, not requeued for ever; any other
        failure (the database away) raises, and the message is requeued."""
        try:
            validate_envelope(payload)
        except (ValidationFailed, TypeError, AttributeError):
            fields: Iterable[object] = getattr(payload, "keys", lambda: [])()
            self.log.error("auth_event_dropped", keys=sorted(map(str, fields)))
            return
        directory.apply_auth_event(self.db, payload, self.now())

    # Timers

    @timer(interval=EXPIRY_INTERVAL)
    def expire_requests(self) -> None:
        """Expire booking requests undecided at their deadline; emits
        ``training.booking_expired`` for each."""
        expired = bookings.expire_overdue(self.db, now=self.now())
        if expired:
            self.log.info("booking_requests_expired", count=expired)

    @timer(interval=FOLLOW_UP_INTERVAL)
    def ask_for_follow_ups(self) -> None:
        """Emit ``training.follow_up_requested`` once per evaluation whose
        impact follow-up fell due."""
        records.request_due_follow_ups(self.db, now=self.now())

    # Settings

    @entrypoint
    @authenticated
    def get_settings(self, caller: Identity, org_id: str) -> dict[str, Any]:
        """Anyone working in or covering the org: its training settings."""
        return directory.get_settings(self.db, caller, org_id)

    @entrypoint
    @authenticated
    def update_settings(
        self, caller: Identity, org_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A CPD lead or admin covering the org: time zone, daily cover rate,
        CPD lead approval, budget policy, follow-up weeks. Emits
        ``training.organisation_settings_updated``."""
        return directory.update_settings(self.db, caller, org_id, data)

    @entrypoint
    @authenticated
    def update_staff_profile(
        self, caller: Identity, user_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A CPD lead or admin of the person's org: department and job role.
        Emits ``training.staff_profile_updated``."""
        directory.ensure_user(self.db, user_id, self._auth())
        return directory.update_staff_profile(self.db, caller, user_id, data)

    # Courses

    @entrypoint
    @authenticated
    def create_course(self, caller: Identity, data: dict[str, Any]) -> dict[str, Any]:
        """A CPD lead covering ``data.org_id`` (school or trust): a draft
        course. Emits ``training.course_created``."""
        self._know(caller, (data or {}).get("org_id"))
        return catalogue.create_course(self.db, caller, data, now=self.now())

    @entrypoint
    @authenticated
    def get_course(self, caller: Identity, course_id: str) -> dict[str, Any]:
        """Anyone reaching the catalogue (published courses), or its CPD lead."""
        self._know(caller)
        return catalogue.get_course(self.db, caller, course_id)

    @entrypoint
    @authenticated
    def list_courses(
        self, caller: Identity, status: str | None = None
    ) -> dict[str, Any]:
        """``{items}``: the courses the caller may see."""
        self._know(caller)
        return catalogue.list_courses(self.db, caller, status)

    @entrypoint
    @authenticated
    def update_course(
        self, caller: Identity, course_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A CPD lead of the catalogue. Emits ``training.course_updated``."""
        return catalogue.update_course(self.db, caller, course_id, data, now=self.now())

    @entrypoint
    @authenticated
    def publish_course(self, caller: Identity, course_id: str) -> dict[str, Any]:
        """A CPD lead: draft to published. Emits ``training.course_published``."""
        return catalogue.set_course_status(
            self.db, caller, course_id, "published", now=self.now()
        )

    @entrypoint
    @authenticated
    def archive_course(self, caller: Identity, course_id: str) -> dict[str, Any]:
        """A CPD lead: to archived. Emits ``training.course_archived``."""
        return catalogue.set_course_status(
            self.db, caller, course_id, "archived", now=self.now()
        )

    # Events

    @entrypoint
    @authenticated
    def create_event(self, caller: Identity, data: dict[str, Any]) -> dict[str, Any]:
        """A CPD lead of the event's org: a draft event with sessions
        (INVALID_SESSION_TIMES for reversed or overlapping ones). Emits
        ``training.event_created``."""
        self._know(caller, (data or {}).get("org_id"))
        return catalogue.create_event(self.db, caller, data, now=self.now())

    @entrypoint
    @authenticated
    def get_event(self, caller: Identity, event_id: str) -> dict[str, Any]:
        """Anyone reaching the event's org once scheduled; its CPD lead always."""
        self._know(caller)
        return catalogue.get_event(self.db, caller, event_id)

    @entrypoint
    @authenticated
    def list_events(
        self,
        caller: Identity,
        course_id: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """``{items}``: the events the caller may see, soonest first."""
        self._know(caller)
        return catalogue.list_events(self.db, caller, course_id, status)

    @entrypoint
    @authenticated
    def update_event(
        self, caller: Identity, event_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A CPD lead: capacity, facilitator, deadline, sessions. Emits
        ``training.event_updated`` (invites get a higher SEQUENCE) and
        ``training.booking_promoted`` for places a larger capacity frees."""
        return catalogue.update_event(self.db, caller, event_id, data, now=self.now())

    @entrypoint
    @authenticated
    def schedule_event(self, caller: Identity, event_id: str) -> dict[str, Any]:
        """A CPD lead: open the event for booking. Emits
        ``training.event_scheduled``."""
        return catalogue.schedule_event(self.db, caller, event_id, now=self.now())

    @entrypoint
    @authenticated
    def cancel_event(self, caller: Identity, event_id: str) -> dict[str, Any]:
        """A CPD lead: cancel the event and every booking on it. Emits
        ``training.event_cancelled`` and ``training.booking_cancelled`` each."""
        return catalogue.cancel_event(self.db, caller, event_id, now=self.now())

    @entrypoint
    @authenticated
    def complete_event(self, caller: Identity, event_id: str) -> dict[str, Any]:
        """A CPD lead, after the last session: CPD records for attendees.
        Emits ``training.cpd_record_created`` each and
        ``training.event_completed``."""
        return records.complete_event(self.db, caller, event_id, now=self.now())

    @entrypoint
    @authenticated
    def record_attendance(
        self,
        caller: Identity,
        event_id: str,
        session_id: str,
        entries: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """A CPD lead, once the session started: ``entries`` of
        ``{booking_id, status}`` (attended, partial, absent). Emits
        ``training.attendance_recorded`` each."""
        return records.record_attendance(
            self.db, caller, event_id, session_id, entries, now=self.now()
        )

    # Bookings

    @entrypoint
    @authenticated
    def request_booking(
        self, caller: Identity, event_id: str, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Any member of staff, for themself. Emits
        ``training.booking_requested`` (and the placing events when no
        approval is needed)."""
        self._know(caller)
        return bookings.request_booking(
            self.db, caller, event_id, data, now=self.now(), auth=self._auth()
        )

    @entrypoint
    @authenticated
    def book_staff(
        self,
        caller: Identity,
        event_id: str,
        user_id: str,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A CPD lead of the person's school: a place or waitlist position
        without approvals. Emits ``training.booking_booked`` or
        ``training.booking_waitlisted``."""
        directory.ensure_user(self.db, user_id, self._auth())
        return bookings.book_staff(
            self.db, caller, event_id, user_id, data, now=self.now()
        )

    @entrypoint
    @authenticated
    def get_booking(self, caller: Identity, booking_id: str) -> dict[str, Any]:
        """The booker, their line manager, or a CPD lead or reader of their org."""
        return bookings.get_booking(self.db, caller, booking_id)

    @entrypoint
    @authenticated
    def list_bookings(
        self,
        caller: Identity,
        event_id: str | None = None,
        status: str | None = None,
        mine: bool = False,
    ) -> dict[str, Any]:
        """``{items}``: the caller's bookings, their reports', their orgs'."""
        return bookings.list_bookings(self.db, caller, event_id, status, mine)

    @entrypoint
    @authenticated
    def approve_booking(self, caller: Identity, booking_id: str) -> dict[str, Any]:
        """The line manager, then the CPD lead if the school asks for it
        (SELF_APPROVAL, NOT_YOUR_REPORT, REQUEST_EXPIRED, BUDGET_EXCEEDED).
        Emits ``training.booking_approved`` and the placing events."""
        return bookings.approve_booking(
            self.db, caller, booking_id, now=self.now(), auth=self._auth()
        )

    @entrypoint
    @authenticated
    def decline_booking(
        self, caller: Identity, booking_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """The decider at the request's stage, with ``reason``. Emits
        ``training.booking_declined``."""
        return bookings.decline_booking(
            self.db, caller, booking_id, data, now=self.now(), auth=self._auth()
        )

    @entrypoint
    @authenticated
    def cancel_booking(self, caller: Identity, booking_id: str) -> dict[str, Any]:
        """The booker or a CPD lead of their school. Emits
        ``training.booking_cancelled`` and ``training.booking_promoted`` for
        the first waitlisted, unless the event has started."""
        return bookings.cancel_booking(self.db, caller, booking_id, now=self.now())

    # CPD records, targets and evaluation

    @entrypoint
    @authenticated
    def add_cpd_record(self, caller: Identity, data: dict[str, Any]) -> dict[str, Any]:
        """Any member of staff, for themself: an external or informal
        activity. Emits ``training.cpd_record_created``."""
        return records.add_cpd_record(self.db, caller, data, now=self.now())

    @entrypoint
    @authenticated
    def get_cpd_history(
        self, caller: Identity, user_id: str | None = None
    ) -> dict[str, Any]:
        """The person, their line manager, or a CPD lead or reader of their
        org: records and hours per academic year against target."""
        return records.cpd_history(self.db, caller, user_id)

    @entrypoint
    @authenticated
    def get_target_progress(
        self, caller: Identity, year: int, user_id: str | None = None
    ) -> dict[str, Any]:
        """As get_cpd_history: hours in one academic year against target."""
        return records.target_progress(self.db, caller, year, user_id)

    @entrypoint
    @authenticated
    def set_hours_target(
        self, caller: Identity, org_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A CPD lead or admin of the org. Emits ``training.hours_target_set``."""
        return records.set_hours_target(self.db, caller, org_id, data)

    @entrypoint
    @authenticated
    def submit_evaluation(
        self, caller: Identity, booking_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """The attendee (NOT_AN_ATTENDEE otherwise). Emits
        ``training.evaluation_submitted``."""
        return records.submit_evaluation(
            self.db, caller, booking_id, data, now=self.now()
        )

    @entrypoint
    @authenticated
    def submit_follow_up(
        self, caller: Identity, booking_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """The attendee, once due. Emits ``training.evaluation_followed_up``."""
        return records.submit_follow_up(
            self.db, caller, booking_id, data, now=self.now()
        )

    @entrypoint
    @authenticated
    def list_follow_ups(self, caller: Identity) -> dict[str, Any]:
        """``{items}``: the caller's due, unanswered follow-ups."""
        return records.list_follow_ups(self.db, caller, now=self.now())

    # External requests, absences, budgets

    @entrypoint
    @authenticated
    def submit_external_request(
        self, caller: Identity, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Any member of staff, for themself. Emits
        ``training.external_request_submitted``."""
        return costs.submit_external_request(
            self.db, caller, data, now=self.now(), auth=self._auth()
        )

    @entrypoint
    @authenticated
    def get_external_request(self, caller: Identity, request_id: str) -> dict[str, Any]:
        """The requester, their line manager, or a CPD lead or reader."""
        return costs.get_external_request(self.db, caller, request_id)

    @entrypoint
    @authenticated
    def approve_external_request(
        self, caller: Identity, request_id: str
    ) -> dict[str, Any]:
        """As approve_booking. Emits ``training.external_request_approved``
        and, on the last approval, ``training.absence_recorded``."""
        return costs.approve_external_request(
            self.db, caller, request_id, now=self.now(), auth=self._auth()
        )

    @entrypoint
    @authenticated
    def decline_external_request(
        self, caller: Identity, request_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """As decline_booking. Emits ``training.external_request_declined``."""
        return costs.decline_external_request(
            self.db, caller, request_id, data, now=self.now(), auth=self._auth()
        )

    @entrypoint
    @authenticated
    def record_absence(self, caller: Identity, data: dict[str, Any]) -> dict[str, Any]:
        """Any member of staff, for themself: another PD-related absence.
        Emits ``training.absence_recorded``."""
        return costs.record_absence(self.db, caller, data, now=self.now())

    @entrypoint
    @authenticated
    def list_absences(
        self, caller: Identity, org_id: str | None = None
    ) -> dict[str, Any]:
        """``{items}``: the caller's absences, or an org's for its readers."""
        return costs.list_absences(self.db, caller, org_id)

    @entrypoint
    @authenticated
    def set_budget(
        self, caller: Identity, org_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A CPD lead or admin of the school. Emits ``training.budget_set``."""
        return costs.set_budget(self.db, caller, org_id, data)

    # Calendar

    @entrypoint
    @authenticated
    def get_invite(self, caller: Identity, booking_id: str) -> dict[str, Any]:
        """As get_booking: ``{uid, sequence, method, ics}``."""
        return calendar.invite(self.db, caller, booking_id)

    @entrypoint
    @authenticated
    def create_calendar_feed(self, caller: Identity) -> dict[str, Any]:
        """Any user: a new private feed URL (the old one stops working).
        Emits ``training.calendar_feed_created``."""
        return calendar.create_feed(self.db, caller, now=self.now())

    @entrypoint
    @authenticated
    def revoke_calendar_feed(self, caller: Identity) -> dict[str, Any]:
        """Any user: their feed URL stops working. Emits
        ``training.calendar_feed_revoked``."""
        return calendar.revoke_feed(self.db, caller)

    @entrypoint
    @anonymous
    def get_calendar_feed(self, token: str) -> dict[str, Any]:
        """Anyone holding a feed token (it is the credential):
        ``{ics}``; INVALID_FEED_TOKEN otherwise. Emits nothing."""
        return {"ics": calendar.feed(self.db, token)}

    # Reports

    @entrypoint
    @authenticated
    def run_report(
        self, caller: Identity, name: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A CPD lead, admin or auditor: ``hours``, ``attendance``, ``spend``
        or ``targets`` over the orgs they read. Emits nothing."""
        return reports.run_report(self.db, caller, name, params, now=self.now())

    @entrypoint
    @authenticated
    def export_report(
        self, caller: Identity, name: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """As run_report: ``{filename, content_type, csv}``."""
        return reports.export_csv(self.db, caller, name, params, now=self.now())

    # For the notify service

    @entrypoint
    @authenticated
    def notification_context(
        self,
        caller: Identity,
        booking_id: str | None = None,
        event_id: str | None = None,
        external_request_id: str | None = None,
    ) -> dict[str, Any]:
        """Only the notify service on its own account (anyone else:
        ``authz.denied`` and Forbidden). Exactly one id: a booking's
        ``{booking, event, deciders, ics}``, an event's ``{event,
        bookings}`` or an external request's ``{external_request,
        deciders}`` (see services.training.notices). Emits nothing."""
        require_service(self.db, caller, ["notify"], "training.notification_context")
        return notices.notification_context(
            self.db, booking_id, event_id, external_request_id
        )

    @entrypoint
    @authenticated
    def sessions_starting(
        self,
        caller: Identity,
        start: str,
        end: str,
        offset: int = 0,
        limit: int = 500,
    ) -> dict[str, Any]:
        """Only the notify service on its own account, as above:
        ``{items, total}``, the sessions of scheduled events starting in
        ``[start, end)`` with who is booked on each. Emits nothing."""
        require_service(self.db, caller, ["notify"], "training.sessions_starting")
        return notices.sessions_starting(self.db, start, end, offset, limit)
