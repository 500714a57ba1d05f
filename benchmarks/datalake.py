#!/usr/bin/env python3
"""The data lake: what partition pruning saves the OEE query, and what Parquet saves telemetry.

1. Bytes the named OEE query reads for one site and one shift day, with partition pruning
   (``site``/``dt`` predicates on the partition columns), against the same query whose
   partition predicates cannot prune (each is OR-ed with ``ts IS NULL``, never true: the same
   rows, but no file can be skipped), over several sites and days of state changes and part
   counts. Both run in DuckDB (the query translated from Trino by sqlglot), a fresh connection
   each; the figure is DuckDB's profile ``io.total_bytes_read`` (bytes read from the files,
   footers included); the table adds files, row groups and rows scanned. Both must return the
   same rows.
2. One day of the demo plant's telemetry (its tags at their configured sampling: OPC UA
   sampling intervals, Modbus poll intervals, MQTT once per cycle, others once a second) as
   Parquet with the lake's telemetry schema, one file per Firehose buffer interval (300 s),
   written as the stack configures Firehose's ParquetSerDe (``lake.PARQUET_COMPRESSION``,
   dictionary encoding where parquet-mr keeps it: ``tests.lake.lake_files.write_parquet``),
   against the newline JSON of the TelemetryBatch messages (one per station and second) that
   the raw zone backs up; the table adds the same files with Snappy (the SerDe's default
   codec), gzip JSON (how raw lands) and one compacted Parquet file for the day. A number is
   in ``value_number`` only, not also as ``value`` text (``lake.reading_text``).

    .venv/bin/python benchmarks/datalake.py [--sites 3] [--days 14] [--hours 24] [--quick]

``--quick``: 3 sites x 5 days, one hour of telemetry (a smoke run in seconds).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.figures import figure  # noqa: E402
from mes_domain import lake  # noqa: E402
from mes_domain.contracts import TelemetryBatch  # noqa: E402
from mes_domain.plant import TagDataType  # noqa: E402
from stacks.datalake_queries import render, sql_file  # noqa: E402
from stacks.plant_config import load_plant  # noqa: E402
from tests.conftest import DEMO_PLANT  # noqa: E402
from tests.lake.duckdb_lake import DATABASE, connect, to_duckdb  # noqa: E402
from tests.lake.lake_files import (  # noqa: E402
    arrow_schema,
    dictionary_columns,
    partition_dir,
    telemetry_table,
    write_parquet,
)
from tests.lake.simulation import simulate_day, simulate_telemetry  # noqa: E402

DAY_MS = 86_400_000
FIREHOSE_INTERVAL_MS = 300_000  # stacks/constructs/lake_delivery.py TELEMETRY_BUFFER
BATCH_MS = 1000  # the demo lines' max_batch_delay_ms: a station's batch covers a second
OEE_TABLES = (lake.STATE_CHANGES, lake.PART_COUNTS)
MIB = 1024 * 1024
PER_INTERVAL = f"Parquet, a file per 300 s, {lake.PARQUET_COMPRESSION}"


# --- 1. partition pruning -------------------------------------------------------------------


def oee_lake(root: Path, sites: int, days: int) -> tuple[list[str], str]:
    """The simulated day's state changes and part counts copied to ``sites`` x ``days``
    partitions (timestamps moved by whole days); returns the site ids and a working day."""
    plant = load_plant(DEMO_PLANT)
    day = simulate_day(plant, telemetry_floor_ms=3_600_000)  # telemetry is not read here
    site_ids = [day.site.id] + [f"site-{k}" for k in range(1, sites)]
    for table in OEE_TABLES:
        by_station = day.states if table is lake.STATE_CHANGES else day.counts
        rows = [
            lake.station_row(table, message, *path)
            for path, messages in by_station.items()
            for message in messages
        ]
        schema = arrow_schema(table)
        base = pa.table({c.name: [r.get(c.name) for r in rows] for c in table.columns}, schema)
        ts = base[table.time_column].to_numpy()
        dictionary = dictionary_columns(base)
        for offset in range(days):
            moved = base.set_column(
                schema.get_field_index(table.time_column),
                table.time_column,
                pa.array(ts + offset * DAY_MS),
            )
            dt = lake.day_of(int(ts.min()) + offset * DAY_MS)
            for site in site_ids:
                directory = partition_dir(root, table, site, dt)
                directory.mkdir(parents=True, exist_ok=True)
                write_parquet(directory / "part-0000.parquet", moved, dictionary)
    # A working day near the middle, so the shift's lookback and lookahead days hold data.
    candidates = sorted(range(days), key=lambda k: (abs(k - days // 2), -k))
    offset = next(k for k in candidates if (day.day + timedelta(days=k)).weekday() < 5)
    return site_ids, (day.day + timedelta(days=offset)).isoformat()


def without_pruning(trino_sql: str) -> str:
    """The query with every partition predicate OR-ed with ``ts IS NULL`` (never true): the
    same rows, but no predicate on the partition columns alone, so no file is skipped."""
    tree = sqlglot.parse_one(trino_sql, read="trino")
    for node in list(tree.find_all(exp.EQ, exp.Between)):
        column = node.this
        if (
            isinstance(column, exp.Column)
            and not column.table
            and column.name
            in (
                lake.SITE,
                lake.DT,
            )
        ):
            never = exp.Is(this=exp.column("ts"), expression=exp.Null())
            node.replace(exp.paren(exp.or_(node.copy(), never)))
    return tree.sql(dialect="trino")


def profiled(root: Path, duckdb_sql: str, parameters: list, tables=OEE_TABLES) -> tuple[list, dict]:
    """The rows and DuckDB's JSON profile of one run on a fresh connection."""
    connection = connect(root, tables=tables)
    with tempfile.NamedTemporaryFile(suffix=".json") as output:
        connection.execute("SET enable_profiling = 'json'")
        connection.execute(f"SET profiling_output = '{output.name}'")
        rows = connection.execute(duckdb_sql, parameters).fetchall()
        connection.execute("SET enable_profiling = 'no_output'")  # flushes the profile
        connection.close()
        profile = json.loads(Path(output.name).read_text())
    return rows, profile


