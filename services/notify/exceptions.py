"""The notify service's errors, each with a stable code and the HTTP status
the gateway answers with. None carries an address or a code."""

from __future__ import annotations

from plumbing.errors import PlatformError


class NotifyError(PlatformError):
    """Base of every notify service error."""

    code = "NOTIFY_ERROR"
    status = 400
    title = "Notification error"


class EmailNotRetryable(NotifyError):
    """Only an email that did not go (failed, or held back by the rate
    limit) can be queued again; a sent one never is."""

    code = "EMAIL_NOT_RETRYABLE"
    status = 409
    title = "Only a failed or suppressed email can be queued again"
