"""One migrated database for the package's tests (migrating takes longer than most tests); each
test starts from empty tables (TRUNCATE), and gets the service, or the app through a test client.
test_migrations.py migrates fresh databases of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.common.db import make_engine, make_sessions
from services.common.migrations import upgrade_to_head
from services.common.settings import ServiceSettings
from services.inventory.app import MIGRATIONS_DIR, build_app
from services.inventory.models import Base
from services.inventory.service import InventoryService
from tests.postgres import PostgresServer

TRUNCATE = (
    "TRUNCATE "
    + ", ".join(table.name for table in Base.metadata.sorted_tables)
    + " RESTART IDENTITY CASCADE"
)


@pytest.fixture(scope="package")
def migrated_url(postgres: PostgresServer) -> Iterator[str]:
    with postgres.temporary_database() as url:
        upgrade_to_head(MIGRATIONS_DIR, url)
        yield url


@pytest.fixture(scope="package")
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def empty(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text(TRUNCATE))


@pytest.fixture
def db(engine: Engine) -> Engine:
    empty(engine)
    return engine


@pytest.fixture
def service(db: Engine) -> InventoryService:
    return InventoryService(make_sessions(db))


@pytest.fixture(scope="package")
def app(migrated_url: str):
    app = build_app(ServiceSettings(database_url=migrated_url))
    yield app
    app.state.engine.dispose()


@pytest.fixture
def client(app, db: Engine) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text(sql), params)]


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.execute(text(f"SELECT count(*) FROM {table.name}")).scalar_one()
            for table in Base.metadata.sorted_tables
        }
