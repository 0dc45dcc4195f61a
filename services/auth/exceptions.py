"""The auth service's errors. Each has a stable code and the HTTP status the
gateway answers with; none ever carries a password, token or reset code."""

from __future__ import annotations

from plumbing.errors import PlatformError


class AuthError(PlatformError):
    """Base of every auth service error."""

    code = "AUTH_ERROR"
    status = 400
    title = "Authentication error"


class InvalidCredentials(AuthError):
    """Unknown user, wrong password, inactive or locked account alike."""

    code = "INVALID_CREDENTIALS"
    status = 401
    title = "The username or password is not correct"


class LoginThrottled(AuthError):
    code = "LOGIN_THROTTLED"
    status = 429
    title = "Too many failed logins from this address; try again in a minute"


class ResetThrottled(AuthError):
    code = "RESET_THROTTLED"
    status = 429
    title = "Too many password reset requests from this address; try again later"


class InvalidRefreshToken(AuthError):
    code = "INVALID_REFRESH_TOKEN"
    status = 401
    title = "The refresh token is not valid"


class InvalidResetCode(AuthError):
    code = "INVALID_RESET_CODE"
    status = 400
    title = "The reset code is not valid or has expired"


class WeakPassword(AuthError):
    """The new password breaks the policy; ``fields`` says why."""

    code = "PASSWORD_REJECTED"
    status = 422
    title = "The password is not acceptable"


class ImportInvalid(AuthError):
    """A CSV import with bad rows; ``fields`` maps ``row N`` to its errors."""

    code = "IMPORT_INVALID"
    status = 422
    title = "The import has errors; nothing was imported"


class UsernameTaken(AuthError):
    code = "USERNAME_TAKEN"
    status = 409
    title = "The username is already in use"


class PasswordAlreadySet(AuthError):
    """An invitation code for a user who has a password: they reset it."""

    code = "PASSWORD_ALREADY_SET"
    status = 422
    title = "The user already has a password; they can ask for a reset"
