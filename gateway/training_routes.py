"""The training service's HTTP face: a mixin of routes under
``/api/v1/training`` that the gateway service class takes among its bases.

Each route validates its input and asks the training service, which decides
who may do what from the caller's roles and organisations (another
organisation's object is 404 ``NOT_FOUND``). The calendar feed is the one
route without a token: the random token in its path is the credential, and
the service refuses an unknown or revoked one with 404.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Response

from gateway.dependencies import GatewayRpc
from gateway.http import route
from gateway.training_schemas import (
    TrainingAbsenceCreateSchema,
    TrainingAbsenceQuerySchema,
    TrainingAnswerSchema,
    TrainingAttendanceSchema,
    TrainingBookingListSchema,
    TrainingBookingQuerySchema,
    TrainingBookingRequestSchema,
    TrainingBookingSchema,
    TrainingBookStaffSchema,
    TrainingBudgetSchema,
    TrainingCourseCreateSchema,
    TrainingCourseListSchema,
    TrainingCourseQuerySchema,
    TrainingCourseSchema,
    TrainingCourseUpdateSchema,
    TrainingCpdRecordCreateSchema,
    TrainingDeclineSchema,
    TrainingEvaluationSchema,
    TrainingEventCreateSchema,
    TrainingEventListSchema,
    TrainingEventQuerySchema,
    TrainingEventSchema,
    TrainingEventUpdateSchema,
    TrainingExternalRequestCreateSchema,
    TrainingFeedQuerySchema,
    TrainingFeedSchema,
    TrainingFollowUpSchema,
    TrainingHoursTargetSchema,
    TrainingPersonQuerySchema,
    TrainingProgressQuerySchema,
    TrainingReportQuerySchema,
    TrainingSettingsSchema,
    TrainingStaffProfileSchema,
)
from plumbing.identity import Identity

PREFIX = "/api/v1/training"
CALENDAR_TYPE = "text/calendar"
CSV_TYPE = "text/csv"


def plain(value: Any) -> Any:
    """Loaded values as JSON for the RPC: dates ISO, decimals as strings."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def calendar_response(ics: str, filename: str) -> Response:
    response = Response(ics, mimetype=CALENDAR_TYPE)
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


