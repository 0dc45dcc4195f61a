"""The training service's errors, each with a stable code and the HTTP status
the gateway answers with. None carries personal free text."""

from __future__ import annotations

from plumbing.errors import PlatformError


class TrainingError(PlatformError):
    """Base of every training service error."""

    code = "TRAINING_ERROR"
    status = 400
    title = "Training error"


class InvalidSessionTimes(TrainingError):
    """A session ends before it starts, or two sessions of an event overlap."""

    code = "INVALID_SESSION_TIMES"
    status = 422
    title = "The session times are not valid"


class InvalidState(TrainingError):
    """The object is not in a state that allows this (e.g. publishing an
    archived course, scheduling an event with no sessions)."""

    code = "INVALID_STATE"
    status = 409
    title = "Not possible in the object's current state"


class EventNotBookable(TrainingError):
    """The event is cancelled, completed, not yet scheduled, or has started."""

    code = "EVENT_NOT_BOOKABLE"
    status = 409
    title = "The event cannot be booked"


class AlreadyBooked(TrainingError):
    code = "ALREADY_BOOKED"
    status = 409
    title = "This person already has a booking or request for the event"


class SelfApproval(TrainingError):
    code = "SELF_APPROVAL"
    status = 403
    title = "You cannot approve your own request"


class NotYourReport(TrainingError):
    code = "NOT_YOUR_REPORT"
    status = 403
    title = "Only the requester's line manager can decide this request"


class BudgetExceeded(TrainingError):
    code = "BUDGET_EXCEEDED"
    status = 409
    title = "Approving this would exceed the school's CPD budget"


class NotAnAttendee(TrainingError):
    code = "NOT_AN_ATTENDEE"
    status = 403
    title = "Only those who attended can evaluate the event"


class InvalidFeedToken(TrainingError):
    code = "INVALID_FEED_TOKEN"
    status = 404
    title = "No such calendar feed"


class RequestExpired(TrainingError):
    code = "REQUEST_EXPIRED"
    status = 409
    title = "The request was not decided before its deadline and has expired"


class InvalidDates(TrainingError):
    code = "INVALID_DATES"
    status = 422
    title = "The end date is before the start date"
