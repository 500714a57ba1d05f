"""Init containers of several pods run ``migrate`` together: one upgrades, the others wait on
the service's advisory lock and then find the schema at head.

The runners are threads calling what ``migrate`` calls (``upgrade_to_head``), each with its own
engine and connection: to PostgreSQL they are separate sessions, as separate pods are, without
a second interpreter's start-up."""

from __future__ import annotations

import threading
import time

from sqlalchemy.engine import make_url

from services.common.db import make_engine
from services.common.migrations import at_head, migration_lock_key, upgrade_to_head
from services.inventory.app import MIGRATIONS_DIR

RUNNERS = 2
WAIT_S = 20.0


def waiting_on_advisory_locks(postgres, database: str) -> int:
    with postgres.connect() as connection:
        return connection.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s",
            (database,),
        ).fetchone()[0]


def test_concurrent_migrate_commands_upgrade_once_and_all_succeed(postgres, database_url):
    database = make_url(database_url).database
    key = migration_lock_key("inventory")
    failures: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade_to_head(MIGRATIONS_DIR, database_url)
        except BaseException as failure:  # noqa: BLE001 - reported by the test below
            failures.append(failure)

    # The test holds the lock first, so both runners are surely waiting on it together; then
    # it lets go and they race for it, as two pods starting at once do.
    with postgres.connect(database) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        runners = [threading.Thread(target=migrate, daemon=True) for _ in range(RUNNERS)]
        for runner in runners:
            runner.start()
        deadline = time.monotonic() + WAIT_S
        while waiting_on_advisory_locks(postgres, database) < RUNNERS:
            assert not failures, failures
            assert all(r.is_alive() for r in runners), "a runner ended without waiting on the lock"
            assert time.monotonic() < deadline, "the runners never waited on the lock"
            time.sleep(0.02)
        engine = make_engine(database_url)
        try:
            assert not at_head(engine, MIGRATIONS_DIR), "nothing migrates while it is held"
        finally:
            engine.dispose()
        holder.execute("SELECT pg_advisory_unlock(%s)", (key,))
        for runner in runners:
            runner.join(WAIT_S)
    # Both succeed: the one that waited found head (a second CREATE TABLE would have failed).
    assert not any(runner.is_alive() for runner in runners)
    assert failures == []
    engine = make_engine(database_url)
    try:
        assert at_head(engine, MIGRATIONS_DIR)
        with engine.connect() as connection:
            versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert len(versions.fetchall()) == 1
    finally:
        engine.dispose()


def test_each_service_has_its_own_lock_key():
    keys = {name: migration_lock_key(name) for name in ("inventory", "production_execution")}
    assert len(set(keys.values())) == len(keys)
    assert all(-(2**63) <= key < 2**63 for key in keys.values())  # PostgreSQL's bigint
    assert migration_lock_key("inventory") == keys["inventory"]  # the same in every process
