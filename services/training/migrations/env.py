"""Alembic environment of the training service (see plumbing.migrations)."""

from alembic import context

from plumbing.migrations import run_env
from services.training.models import Base

run_env(context, Base.metadata)