def scans(profile: dict) -> list[dict]:
    found, stack = [], list(profile.get("operator", []))
    while stack:
        node = stack.pop()
        if node.get("type") == "TABLE_SCAN":
            found.append(node)
        stack.extend(node.get("children", []))
    return found


def scan_figures(profile: dict) -> dict[str, int]:
    tables = scans(profile)
    return {
        "bytes read": profile["io"]["total_bytes_read"],
        "files": sum(int(t["extra_info"].get("Total Files Read", 0)) for t in tables),
        "row groups": sum(t.get("row_groups_scanned", 0) for t in tables),
        "rows": sum(t.get("rows_scanned", 0) for t in tables),
    }


def measure_pruning(root: Path, site: str, day: str) -> tuple[dict, dict]:
    plant = load_plant(DEMO_PLANT)
    trino = render(sql_file("oee_by_line_and_shift").read_text(), database=DATABASE, plant=plant)
    parameters = [site, day, day] * 3
    pruned_rows, pruned = profiled(root, to_duckdb(trino), parameters)
    full_rows, full = profiled(root, to_duckdb(without_pruning(trino)), parameters)
    if pruned_rows != full_rows or not pruned_rows:
        sys.exit("the OEE query returns other rows without pruning; not comparing")
    return scan_figures(pruned), scan_figures(full)


# --- 2. Parquet against JSON ----------------------------------------------------------------


def _json_value(value, kind: TagDataType):
    if kind is TagDataType.BOOLEAN:
        return bool(value)
    if kind is TagDataType.INTEGER:
        return int(value)
    if kind is TagDataType.STRING:
        return str(value)
    return float(value)


