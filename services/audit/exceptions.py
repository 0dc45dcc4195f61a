"""Errors of the audit service, each with a stable code for the gateway."""

from plumbing.errors import Forbidden, NotFound, PlatformError, ValidationFailed


class AuditError(PlatformError):
    code = "AUDIT_ERROR"
    status = 500
    title = "Audit service error"


class AuditAccessDenied(Forbidden):
    """The caller holds no role that may read the audit log."""

    code = "AUDIT_ACCESS_DENIED"
    title = "Reading the audit log needs the auditor or an admin role"


class SubjectNotFound(NotFound):
    code = "SUBJECT_NOT_FOUND"
    title = "No such data subject in your organisations"


class InvalidCursor(ValidationFailed):
    code = "INVALID_CURSOR"
    title = "The cursor is not valid"
