"""Athena's named queries run in DuckDB over the curated zone on disk.

Each Glue table is a DuckDB view of the same name over its Parquet files, with ``site`` and
``dt`` read from the hive partition path (as strings: partition projection declares both
``string``). The query is rendered as the stack renders it (``stacks.datalake_queries``) and
translated from Athena's Trino dialect with sqlglot; the execution parameters stay ``?``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import sqlglot

from mes_domain import lake
from mes_domain.plant import Plant
from stacks.datalake_queries import render, sql_file

DATABASE = "mes_lake"


def to_duckdb(trino_sql: str) -> str:
    """One Trino statement in DuckDB's dialect."""
    (statement,) = sqlglot.transpile(trino_sql, read="trino", write="duckdb")
    return statement


def table_glob(root: Path, table: lake.LakeTable) -> str:
    return str(root / table.prefix / "**" / "*.parquet")


def connect(
    root: Path,
    *,
    database: str = DATABASE,
    tables: Sequence[lake.LakeTable] = lake.TABLES,
) -> duckdb.DuckDBPyConnection:
    """A connection with a schema ``database`` holding a view per Glue table (of ``tables``)."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")  # Athena's session time zone
    connection.execute(f'CREATE SCHEMA "{database}"')
    for table in tables:
        connection.execute(
            f'CREATE VIEW "{database}"."{table.name}" AS SELECT * FROM read_parquet('
            f"'{table_glob(root, table)}', hive_partitioning = true, "
            "hive_types = {'site': 'VARCHAR', 'dt': 'VARCHAR'})"
        )
    return connection


def query_sql(name: str, plant: Plant, *, database: str = DATABASE) -> str:
    """The named query as DuckDB runs it."""
    return to_duckdb(render(sql_file(name).read_text(), database=database, plant=plant))


def run(
    connection: duckdb.DuckDBPyConnection,
    name: str,
    plant: Plant,
    parameters: Sequence[object],
    *,
    sql: str | None = None,
) -> list[dict]:
    """The named query's rows as dicts; ``sql`` (Trino) replaces the file's text."""
    text = (
        query_sql(name, plant)
        if sql is None
        else to_duckdb(render(sql, database=DATABASE, plant=plant))
    )
    cursor = connection.execute(text, list(parameters))
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
