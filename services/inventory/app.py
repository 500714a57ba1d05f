"""The inventory's FastAPI app: its routes on the common app (health, readiness, metrics, logs)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from services.common.app import create_app
from services.common.db import database_ready, engine_for, make_sessions
from services.common.migrations import at_head
from services.common.relay import BusPublisher, OutboxRelay
from services.common.settings import ServiceSettings
from services.inventory.api import inventory_router
from services.inventory.models import TABLES
from services.inventory.service import InventoryService

SERVICE = "inventory"
VERSION = "1.0.0"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def build_app(settings: ServiceSettings) -> FastAPI:
    engine = engine_for(settings)
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


def bus_relay(
    settings: ServiceSettings, sessions: sessionmaker, publisher: BusPublisher | None = None
) -> OutboxRelay | None:
    """The relay that takes the outbox's availability documents to the event bus (and on to
    ERP by its outbound rule); None when no bus is configured (``MES_EVENT_BUS_NAME``)."""
    if settings.event_bus_name is None:
        return None
    if publisher is None:
        from services.common.aws import EventBridgePublisher  # boto3: only when there is a bus

        publisher = EventBridgePublisher()
    return OutboxRelay(sessions, TABLES, bus_name=settings.event_bus_name, publisher=publisher)
