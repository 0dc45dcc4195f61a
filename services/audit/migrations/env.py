from alembic import context

from plumbing.migrations import run_env
from services.audit.models import Base

run_env(context, Base.metadata)
