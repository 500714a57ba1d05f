"""The services' PostgreSQL fixture: loopback only, one empty database per test, nothing left."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.greengrass.broker import accepting
from tests.postgres import PostgresNotInstalled, PostgresServer, server_bindir

LISTEN = "0A"  # the socket state of a listening TCP socket in /proc/net/tcp*


def tcp_listeners(port: int) -> dict[str, list[str]]:
    """The local addresses (hex, as the kernel prints them) listening on ``port``, per family."""
    found: dict[str, list[str]] = {}
    for family in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{family}").read_text().splitlines()[1:]:
            local, _remote, state = line.split()[1:4]
            address, hex_port = local.split(":")
            if state == LISTEN and int(hex_port, 16) == port:
                found.setdefault(family, []).append(address)
    return found


def database_of(url: str) -> str:
    return sa.make_url(url).database


@pytest.fixture(scope="module")
def databases_used(postgres: PostgresServer):
    """The databases the tests below got; once their fixtures are torn down, none may be left."""
    names: list[str] = []
    yield names
    assert names, "no test recorded its database"
    assert not set(names) & postgres.databases()


def test_server_listens_on_loopback_only(postgres: PostgresServer):
    with postgres.connect() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == ("",)
        assert conn.execute("SHOW port").fetchone() == (str(postgres.port),)
    # 0100007F: 127.0.0.1 in /proc/net/tcp's byte order; no IPv6 or wildcard listener at all.
    assert tcp_listeners(postgres.port) == {"tcp": ["0100007F"]}
    assert not list(postgres.data_dir.glob(".s.PGSQL.*"))


def test_each_test_gets_its_own_empty_database(
    postgres: PostgresServer, databases_used: list[str], database_url: str
):
    databases_used.append(database_of(database_url))
    assert database_url.startswith(f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/")
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            assert conn.scalar(sa.text("SELECT current_database()")) == database_of(database_url)
            tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            assert conn.scalar(sa.text(tables)) == 0
            conn.execute(sa.text("CREATE TABLE work_orders (id int PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO work_orders VALUES (1)"))
        with postgres.temporary_database() as other_url:
            assert database_of(other_url) != database_of(database_url)
            other = sa.create_engine(other_url)
            try:
                with other.connect() as conn:
                    assert conn.scalar(sa.text("SELECT to_regclass('work_orders')")) is None
            finally:
                other.dispose()
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM work_orders")) == 1
    finally:
        engine.dispose()


def test_a_second_test_does_not_see_the_first_ones_tables(
    databases_used: list[str], database_url: str
):
    databases_used.append(database_of(database_url))
    assert len(set(databases_used)) == len(databases_used)
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT to_regclass('work_orders')")) is None
    finally:
        engine.dispose()


def test_a_database_is_dropped_with_connections_still_open(postgres: PostgresServer):
    with postgres.temporary_database() as url:
        engine = sa.create_engine(url)
        held = engine.connect()  # a pooled connection the code under test forgot to return
        held.execute(sa.text("SELECT 1"))
        assert database_of(url) in postgres.databases()
    assert database_of(url) not in postgres.databases()
    held.invalidate()
    engine.dispose()


def test_stop_ends_the_server_and_removes_its_directory():
    server = PostgresServer.start()
    root, port = server.root, server.port
    assert (root / "data" / "PG_VERSION").is_file() and accepting(port)
    server.stop()
    assert not root.exists()
    assert not accepting(port)
    server.stop()  # twice is harmless (the session fixture's exit after a failed test)


def test_a_server_that_does_not_start_reports_its_log(tmp_path):
    before = set(Path("/tmp").glob("mes-postgres-*"))
    with pytest.raises(RuntimeError, match=r'(?s)server log:.*"shared_buffers"'):
        PostgresServer.start(extra_settings={"shared_buffers": "plenty"})
    assert set(Path("/tmp").glob("mes-postgres-*")) <= before


def _fake_bindir(folder: Path, *, server: bool = True) -> Path:
    folder.mkdir(parents=True)
    for name in ("initdb", "pg_ctl", "postgres") if server else ("psql",):
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(stat.S_IRWXU)
    return folder


def test_binaries_are_found_from_pg_config_or_the_newest_debian_version(tmp_path):
    lib_root = tmp_path / "lib"
    _fake_bindir(lib_root / "9.6" / "bin")
    newest_complete = _fake_bindir(lib_root / "15" / "bin")
    _fake_bindir(lib_root / "16" / "bin", server=False)  # a client-only install
    assert server_bindir(pg_config=None, lib_root=lib_root) == newest_complete

    elsewhere = _fake_bindir(tmp_path / "opt" / "bin")
    pg_config = tmp_path / "pg_config"
    pg_config.write_text(f"#!/bin/sh\necho {elsewhere}\n")
    pg_config.chmod(stat.S_IRWXU)
    assert server_bindir(pg_config=str(pg_config), lib_root=lib_root) == elsewhere

    # libpq-dev's pg_config names a bindir without a server: the Debian one is used.
    pg_config.write_text(f"#!/bin/sh\necho {lib_root / '16' / 'bin'}\n")
    assert server_bindir(pg_config=str(pg_config), lib_root=lib_root) == newest_complete


def test_no_server_names_the_set_up_step(tmp_path):
    with pytest.raises(PostgresNotInstalled, match=r"`make test`.*apt-get install postgresql"):
        server_bindir(pg_config=str(tmp_path / "no-pg_config"), lib_root=tmp_path)
