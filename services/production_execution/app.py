"""The production execution app (``build_app``) and the work beside it that ``serve`` runs in
threads (``background_workers``): the sync with the peer instances and the outbound relay."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from fastapi import APIRouter, FastAPI

from services.common.app import create_app
from services.common.aws import DynamoDbStore
from services.common.db import database_ready, engine_for, make_sessions, now_ms
from services.common.migrations import head_revision
from services.common.relay import BusPublisher, InventoryPost, OutboxRelay
from services.common.sync import SyncTransport, SyncWorker, sync_router
from services.production_execution import api
from services.production_execution.domain import CLOUD
from services.production_execution.models import TABLES
from services.production_execution.service import Context, ProductionExecution
from services.production_execution.settings import ProductionSettings
from services.production_execution.stored_orders import (
    DocumentStore,
    StoreTables,
    stored_orders_router,
)
from services.production_execution.sync_handlers import SYNC_HANDLERS

SERVICE = "production-execution"
VERSION = "1.0.0"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def build_app(
    settings: ProductionSettings,
    *,
    clock: Callable[[], int] = now_ms,
    routers: Iterable[APIRouter] = (),
    store: DocumentStore | None = None,
) -> FastAPI:
    """The app of one instance. The cloud instance with edge sites syncing over https also
    serves their ``/sync`` API. ``app.state`` has the service, its sessions and the handlers."""
    engine = engine_for(settings)
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

    sync = []
    if settings.instance_id == CLOUD and settings.edge_sites and settings.sync_transport == "https":
        sync.append(sync_router(sessions, TABLES, CLOUD, SYNC_HANDLERS, peers=settings.edge_sites))
    stored = []
    if settings.orders_table is not None:
        tables = StoreTables(
            orders=settings.orders_table,
            products=settings.products_table,
            process_plans=settings.process_plans_table,
        )
        stored.append(stored_orders_router(service, store or DynamoDbStore(), tables))
    app = create_app(
        "MES production execution",
        VERSION,
        [*api.routers(service), *stored, *sync, *routers],
        ready,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.service = service
    app.state.sync_handlers = SYNC_HANDLERS
    app.router.add_event_handler("shutdown", engine.dispose)
    return app


@dataclass(frozen=True)
class Worker:
    name: str
    run: Callable[[threading.Event], None]  # until the event is set


def background_workers(
    settings: ProductionSettings,
    app: FastAPI,
    *,
    transport: Callable[[str], SyncTransport] | None = None,
    publisher: BusPublisher | None = None,
    post: InventoryPost | None = None,
) -> list[Worker]:
    """What ``serve`` runs beside the API.

    - Sync: an edge instance keeps in sync with the cloud (pushing its outbox, pulling the
      cloud's); over kafka the cloud also runs one worker per edge site (over https it serves
      ``/sync`` instead). ``transport(peer)`` makes the transport (default: the settings').
    - The cloud's outbound relay: the bus (``MES_EVENT_BUS_NAME``) and inventory
      (``MES_INVENTORY_URL``). An edge instance has none: it forwards those to the cloud.
    """
    sessions = app.state.sessions
    workers = []
    if transport is None:
        transport = _settings_transport(settings)
    if settings.instance_id != CLOUD or settings.sync_transport == "kafka":
        for peer in settings.peers:
            worker = SyncWorker(
                sessions,
                TABLES,
                settings.instance_id,
                peer,
                transport(peer),
                SYNC_HANDLERS,
                interval_s=settings.outbox_interval_s,
            )
            workers.append(Worker(f"sync-{peer}", worker.run))
    if settings.instance_id == CLOUD:
        if publisher is None and settings.event_bus_name is not None:
            from services.common.aws import EventBridgePublisher  # boto3 only with a bus

            publisher = EventBridgePublisher()
        if post is None and settings.inventory_url is not None:
            from services.common.relay import InventoryClient

            post = InventoryClient(settings.inventory_url)
        if publisher is not None or post is not None:
            relay = OutboxRelay(
                sessions,
                TABLES,
                bus_name=settings.event_bus_name if publisher is not None else None,
                publisher=publisher,
                post=post,
            )
            workers.append(
                Worker("outbox-relay", lambda stop: relay.run(stop, settings.outbox_interval_s))
            )
    return workers


def _settings_transport(settings: ProductionSettings) -> Callable[[str], SyncTransport]:
    def make(peer: str) -> SyncTransport:
        from services.common.transports import make_transport

        return make_transport(
            settings.sync_transport,
            settings.instance_id,
            peer,
            url=settings.cloud_url,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            region=settings.aws_region,
        )

    return make
