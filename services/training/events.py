"""Every event type the training service emits."""

ORGANISATION_SETTINGS_UPDATED = "training.organisation_settings_updated"
STAFF_PROFILE_UPDATED = "training.staff_profile_updated"

COURSE_CREATED = "training.course_created"
COURSE_UPDATED = "training.course_updated"
COURSE_PUBLISHED = "training.course_published"
COURSE_ARCHIVED = "training.course_archived"

EVENT_CREATED = "training.event_created"
EVENT_UPDATED = "training.event_updated"
EVENT_SCHEDULED = "training.event_scheduled"
EVENT_COMPLETED = "training.event_completed"
EVENT_CANCELLED = "training.event_cancelled"

BOOKING_REQUESTED = "training.booking_requested"
BOOKING_APPROVED = "training.booking_approved"
BOOKING_DECLINED = "training.booking_declined"
BOOKING_EXPIRED = "training.booking_expired"
BOOKING_BOOKED = "training.booking_booked"
BOOKING_WAITLISTED = "training.booking_waitlisted"
BOOKING_PROMOTED = "training.booking_promoted"
BOOKING_CANCELLED = "training.booking_cancelled"

ATTENDANCE_RECORDED = "training.attendance_recorded"
CPD_RECORD_CREATED = "training.cpd_record_created"
EVALUATION_SUBMITTED = "training.evaluation_submitted"
FOLLOW_UP_REQUESTED = "training.follow_up_requested"
EVALUATION_FOLLOWED_UP = "training.evaluation_followed_up"

EXTERNAL_REQUEST_SUBMITTED = "training.external_request_submitted"
EXTERNAL_REQUEST_APPROVED = "training.external_request_approved"
EXTERNAL_REQUEST_DECLINED = "training.external_request_declined"
EXTERNAL_REQUEST_EXPIRED = "training.external_request_expired"
ABSENCE_RECORDED = "training.absence_recorded"
ABSENCE_CANCELLED = "training.absence_cancelled"

BUDGET_SET = "training.budget_set"
HOURS_TARGET_SET = "training.hours_target_set"
CALENDAR_FEED_CREATED = "training.calendar_feed_created"
CALENDAR_FEED_REVOKED = "training.calendar_feed_revoked"

# Raised by the services and the gateway; ``data.action`` names the attempt.
AUTHZ_DENIED = "authz.denied"
