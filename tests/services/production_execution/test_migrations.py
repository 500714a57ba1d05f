"""Migrations from an empty database up to head match the models; the entry point checks its
settings before anything else and migrates."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from services.common.migrations import alembic_config, head_revision
from services.production_execution.__main__ import EXIT_BAD_SETTINGS, main
from services.production_execution.app import MIGRATIONS_DIR, build_app
from services.production_execution.models import Base
from tests.conftest import DEMO_PLANT, PROJECT_ROOT
from tests.services.production_execution.conftest import settings


@pytest.fixture
def root_logging():
    """``main`` configures the root logger (JSON to stderr); put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_empty_database_migrates_to_head_matching_the_models(database_url, root_logging):
    app = build_app(settings(database_url))
    client = TestClient(app)
    try:
        assert client.get("/health/ready").status_code == 503  # not migrated yet

        assert main(["migrate"], _environ(database_url)) == 0
        engine = create_engine(database_url)
        try:
            with engine.connect() as connection:
                context = MigrationContext.configure(connection)
                assert context.get_current_revision() == head_revision(MIGRATIONS_DIR)
                assert compare_metadata(context, Base.metadata) == []
                tables = set(inspect(connection).get_table_names())
            assert {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"} == tables
            assert {"command_log", "audit_trail", "outbox", "outbox_sequence", "inbox_cursor"} < (
                tables
            )
            assert client.get("/health/ready").status_code == 200

            # and back down to nothing
            command.downgrade(alembic_config(MIGRATIONS_DIR, database_url), "base")
            with engine.connect() as connection:
                assert set(inspect(connection).get_table_names()) == {"alembic_version"}
            assert client.get("/health/ready").status_code == 503
        finally:
            engine.dispose()
    finally:
        app.state.engine.dispose()


def _environ(database_url: str, **more: str) -> dict[str, str]:
    return {
        "MES_DATABASE_URL": database_url,
        "MES_PLANT_CONFIG": str(DEMO_PLANT),
        **more,
    }


URL = "postgresql+psycopg://postgres@127.0.0.1:1/none"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"MES_PLANT_CONFIG": str(DEMO_PLANT)}, "MES_DATABASE_URL"),  # missing
        (_environ("mysql://x@127.0.0.1/db"), "MES_DATABASE_URL"),
        ({"MES_DATABASE_URL": URL}, "MES_PLANT_CONFIG"),  # missing
        (_environ(URL, MES_PLANT_CONFIG="/nonexistent/plant.yaml"), "MES_PLANT_CONFIG"),
        (_environ(URL, MES_PLANT_CONFIG=str(PROJECT_ROOT / "README.md")), "MES_PLANT_CONFIG"),
        (_environ(URL, MES_INSTANCE_ID="paris"), "MES_INSTANCE_ID"),  # no such site
        (_environ(URL, MES_EDGE_SITES="berlin,paris"), "MES_EDGE_SITES"),
        (_environ(URL, MES_INSTANCE_ID="berlin", MES_EDGE_SITES="berlin"), "MES_EDGE_SITES"),
        (_environ(URL, MES_PORT="70000"), "MES_PORT"),
        (_environ(URL, MES_INSTANCE_ID="berlin"), "MES_CLOUD_URL"),  # an edge syncs with it
        (_environ(URL, MES_INSTANCE_ID="berlin", MES_CLOUD_URL="ftp://x"), "MES_CLOUD_URL"),
        (_environ(URL, MES_SYNC_TRANSPORT="kafka"), "MES_KAFKA_BOOTSTRAP_SERVERS"),
        (
            _environ(URL, MES_SYNC_TRANSPORT="kafka", MES_KAFKA_BOOTSTRAP_SERVERS="b:9098"),
            "MES_AWS_REGION",
        ),
        (_environ(URL, MES_SYNC_TRANSPORT="mqtt"), "MES_SYNC_TRANSPORT"),
        (_environ(URL, MES_AWS_REGION="Frankfurt"), "MES_AWS_REGION"),
        (_environ(URL, MES_INVENTORY_URL="inventory:8080"), "MES_INVENTORY_URL"),
        (_environ(URL, MES_LOG_LEVEL="LOUD"), "MES_LOG_LEVEL"),
    ],
)
def test_bad_settings_exit_2_naming_the_variable(environ, variable, capsys, root_logging):
    assert main(["serve"], environ) == EXIT_BAD_SETTINGS
    assert variable in capsys.readouterr().err


def test_good_settings():
    parsed = settings(URL, edge_sites=" berlin ")
    assert parsed.edge_sites == ("berlin",)
    assert parsed.layout().station_kind("berlin", "body-line-1", "press-01") == "press"


def test_the_module_runs_and_exits_2_on_bad_settings():
    done = subprocess.run(
        [sys.executable, "-m", "services.production_execution", "migrate"],
        cwd=PROJECT_ROOT,
        env={"MES_DATABASE_URL": "sqlite://", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_BAD_SETTINGS, done.stderr
    assert "MES_DATABASE_URL" in done.stderr and "MES_PLANT_CONFIG" in done.stderr
