"""Alembic environment of the auth service (see plumbing.migrations)."""

from alembic import context

from plumbing.migrations import run_env
from services.auth.models import Base

run_env(context, Base.metadata)
