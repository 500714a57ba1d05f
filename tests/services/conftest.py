"""Fixtures of the MES services' tests: one private PostgreSQL per session (``tests/postgres.py``)
and a fresh empty database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres import PostgresNotInstalled, PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One cluster for the whole session: initdb and start take seconds, a database does not."""
    try:
        server = PostgresServer.start()
    except PostgresNotInstalled as missing:
        pytest.fail(str(missing))
    with server:
        yield server


@pytest.fixture
def database_url(postgres: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of a new empty database, dropped after the test."""
    with postgres.temporary_database() as url:
        yield url
