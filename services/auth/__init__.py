"""The auth service: organisations, users, roles, passwords and sessions."""
