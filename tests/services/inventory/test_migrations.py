"""The schema: migrations from empty to head match the models, the database itself refuses
negative stock and changes to the ledger, and the command line migrates and checks settings."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient

from services.common.db import make_engine
from services.common.migrations import at_head, head_revision, upgrade_to_head
from services.common.settings import ServiceSettings
from services.inventory.__main__ import main
from services.inventory.app import MIGRATIONS_DIR, build_app
from services.inventory.models import Base


def test_migrations_from_empty_to_head_give_the_models_schema(database_url):
    app = build_app(ServiceSettings(database_url=database_url))
    engine = make_engine(database_url)
    try:
        with TestClient(app) as client:
            assert client.get("/health/ready").status_code == 503  # nothing migrated yet
            upgrade_to_head(MIGRATIONS_DIR, database_url)
            assert client.get("/health/ready").json() == {"status": "ready"}
        assert head_revision(MIGRATIONS_DIR) == "0001"
        assert at_head(engine, MIGRATIONS_DIR)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
        assert set(sa.inspect(engine).get_table_names()) == {
            *Base.metadata.tables,
            "alembic_version",
        }
    finally:
        app.state.engine.dispose()
        engine.dispose()


def insert_position(connection, quantity: str, reserved: str) -> None:
    connection.execute(
        sa.text(
            "INSERT INTO stock (site, location, material_id, lot, uom, quantity, reserved,"
            " received, version) VALUES ('s', 'A', 'M', 'L', 'pc', :q, :r, 1, 1)"
        ),
        {"q": quantity, "r": reserved},
    )


@pytest.mark.parametrize(
    ("quantity", "reserved", "constraint"),
    [
        ("-0.000001", "0", "ck_stock_quantity_not_negative"),
        ("1", "-1", "ck_stock_reserved_not_negative"),
        ("1", "1.5", "ck_stock_reserved_within_quantity"),
    ],
)
def test_the_database_refuses_negative_or_over_reserved_stock_whatever_the_code_does(
    db, quantity, reserved, constraint
):
    with pytest.raises(sa.exc.IntegrityError, match=constraint), db.begin() as connection:
        insert_position(connection, quantity, reserved)


def test_the_ledger_is_append_only(db):
    with db.begin() as connection:
        insert_position(connection, "5", "0")
        connection.execute(
            sa.text(
                "INSERT INTO movement (at, command_id, actor, kind, stock_id, delta, uom)"
                " VALUES (1, 'c', 'a', 'RECEIPT', 1, 5, 'pc')"
            )
        )
    for change in ("UPDATE movement SET delta = 6", "DELETE FROM movement"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.begin() as connection:
            connection.execute(sa.text(change))
    with db.connect() as connection:
        assert connection.execute(sa.text("SELECT delta FROM movement")).scalar_one() == 5


def test_the_command_line_migrates_and_refuses_a_bad_setting_naming_it(
    database_url, monkeypatch, capsys
):
    monkeypatch.setenv("MES_DATABASE_URL", database_url)
    monkeypatch.setenv("MES_PORT", "70000")
    assert main(["migrate"]) == 2
    assert "MES_PORT" in capsys.readouterr().err
    monkeypatch.setenv("MES_PORT", "8080")
    monkeypatch.setenv("MES_DATABASE_URL", database_url.replace("+psycopg", ""))
    assert main(["migrate"]) == 2
    assert "MES_DATABASE_URL" in capsys.readouterr().err
    monkeypatch.setenv("MES_DATABASE_URL", database_url)
    assert main(["migrate"]) == 0
    engine = make_engine(database_url)
    try:
        assert at_head(engine, MIGRATIONS_DIR)
    finally:
        engine.dispose()
