"""The production execution app: ``build_app(settings)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from fastapi import APIRouter, FastAPI

from services.common.app import create_app
from services.common.db import database_ready, make_engine, make_sessions, now_ms
from services.common.migrations import head_revision
from services.production_execution import api
from services.production_execution.service import Context, ProductionExecution
from services.production_execution.settings import ProductionSettings
from services.production_execution.sync_handlers import SYNC_HANDLERS

SERVICE = "production-execution"
VERSION = "1.0.0"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def build_app(
    settings: ProductionSettings,
    *,
    clock: Callable[[], int] = now_ms,
    routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """The app of one instance. ``routers``: more, such as the sync endpoints, which find the
    service, its sessions and the sync handlers on ``app.state``."""
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    context = Context(
        instance_id=settings.instance_id,
        layout=settings.layout(),
        edge_sites=frozenset(settings.edge_sites),
        clock=clock,
    )
    service = ProductionExecution(sessions, context)
    head = head_revision(MIGRATIONS_DIR)

    def ready() -> bool:
        """The database answers and is migrated to this code's head revision."""
        if not database_ready(engine):
            return False
        try:
            with engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision() == head
        except Exception:  # noqa: BLE001 - readiness answers no, whatever the reason
            return False

    app = create_app("MES production execution", VERSION, [*api.routers(service), *routers], ready)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.service = service
    app.state.sync_handlers = SYNC_HANDLERS
    app.router.add_event_handler("shutdown", engine.dispose)
    return app
