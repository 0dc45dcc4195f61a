"""The reviews service's errors, each with a stable code and the HTTP status
the gateway answers with. None carries free text of a review."""

from __future__ import annotations

from plumbing.errors import PlatformError


class ReviewsError(PlatformError):
    """Base of every reviews service error."""

    code = "REVIEWS_ERROR"
    status = 400
    title = "Reviews error"


class ReviewerIsReviewee(ReviewsError):
    code = "REVIEWER_IS_REVIEWEE"
    status = 422
    title = "A member of staff cannot review themself"


class MilestoneOutsideCycle(ReviewsError):
    """A milestone before the start, after the end, or out of order."""

    code = "MILESTONE_OUTSIDE_CYCLE"
    status = 422
    title = "Milestones must fall inside the cycle, in order"


class CycleOverlaps(ReviewsError):
    """Another cycle covering the same staff overlaps these dates."""

    code = "CYCLE_OVERLAPS"
    status = 409
    title = "Another review cycle for these staff overlaps these dates"


class ReviewExists(ReviewsError):
    code = "REVIEW_EXISTS"
    status = 409
    title = "This member of staff already has a review in this cycle"


class UnknownStaff(ReviewsError):
    """The user is not in this service's copy of the staff directory."""

    code = "UNKNOWN_STAFF"
    status = 422
    title = "No such member of staff in this school or trust"


class InvalidTransition(ReviewsError):
    """A step taken out of order; ``fields`` gives the state and the step."""

    code = "INVALID_TRANSITION"
    status = 409
    title = "This step cannot be taken in the review's current state"


class NotYourStep(ReviewsError):
    """The caller may see the review but this step belongs to someone else."""

    code = "NOT_YOUR_STEP"
    status = 403
    title = "This step is taken by someone else"


class ReviewerRequired(ReviewsError):
    code = "REVIEWER_REQUIRED"
    status = 409
    title = "The review has no reviewer yet; an admin must assign one"


class SelfReviewLocked(ReviewsError):
    code = "SELF_REVIEW_LOCKED"
    status = 409
    title = "The self review was submitted and can no longer change"


class ObjectivesRequired(ReviewsError):
    code = "OBJECTIVES_REQUIRED"
    status = 409
    title = "Add at least one objective before agreeing them"


class ReviewClosed(ReviewsError):
    code = "REVIEW_CLOSED"
    status = 409
    title = "The review is closed; an admin must reopen it first"


class ObservationNotShared(ReviewsError):
    code = "OBSERVATION_NOT_SHARED"
    status = 409
    title = "The observation has not been shared yet"


class ObservationShared(ReviewsError):
    code = "OBSERVATION_ALREADY_SHARED"
    status = 409
    title = "A shared observation can no longer be edited"


class UploadTooLarge(ReviewsError):
    code = "UPLOAD_TOO_LARGE"
    status = 413
    title = "The file is larger than the upload limit"


class UploadTypeNotAllowed(ReviewsError):
    """The content is not an allowed type, or does not match its name."""

    code = "UPLOAD_TYPE_NOT_ALLOWED"
    status = 415
    title = "This kind of file is not accepted"


class UploadChecksumMismatch(ReviewsError):
    code = "UPLOAD_CHECKSUM_MISMATCH"
    status = 422
    title = "The file does not match the checksum sent with it"


class EvidenceUnavailable(ReviewsError):
    """The stored file is missing or no longer matches its checksum."""

    code = "EVIDENCE_UNAVAILABLE"
    status = 500
    title = "The evidence file cannot be read back intact"


class ObjectivesLocked(ReviewsError):
    """Objectives change until the interim review; the reviewee's own only
    while the review is a draft."""

    code = "OBJECTIVES_LOCKED"
    status = 409
    title = "The objectives of this review can no longer be changed by you"
