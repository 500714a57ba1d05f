"""A simulated day of the demo plant, written once as the curated zone, and DuckDB over it."""

from __future__ import annotations

import pytest

from tests.lake.duckdb_lake import connect
from tests.lake.lake_files import write_day
from tests.lake.simulation import SimulatedDay, simulate_day


@pytest.fixture(scope="module")
def simulated(demo_plant) -> SimulatedDay:
    # Tags at most every 10 s: hours of hourly aggregates without millions of rows.
    return simulate_day(demo_plant, telemetry_floor_ms=10_000)


@pytest.fixture(scope="module")
def lake_root(simulated, tmp_path_factory):
    root = tmp_path_factory.mktemp("curated")
    write_day(root, simulated)
    return root


@pytest.fixture(scope="module")
def duck(lake_root):
    connection = connect(lake_root)
    yield connection
    connection.close()
