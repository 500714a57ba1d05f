"""Alembic, driven from code: each service keeps its scripts in ``<service>/migrations`` and its
``env.py`` calls ``run_migrations`` with its metadata. ``python -m services.<name> migrate``
upgrades a database to head; readiness reports not ready until it is there.

Several pods' ``migrate`` init containers may start at once (a rollout, a scale-up): each
upgrade runs under a PostgreSQL advisory lock of its service, so one migrates and the others
wait, then find the database at head and do nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, func, select
from sqlalchemy.engine import Engine

from services.common.db import make_engine

# Where alembic's env.py finds the connection upgrade_to_head holds the lock on.
CONNECTION_ATTRIBUTE = "connection"


def alembic_config(migrations_dir: Path, database_url: str | None = None) -> Config:
    """Without a URL, env.py runs on the connection in the config's attributes."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    if database_url is not None:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def migration_lock_key(name: str) -> int:
    """The advisory lock's key of one service's migrations: a fixed signed 64-bit number (the
    type pg_advisory_xact_lock takes) from its name, the same in every process."""
    digest = hashlib.sha256(f"mes-migrations:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def upgrade_to_head(
    migrations_dir: Path, database: str | Engine, lock_name: str | None = None
) -> None:
    """Upgrade to head in one transaction that first takes the service's advisory lock
    (``lock_name``, by default the migrations' package: ``inventory``). A transaction-level
    lock: the commit, a rollback or a lost connection releases it, so a runner that dies
    cannot leave the others waiting. A runner that waited reads the version table after the
    lock is its own (READ COMMITTED: each statement sees what committed before it), so it
    finds head and runs nothing."""
    engine = make_engine(database) if isinstance(database, str) else database
    key = migration_lock_key(lock_name or migrations_dir.parent.name)
    config = alembic_config(migrations_dir)
    try:
        with engine.begin() as connection:
            connection.execute(select(func.pg_advisory_xact_lock(key)))
            config.attributes[CONNECTION_ATTRIBUTE] = connection
            command.upgrade(config, "head")
    finally:
        if isinstance(database, str):
            engine.dispose()


def head_revision(migrations_dir: Path) -> str | None:
    return ScriptDirectory(str(migrations_dir)).get_current_head()


def at_head(engine: Engine, migrations_dir: Path) -> bool:
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current == head_revision(migrations_dir)


def run_migrations(target_metadata: MetaData) -> None:
    """The body of a service's ``env.py`` (online mode only: there is always a database). On
    the connection ``upgrade_to_head`` passes (in its transaction, under its lock), else on one
    of its own (the alembic command line)."""
    connection = context.config.attributes.get(CONNECTION_ATTRIBUTE)
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():  # inside the caller's: it commits
            context.run_migrations()
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
