"""Alembic's entry point for the inventory's migrations (`python -m services.inventory migrate`)."""

from services.common.migrations import run_migrations
from services.inventory.models import Base

run_migrations(Base.metadata)
