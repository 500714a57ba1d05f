"""Alembic's entry point for production execution's migrations (online only)."""

from services.common.migrations import run_migrations
from services.production_execution.models import Base

run_migrations(Base.metadata)
