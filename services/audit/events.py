"""Event types the audit service emits (through its own outbox, so they come
back through the audit queue and into the chain like every other event)."""

LOG_READ = "audit.log_read"
LOG_EXPORTED = "audit.log_exported"
SUBJECT_KEY_ERASED = "audit.subject_key_erased"