def raw_windows(columns, site: str, start_ms: int, end_ms: int):
    """The newline JSON the raw zone gets per Firehose interval: TelemetryBatch messages, one
    per station and second, in arrival order. Built a window at a time (a day is millions of
    readings); yields (JSON bytes, batches) per window."""
    by_station: dict[tuple[str, str], list[int]] = {}
    for i, station in enumerate(columns.station):
        by_station.setdefault((columns.line[i], station), []).append(i)
    for window_start in range(start_ms, end_ms, FIREHOSE_INTERVAL_MS):
        window_end = window_start + FIREHOSE_INTERVAL_MS
        batches = []
        for (line, station), members in by_station.items():
            readings = []
            for i in members:
                ts = columns.ts[i]
                first, last = np.searchsorted(ts, [window_start, window_end])
                kind, unit, tag = columns.data_type[i], columns.unit[i], columns.tag[i]
                values = columns.values[i][first:last].tolist()
                for t, value in zip(ts[first:last].tolist(), values, strict=True):
                    value = _json_value(value, kind)
                    readings.append(
                        (t, {"ts": t, "tag": tag, "value": value, "unit": unit, "quality": "GOOD"})
                    )
            readings.sort(key=lambda pair: pair[0])
            by_second: dict[int, list[dict]] = {}
            for t, reading in readings:
                by_second.setdefault(t // BATCH_MS, []).append(reading)
            for second, members_of_second in by_second.items():
                batch = {
                    "v": 1,
                    "site": site,
                    "line": line,
                    "station": station,
                    "batch_id": f"{station}-{second}",
                    "readings": members_of_second,
                }
                batches.append((second, station, json.dumps(batch, separators=(",", ":"))))
        batches.sort(key=lambda b: (b[0], b[1]))
        yield ("\n".join(text for _, _, text in batches) + "\n").encode(), len(batches)


def tag_query_bytes(root: Path, site: str, day: str) -> int:
    """Bytes the hourly aggregates of one tag read from the Parquet files (DuckDB's profile)."""
    plant = load_plant(DEMO_PLANT)
    trino = render(sql_file("hourly_tag_aggregates").read_text(), database=DATABASE, plant=plant)
    parameters = [site, day, day, "body-line-1", "press-01", "ram_force"]
    rows, profile = profiled(root, to_duckdb(trino), parameters, tables=(lake.TELEMETRY,))
    if not rows:
        sys.exit("the hourly aggregates found no readings; not measuring")
    return profile["io"]["total_bytes_read"]


def measure_formats(root: Path, hours: int) -> dict[str, float]:
    plant = load_plant(DEMO_PLANT)
    site = plant.sites[0]
    start = int(datetime(2025, 11, 14, tzinfo=UTC).timestamp() * 1000)
    columns = simulate_telemetry(site, start, start + hours * 3_600_000)
    data, _ = telemetry_table(columns)
    # Arrival order: batch after batch (a station's second), each batch's readings in order.
    ts = data["ts"].to_numpy()
    stations = data["station"].to_numpy(zero_copy_only=False)
    data = data.take(np.lexsort((ts, stations, ts // BATCH_MS)))
    ts = data["ts"].to_numpy()
    windows = (ts - start) // FIREHOSE_INTERVAL_MS
    directory = partition_dir(root, lake.TELEMETRY, site.id, lake.day_of(start))
    directory.mkdir(parents=True)
    interval_bytes = snappy_bytes = 0
    bounds = np.flatnonzero(np.diff(windows)) + 1
    for k, (begin, end) in enumerate(zip([0, *bounds], [*bounds, len(ts)], strict=True)):
        window = data.slice(begin, end - begin)
        dictionary = dictionary_columns(window)  # parquet-mr decides per file and column
        interval_bytes += write_parquet(directory / f"window-{k:04d}.parquet", window, dictionary)
        snappy = root / "snappy.parquet"
        pq.write_table(window, snappy, compression="snappy", use_dictionary=dictionary)
        snappy_bytes += snappy.stat().st_size
    tag_query = tag_query_bytes(root, site.id, lake.day_of(start))
    compacted = write_parquet(root / "day.parquet", data)

    json_bytes = gzip_bytes = batches = 0
    for text, count in raw_windows(columns, site.id, start, start + hours * 3_600_000):
        if not json_bytes:  # the raw lines are the contract's messages
            TelemetryBatch.model_validate_json(text.split(b"\n", 1)[0])
        json_bytes += len(text)
        gzip_bytes += len(gzip.compress(text, compresslevel=6))  # a backup object per window
        batches += count
    return {
        "readings": data.num_rows,
        "batches": batches,
        "parquet files": len(bounds) + 1,
        PER_INTERVAL: interval_bytes / MIB,
        "Parquet, a file per 300 s, Snappy": snappy_bytes / MIB,
        "Parquet, one file": compacted / MIB,
        "newline JSON": json_bytes / MIB,
        "newline JSON, gzip per 300 s": gzip_bytes / MIB,
        "hourly aggregates of one tag read": tag_query / MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--hours", type=int, default=24, help="hours of telemetry")
    parser.add_argument("--quick", action="store_true", help="3 sites x 5 days, 1 hour")
    args = parser.parse_args()
    if args.quick:
        args.sites, args.days, args.hours = 3, 5, 1

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        site_ids, day = oee_lake(root / "curated", args.sites, args.days)
        pruned, full = measure_pruning(root / "curated", site_ids[0], day)
        print(
            f"OEE by line and shift, site {site_ids[0]}, shift day {day}; the lake holds "
            f"{args.sites} sites x {args.days} days of state changes and part counts"
        )
        print(f"{'':<34}{'bytes read':>12}{'files':>8}{'row groups':>12}{'rows':>10}")
        for name, measured in (("partition pruning", pruned), ("no pruning (full scan)", full)):
            print(
                f"{name:<34}{measured['bytes read']:>12,}{measured['files']:>8}"
                f"{measured['row groups']:>12}{measured['rows']:>10,}"
            )
        formats = measure_formats(root / "formats", args.hours)
    print(
        f"\nTelemetry of the demo plant, {args.hours} h: {formats['readings']:,} readings in "
        f"{formats['batches']:,} batches, {formats['parquet files']} Parquet files"
    )
    for name in (
        PER_INTERVAL,
        "Parquet, a file per 300 s, Snappy",
        "Parquet, one file",
        "newline JSON",
        "newline JSON, gzip per 300 s",
        "hourly aggregates of one tag read",
    ):
        print(f"{name:<40}{formats[name]:>10.3f} MiB")
    figure(
        "OEE query bytes read, one site and shift day (partition pruning)",
        pruned["bytes read"],
        "bytes",
        f"same query without pruning ({args.sites} sites x {args.days} days)",
        full["bytes read"],
    )
    figure(
        f"telemetry as Parquet, {args.hours} h of the demo plant (300 s files)",
        formats[PER_INTERVAL],
        "MiB",
        "newline JSON of its TelemetryBatch messages",
        formats["newline JSON"],
    )
    print(f"datalake: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
