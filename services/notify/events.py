"""Every event type the notify service emits. None carries an address, a
code or a message's text: only ids, kinds and outcomes."""

EMAIL_SENT = "notify.email_sent"
EMAIL_FAILED = "notify.email_failed"
EMAIL_REQUEUED = "notify.email_requeued"
PREFERENCES_UPDATED = "notify.preferences_updated"
RESET_CODE_QUEUED = "notify.reset_code_queued"
INVITATIONS_QUEUED = "notify.invitations_queued"
DIGEST_QUEUED = "notify.digest_queued"
EVENT_FAILED = "notify.event_failed"
CONTACTS_SYNCED = "notify.contacts_synced"
RETENTION_APPLIED = "notify.retention_applied"

AUTHZ_DENIED = "authz.denied"
