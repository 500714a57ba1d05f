"""The inventory's FastAPI app: its routes on the common app (health, readiness, metrics, logs)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.common.app import create_app
from services.common.db import database_ready, make_engine, make_sessions
from services.common.migrations import at_head
from services.common.settings import ServiceSettings
from services.inventory.api import inventory_router
from services.inventory.service import InventoryService

SERVICE = "inventory"
VERSION = "1.0.0"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def build_app(settings: ServiceSettings) -> FastAPI:
    engine = make_engine(settings.database_url)
    service = InventoryService(make_sessions(engine))

    def ready() -> bool:
        """Ready when the database answers and its schema is this code's (migrated to head)."""
        if not database_ready(engine):
            return False
        try:
            return at_head(engine, MIGRATIONS_DIR)
        except Exception:  # noqa: BLE001 - readiness answers no, whatever the reason
            return False

    app = create_app("MES inventory", VERSION, [inventory_router(service)], ready)
    app.state.engine = engine
    app.state.service = service
    return app
