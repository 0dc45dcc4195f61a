"""Alembic environment of the notify service (see plumbing.migrations)."""

from alembic import context

from plumbing.migrations import run_env
from services.notify.models import Base

run_env(context, Base.metadata)
