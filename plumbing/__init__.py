"""Plumbing shared by every service: configuration, logging, the event
envelope, the transactional outbox, the database provider, identity and the
error base. No domain rule lives here."""
