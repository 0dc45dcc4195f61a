"""Alembic environment of the reviews service (see plumbing.migrations)."""

from alembic import context

from plumbing.migrations import run_env
from services.reviews.models import Base

run_env(context, Base.metadata)