class TrainingRoutes:
    """Courses, events, bookings, CPD records, costs, calendars and reports;
    mixed into the gateway service class, whose ``request_context`` it uses."""

    training_rpc = GatewayRpc("training")

    # Courses

    @route(
        "GET",
        f"{PREFIX}/courses",
        query=TrainingCourseQuerySchema,
        response=TrainingCourseListSchema,
        tag="training",
    )
    def list_training_courses(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """Courses the caller may see: published ones of their catalogues,
        every one of the catalogues they run."""
        return self.training_rpc.list_courses(**query)

    @route(
        "POST",
        f"{PREFIX}/courses",
        body=TrainingCourseCreateSchema,
        response=TrainingCourseSchema,
        status=201,
        tag="training",
    )
    def create_training_course(
        self, request: Any, caller: Identity, body: dict[str, Any]
    ) -> Any:
        """Add a draft course to a school's or trust's catalogue (CPD lead)."""
        return self.training_rpc.create_course(plain(body))

    @route(
        "GET",
        f"{PREFIX}/courses/<course_id>",
        response=TrainingCourseSchema,
        tag="training",
    )
    def get_training_course(
        self, request: Any, caller: Identity, course_id: str
    ) -> Any:
        """One course."""
        return self.training_rpc.get_course(course_id)

    @route(
        "PATCH",
        f"{PREFIX}/courses/<course_id>",
        body=TrainingCourseUpdateSchema,
        response=TrainingCourseSchema,
        tag="training",
    )
    def update_training_course(
        self, request: Any, caller: Identity, course_id: str, body: dict[str, Any]
    ) -> Any:
        """Change a course that is not archived (CPD lead)."""
        return self.training_rpc.update_course(course_id, plain(body))

    @route(
        "POST",
        f"{PREFIX}/courses/<course_id>/publish",
        response=TrainingCourseSchema,
        tag="training",
    )
    def publish_training_course(
        self, request: Any, caller: Identity, course_id: str
    ) -> Any:
        """Publish a draft course (CPD lead)."""
        return self.training_rpc.publish_course(course_id)

    @route(
        "POST",
        f"{PREFIX}/courses/<course_id>/archive",
        response=TrainingCourseSchema,
        tag="training",
    )
    def archive_training_course(
        self, request: Any, caller: Identity, course_id: str
    ) -> Any:
        """Archive a course (CPD lead)."""
        return self.training_rpc.archive_course(course_id)

    # Events

    @route(
        "GET",
        f"{PREFIX}/events",
        query=TrainingEventQuerySchema,
        response=TrainingEventListSchema,
        tag="training",
    )
    def list_training_events(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """Events the caller may see, soonest first."""
        return self.training_rpc.list_events(**query)

    @route(
        "POST",
        f"{PREFIX}/events",
        body=TrainingEventCreateSchema,
        response=TrainingEventSchema,
        status=201,
        tag="training",
    )
    def create_training_event(
        self, request: Any, caller: Identity, body: dict[str, Any]
    ) -> Any:
        """Add a draft event with its sessions (CPD lead).

        422 ``INVALID_SESSION_TIMES`` for reversed or overlapping sessions.
        """
        return self.training_rpc.create_event(plain(body))

    @route(
        "GET",
        f"{PREFIX}/events/<event_id>",
        response=TrainingEventSchema,
        tag="training",
    )
    def get_training_event(self, request: Any, caller: Identity, event_id: str) -> Any:
        """One event with its sessions, in UTC and the school's local time."""
        return self.training_rpc.get_event(event_id)

    @route(
        "PATCH",
        f"{PREFIX}/events/<event_id>",
        body=TrainingEventUpdateSchema,
        response=TrainingEventSchema,
        tag="training",
    )
    def update_training_event(
        self, request: Any, caller: Identity, event_id: str, body: dict[str, Any]
    ) -> Any:
        """Change capacity, facilitator, deadline or sessions (CPD lead);
        every invite gets a higher SEQUENCE."""
        return self.training_rpc.update_event(event_id, plain(body))

    @route(
        "POST",
        f"{PREFIX}/events/<event_id>/schedule",
        response=TrainingEventSchema,
        tag="training",
    )
    def schedule_training_event(
        self, request: Any, caller: Identity, event_id: str
    ) -> Any:
        """Open a draft event for booking (CPD lead)."""
        return self.training_rpc.schedule_event(event_id)

    @route(
        "POST",
        f"{PREFIX}/events/<event_id>/cancel",
        response=TrainingEventSchema,
        tag="training",
    )
    def cancel_training_event(
        self, request: Any, caller: Identity, event_id: str
    ) -> Any:
        """Cancel an event and every booking on it (CPD lead)."""
        return self.training_rpc.cancel_event(event_id)

    @route(
        "POST",
        f"{PREFIX}/events/<event_id>/complete",
        response=TrainingAnswerSchema,
        tag="training",
    )
    def complete_training_event(
        self, request: Any, caller: Identity, event_id: str
    ) -> Any:
        """Close a finished event; attendees get CPD records (CPD lead)."""
        return self.training_rpc.complete_event(event_id)

    @route(
        "PUT",
        f"{PREFIX}/events/<event_id>/sessions/<session_id>/attendance",
        body=TrainingAttendanceSchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def record_training_attendance(
        self,
        request: Any,
        caller: Identity,
        event_id: str,
        session_id: str,
        body: dict[str, Any],
    ) -> Any:
        """Mark booked people attended, partial or absent (CPD lead)."""
        return self.training_rpc.record_attendance(
            event_id, session_id, plain(body["entries"])
        )

    # Bookings

    @route(
        "POST",
        f"{PREFIX}/events/<event_id>/bookings",
        body=TrainingBookingRequestSchema,
        response=TrainingBookingSchema,
        status=201,
        tag="training",
    )
    def request_training_booking(
        self, request: Any, caller: Identity, event_id: str, body: dict[str, Any]
    ) -> Any:
        """Ask for a place for yourself; your line manager decides."""
        return self.training_rpc.request_booking(event_id, plain(body))

    @route(
        "POST",
        f"{PREFIX}/events/<event_id>/bookings/direct",
        body=TrainingBookStaffSchema,
        response=TrainingBookingSchema,
        status=201,
        tag="training",
    )
    def book_training_staff(
        self, request: Any, caller: Identity, event_id: str, body: dict[str, Any]
    ) -> Any:
        """Book a member of staff directly (CPD lead): a place or the waitlist."""
        user_id = body.pop("user_id")
        return self.training_rpc.book_staff(event_id, user_id, plain(body))

    @route(
        "GET",
        f"{PREFIX}/bookings",
        query=TrainingBookingQuerySchema,
        response=TrainingBookingListSchema,
        tag="training",
    )
    def list_training_bookings(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """Your bookings, your reports', and those of the schools you run."""
        return self.training_rpc.list_bookings(**query)

    @route(
        "GET",
        f"{PREFIX}/bookings/<booking_id>",
        response=TrainingBookingSchema,
        tag="training",
    )
    def get_training_booking(
        self, request: Any, caller: Identity, booking_id: str
    ) -> Any:
        """One booking."""
        return self.training_rpc.get_booking(booking_id)

    @route(
        "POST",
        f"{PREFIX}/bookings/<booking_id>/approve",
        response=TrainingBookingSchema,
        tag="training",
    )
    def approve_training_booking(
        self, request: Any, caller: Identity, booking_id: str
    ) -> Any:
        """Approve a request (line manager, then CPD lead if the school asks).

        403 ``SELF_APPROVAL`` or ``NOT_YOUR_REPORT``; 409 ``REQUEST_EXPIRED``
        or ``BUDGET_EXCEEDED``; ``warnings`` lists a budget passed.
        """
        return self.training_rpc.approve_booking(booking_id)

    @route(
        "POST",
        f"{PREFIX}/bookings/<booking_id>/decline",
        body=TrainingDeclineSchema,
        response=TrainingBookingSchema,
        tag="training",
    )
    def decline_training_booking(
        self, request: Any, caller: Identity, booking_id: str, body: dict[str, Any]
    ) -> Any:
        """Decline a request with a reason."""
        return self.training_rpc.decline_booking(booking_id, body)

    @route(
        "POST",
        f"{PREFIX}/bookings/<booking_id>/cancel",
        response=TrainingBookingSchema,
        tag="training",
    )
    def cancel_training_booking(
        self, request: Any, caller: Identity, booking_id: str
    ) -> Any:
        """Cancel a booking; the first on the waitlist gets the place unless
        the event has started."""
        return self.training_rpc.cancel_booking(booking_id)

    @route(
        "GET",
        f"{PREFIX}/bookings/<booking_id>/invite.ics",
        tag="training",
        content_type=CALENDAR_TYPE,
    )
    def get_training_invite(
        self, request: Any, caller: Identity, booking_id: str
    ) -> Response:
        """The booking's iCalendar invite (METHOD:REQUEST or CANCEL)."""
        answer = self.training_rpc.get_invite(booking_id)
        return calendar_response(answer["ics"], f"booking-{booking_id}.ics")

    @route(
        "POST",
        f"{PREFIX}/bookings/<booking_id>/evaluation",
        body=TrainingEvaluationSchema,
        response=TrainingAnswerSchema,
        status=201,
        tag="training",
    )
    def evaluate_training_booking(
        self, request: Any, caller: Identity, booking_id: str, body: dict[str, Any]
    ) -> Any:
        """Rate an event you attended (403 ``NOT_AN_ATTENDEE`` otherwise)."""
        return self.training_rpc.submit_evaluation(booking_id, body)

    @route(
        "POST",
        f"{PREFIX}/bookings/<booking_id>/follow-up",
        body=TrainingFollowUpSchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def follow_up_training_booking(
        self, request: Any, caller: Identity, booking_id: str, body: dict[str, Any]
    ) -> Any:
        """Say what impact the training had, once the follow-up is due."""
        return self.training_rpc.submit_follow_up(booking_id, body)

    @route(
        "GET",
        f"{PREFIX}/follow-ups",
        response=TrainingAnswerSchema,
        tag="training",
    )
    def list_training_follow_ups(self, request: Any, caller: Identity) -> Any:
        """Your evaluations whose impact follow-up is due."""
        return self.training_rpc.list_follow_ups()

    # CPD records and targets

    @route(
        "POST",
        f"{PREFIX}/cpd-records",
        body=TrainingCpdRecordCreateSchema,
        response=TrainingAnswerSchema,
        status=201,
        tag="training",
    )
    def add_training_cpd_record(
        self, request: Any, caller: Identity, body: dict[str, Any]
    ) -> Any:
        """Record an external or informal activity of your own."""
        return self.training_rpc.add_cpd_record(plain(body))

    @route(
        "GET",
        f"{PREFIX}/cpd-history",
        query=TrainingPersonQuerySchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def get_training_cpd_history(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """A person's CPD records and hours per year against target."""
        return self.training_rpc.get_cpd_history(query.get("user_id"))

    @route(
        "GET",
        f"{PREFIX}/cpd-progress",
        query=TrainingProgressQuerySchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def get_training_cpd_progress(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """Hours in one academic year against the person's target."""
        return self.training_rpc.get_target_progress(
            query["year"], query.get("user_id")
        )

    # External requests and absences

    @route(
        "POST",
        f"{PREFIX}/external-requests",
        body=TrainingExternalRequestCreateSchema,
        response=TrainingAnswerSchema,
        status=201,
        tag="training",
    )
    def submit_training_external_request(
        self, request: Any, caller: Identity, body: dict[str, Any]
    ) -> Any:
        """Ask to attend training elsewhere; decided like a booking."""
        return self.training_rpc.submit_external_request(plain(body))

    @route(
        "GET",
        f"{PREFIX}/external-requests/<request_id>",
        response=TrainingAnswerSchema,
        tag="training",
    )
    def get_training_external_request(
        self, request: Any, caller: Identity, request_id: str
    ) -> Any:
        """One external CPD request."""
        return self.training_rpc.get_external_request(request_id)

    @route(
        "POST",
        f"{PREFIX}/external-requests/<request_id>/approve",
        response=TrainingAnswerSchema,
        tag="training",
    )
    def approve_training_external_request(
        self, request: Any, caller: Identity, request_id: str
    ) -> Any:
        """Approve an external request; the last approval records the absence."""
        return self.training_rpc.approve_external_request(request_id)

    @route(
        "POST",
        f"{PREFIX}/external-requests/<request_id>/decline",
        body=TrainingDeclineSchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def decline_training_external_request(
        self, request: Any, caller: Identity, request_id: str, body: dict[str, Any]
    ) -> Any:
        """Decline an external request with a reason."""
        return self.training_rpc.decline_external_request(request_id, body)

    @route(
        "POST",
        f"{PREFIX}/absences",
        body=TrainingAbsenceCreateSchema,
        response=TrainingAnswerSchema,
        status=201,
        tag="training",
    )
    def record_training_absence(
        self, request: Any, caller: Identity, body: dict[str, Any]
    ) -> Any:
        """Record another PD-related absence of your own, with its cover."""
        return self.training_rpc.record_absence(plain(body))

    @route(
        "GET",
        f"{PREFIX}/absences",
        query=TrainingAbsenceQuerySchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def list_training_absences(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """Your absences, or a school's (``org_id``, CPD lead or reader)."""
        return self.training_rpc.list_absences(query.get("org_id"))

    # Settings, budgets, targets, staff

    @route(
        "GET",
        f"{PREFIX}/organisations/<org_id>/settings",
        response=TrainingAnswerSchema,
        tag="training",
    )
    def get_training_settings(self, request: Any, caller: Identity, org_id: str) -> Any:
        """A school's training settings."""
        return self.training_rpc.get_settings(org_id)

    @route(
        "PATCH",
        f"{PREFIX}/organisations/<org_id>/settings",
        body=TrainingSettingsSchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def update_training_settings(
        self, request: Any, caller: Identity, org_id: str, body: dict[str, Any]
    ) -> Any:
        """Time zone, daily cover rate, CPD lead approval, budget policy and
        follow-up weeks (CPD lead or admin)."""
        return self.training_rpc.update_settings(org_id, plain(body))

    @route(
        "PUT",
        f"{PREFIX}/organisations/<org_id>/budget",
        body=TrainingBudgetSchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def set_training_budget(
        self, request: Any, caller: Identity, org_id: str, body: dict[str, Any]
    ) -> Any:
        """A school's CPD budget for an academic year (CPD lead or admin)."""
        return self.training_rpc.set_budget(org_id, plain(body))

    @route(
        "PUT",
        f"{PREFIX}/organisations/<org_id>/hours-target",
        body=TrainingHoursTargetSchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def set_training_hours_target(
        self, request: Any, caller: Identity, org_id: str, body: dict[str, Any]
    ) -> Any:
        """CPD hours a job role should do in a year (CPD lead or admin)."""
        return self.training_rpc.set_hours_target(org_id, plain(body))

    @route(
        "PATCH",
        f"{PREFIX}/staff/<user_id>",
        body=TrainingStaffProfileSchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def update_training_staff(
        self, request: Any, caller: Identity, user_id: str, body: dict[str, Any]
    ) -> Any:
        """A member of staff's department and job role (CPD lead or admin)."""
        return self.training_rpc.update_staff_profile(user_id, body)

    # Calendar feed

    @route(
        "POST",
        f"{PREFIX}/calendar-feed",
        response=TrainingFeedSchema,
        status=201,
        tag="training",
    )
    def create_training_calendar_feed(self, request: Any, caller: Identity) -> Any:
        """A new private feed URL of your bookings; the old one stops working."""
        return self.training_rpc.create_calendar_feed()

    @route(
        "DELETE",
        f"{PREFIX}/calendar-feed",
        response=TrainingAnswerSchema,
        tag="training",
    )
    def revoke_training_calendar_feed(self, request: Any, caller: Identity) -> Any:
        """Your feed URL stops working."""
        return self.training_rpc.revoke_calendar_feed()

    @route(
        "GET",
        f"{PREFIX}/calendar-feed.ics",
        auth=False,
        query=TrainingFeedQuerySchema,
        tag="training",
        content_type=CALENDAR_TYPE,
    )
    def get_training_calendar_feed(
        self, request: Any, query: dict[str, Any]
    ) -> Response:
        """A private calendar feed: ``token`` is the credential. It travels in
        the query string, which the access log never records."""
        answer = self.training_rpc.get_calendar_feed(query["token"])
        return calendar_response(answer["ics"], "training.ics")

    # Reports

    @route(
        "GET",
        f"{PREFIX}/reports/<name>",
        query=TrainingReportQuerySchema,
        response=TrainingAnswerSchema,
        tag="training",
    )
    def get_training_report(
        self, request: Any, caller: Identity, name: str, query: dict[str, Any]
    ) -> Any:
        """``hours``, ``attendance``, ``spend`` or ``targets`` over the
        schools you read (CPD lead, admin, auditor)."""
        return self.training_rpc.run_report(name, plain(query))

    @route(
        "GET",
        f"{PREFIX}/reports/<name>/csv",
        query=TrainingReportQuerySchema,
        tag="training",
        content_type=CSV_TYPE,
    )
    def export_training_report(
        self, request: Any, caller: Identity, name: str, query: dict[str, Any]
    ) -> Response:
        """The same report as CSV with a header line."""
        answer = self.training_rpc.export_report(name, plain(query))
        response = Response(answer["csv"], mimetype=CSV_TYPE)
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{answer["filename"]}"'
        )
        return response
