"""Every event type the auth service emits (see docs/architecture.md)."""

ORGANISATION_CREATED = "auth.organisation_created"
USER_CREATED = "auth.user_created"
USER_UPDATED = "auth.user_updated"
USER_DEACTIVATED = "auth.user_deactivated"
USER_REACTIVATED = "auth.user_reactivated"
USERS_IMPORTED = "auth.users_imported"
ROLE_GRANTED = "auth.role_granted"
ROLE_REVOKED = "auth.role_revoked"
LOGIN_SUCCEEDED = "auth.login_succeeded"
LOGIN_FAILED = "auth.login_failed"
ACCOUNT_LOCKED = "auth.account_locked"
LOGIN_THROTTLED = "auth.login_throttled"
LOGGED_OUT = "auth.logged_out"
PASSWORD_CHANGED = "auth.password_changed"
PASSWORD_RESET_REQUESTED = "auth.password_reset_requested"
PASSWORD_RESET_COMPLETED = "auth.password_reset_completed"
# An address passed the limit of reset requests: once per address and window.
PASSWORD_RESET_THROTTLED = "auth.password_reset_throttled"
# An invitation made for a new user (``data.with_code``: it carries a code
# that sets the password); emitted when it is made, and sent after commit.
INVITATION_SENT = "auth.invitation_sent"
SESSIONS_REVOKED = "auth.sessions_revoked"
TOKEN_REFRESHED = "auth.token_refreshed"

# ``data.reason`` of LOGIN_FAILED.
REASON_UNKNOWN_USER = "unknown_user"
REASON_BAD_PASSWORD = "bad_password"
REASON_ACCOUNT_LOCKED = "account_locked"
REASON_INACTIVE = "inactive"

# Raised by the services and the gateway; ``data.action`` names the attempt.
AUTHZ_DENIED = "authz.denied"
