"""Every event type the reviews service emits (see docs/architecture.md).

Free text travels in events under the field names of :data:`PERSONAL_FIELDS`,
which the audit service encrypts; it never reaches a log line.
"""

CYCLE_OPENED = "reviews.cycle_opened"
REVIEW_CREATED = "reviews.review_created"
REVIEWER_ASSIGNED = "reviews.reviewer_assigned"
OBJECTIVES_AGREED = "reviews.objectives_agreed"
INTERIM_REVIEW_RECORDED = "reviews.interim_review_recorded"
SELF_REVIEW_SAVED = "reviews.self_review_saved"
SELF_REVIEW_SUBMITTED = "reviews.self_review_submitted"
FINAL_REVIEW_RECORDED = "reviews.final_review_recorded"
REVIEW_SIGNED_OFF = "reviews.review_signed_off"
REVIEW_CLOSED = "reviews.review_closed"
REVIEW_REOPENED = "reviews.review_reopened"
OBJECTIVE_ADDED = "reviews.objective_added"
OBJECTIVE_UPDATED = "reviews.objective_updated"
PROGRESS_RECORDED = "reviews.progress_recorded"
OBSERVATION_CREATED = "reviews.observation_created"
OBSERVATION_UPDATED = "reviews.observation_updated"
OBSERVATION_SHARED = "reviews.observation_shared"
OBSERVATION_ACKNOWLEDGED = "reviews.observation_acknowledged"
OBSERVATION_VIEWED = "reviews.observation_viewed"
EVIDENCE_UPLOADED = "reviews.evidence_uploaded"
EVIDENCE_LINKED = "reviews.evidence_linked"
EVIDENCE_DOWNLOADED = "reviews.evidence_downloaded"
COMMENT_ADDED = "reviews.comment_added"
REPORT_EXPORTED = "reviews.report_exported"
STAFF_DIRECTORY_SYNCED = "reviews.staff_directory_synced"

AUTHZ_DENIED = "authz.denied"

# Field names under which free text of reviews, objectives, observations and
# comments appears in ``changes`` and ``data``; audit encrypts them.
PERSONAL_FIELDS = (
    "text",
    "notes",
    "comment",
    "note",
    "description",
    "success_criteria",
    "focus",
    "strengths",
    "areas_for_development",
    "actions",
    "response",
    "reason",
    "title",
    "filename",
    "url",
)
