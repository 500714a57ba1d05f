"""The curated zone on disk: Parquet files with the Glue tables' schemas (``mes_domain.lake``),
under ``<table>/site=<site>/dt=<YYYY-MM-DD>/``, as Firehose's format conversion writes them.

Rows come from ``mes_domain.lake``'s own row builders (``station_row``, ``document_row``), so
the files hold what the delivery path would; telemetry is built as columns (millions of rows)
with the same rules (``reading_text``, ``reading_number``, ``day_of``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mes_domain import lake
from mes_domain.plant import TagDataType
from tests.lake.simulation import SimulatedDay, TelemetryColumns

_SCALARS = {
    "string": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
}
DAY_MS = 86_400_000


def _split_top_level(text: str) -> list[str]:
    """``a:int,b:struct<c:int,d:int>`` -> its top-level comma-separated parts."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def arrow_type(glue: str) -> pa.DataType:
    """The Arrow type Firehose's Parquet SerDe writes for a Glue/Hive column type."""
    if glue in _SCALARS:
        return _SCALARS[glue]
    match = re.fullmatch(r"(array|struct|map)<(.*)>", glue)
    if not match:
        raise ValueError(f"no Arrow type for Glue type {glue!r}")
    kind, inner = match.groups()
    if kind == "array":
        return pa.list_(arrow_type(inner))
    parts = _split_top_level(inner)
    if kind == "map":
        key, value = parts
        return pa.map_(arrow_type(key), arrow_type(value))
    fields = [part.split(":", 1) for part in parts]
    return pa.struct([pa.field(name, arrow_type(kind)) for name, kind in fields])


def arrow_schema(table: lake.LakeTable) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in table.columns])


def partition_dir(root: Path, table: lake.LakeTable, site: str, day: str) -> Path:
    return root / table.prefix / f"{lake.SITE}={site}" / f"{lake.DT}={day}"


def write_rows(root: Path, table: lake.LakeTable, rows: Iterable[Mapping]) -> list[Path]:
    """One Parquet file per (site, day) partition of ``rows`` (each carries ``site``/``dt``)."""
    schema = arrow_schema(table)
    partitions: dict[tuple[str, str], list[Mapping]] = defaultdict(list)
    for row in rows:
        partitions[(row[lake.SITE], row[lake.DT])].append(row)
    written = []
    for (site, day), members in sorted(partitions.items()):
        columns = {c.name: [row.get(c.name) for row in members] for c in table.columns}
        written.append(_write(partition_dir(root, table, site, day), pa.table(columns, schema)))
    return written


# parquet-mr's default page size (Firehose's ParquetSerDe PageSizeBytes: "the default is 1 MiB").
PAGE_BYTES = 1024 * 1024


def dictionary_columns(data: pa.Table) -> list[str]:
    """The columns parquet-mr keeps dictionary-encoded when dictionaries are on: it encodes a
    column's first page both ways and keeps the dictionary only if dictionary and indices are
    smaller than the plain values (FallbackValuesWriter, isCompressionSatisfying). Decided here
    on about a page of each column, uncompressed, as there."""
    dictionary = []
    for name in data.column_names:
        column = data.select([name])
        width = max(1, column.nbytes // max(1, column.num_rows))
        sample = column.slice(0, max(1, PAGE_BYTES // width))
        sizes = []
        for use_dictionary in (True, False):
            sink = pa.BufferOutputStream()
            pq.write_table(sample, sink, compression="none", use_dictionary=use_dictionary)
            sizes.append(sink.getvalue().size)
        if sizes[0] < sizes[1]:
            dictionary.append(name)
    return dictionary if lake.PARQUET_DICTIONARY else []


def write_parquet(path: Path, data: pa.Table, dictionary: list[str] | None = None) -> int:
    """``data`` as Firehose's ParquetSerDe writes it (``lake.PARQUET_COMPRESSION``, dictionary
    encoding where parquet-mr keeps it, V1 data pages: the SerDe's default writer version);
    ``dictionary``: the columns to encode so, if already decided. Returns the file's bytes."""
    pq.write_table(
        data,
        path,
        compression=lake.PARQUET_COMPRESSION.lower(),
        use_dictionary=dictionary_columns(data) if dictionary is None else dictionary,
        data_page_size=PAGE_BYTES,
        data_page_version="1.0",
    )
    return path.stat().st_size


def _write(directory: Path, data: pa.Table, name: str = "part-0000.parquet") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    write_parquet(path, data)
    return path


def write_empty(root: Path, table: lake.LakeTable, site: str, day: str) -> Path:
    """A table with no records yet still has a schema to query."""
    return _write(partition_dir(root, table, site, day), arrow_schema(table).empty_table())


def telemetry_table(columns: TelemetryColumns) -> tuple[pa.Table, np.ndarray]:
    """The telemetry table's columns (no partition columns) and each row's UTC day number."""
    schema = arrow_schema(lake.TELEMETRY)
    chunks = []
    for i, ts in enumerate(columns.ts):
        n = ts.size
        values = columns.values[i]
        kind = columns.data_type[i]
        if kind is TagDataType.STRING:
            text = pa.array(values, pa.string())
            number = pa.nulls(n, pa.float64())
        elif kind is TagDataType.BOOLEAN:
            text = pc.if_else(pa.array(values), "true", "false")  # JSON text, as reading_text
            number = pa.array(values.astype(np.float64))
        else:  # a number: value_number only (lake.reading_text)
            text = pa.nulls(n, pa.string())
            number = pa.array(values.astype(np.float64))
        constant = {
            "v": pa.array(np.ones(n, np.int64)),
            "line": pa.array([columns.line[i]] * n, pa.string()),
            "station": pa.array([columns.station[i]] * n, pa.string()),
            # One batch per station and second, as the DataCollector's batches cover.
            "batch_id": pc.binary_join_element_wise(
                columns.batch_id[i], pc.cast(pa.array(ts // 1000), pa.string()), "-"
            ),
            "ts": pa.array(ts),
            "tag": pa.array([columns.tag[i]] * n, pa.string()),
            "value": text,
            "unit": pa.array([columns.unit[i]] * n, pa.string()),
            "quality": pa.array(["GOOD"] * n, pa.string()),
            "value_number": number,
        }
        chunks.append(pa.table([constant[f.name] for f in schema], schema=schema))
    data = pa.concat_tables(chunks)
    days = pc.divide(data["ts"], DAY_MS).to_numpy()
    return data, days


def write_telemetry(root: Path, columns: TelemetryColumns, site: str) -> list[Path]:
    data, days = telemetry_table(columns)
    written = []
    for day_number in np.unique(days):
        day = lake.day_of(int(day_number) * DAY_MS)
        part = data.filter(pa.array(days == day_number))
        part = part.sort_by(
            [
                ("line", "ascending"),
                ("station", "ascending"),
                ("tag", "ascending"),
                ("ts", "ascending"),
            ]
        )
        written.append(_write(partition_dir(root, lake.TELEMETRY, site, day), part))
    return written


def write_day(root: Path, day: SimulatedDay) -> dict[str, list[Path]]:
    """The whole simulated day as the curated zone; every table of ``mes_domain.lake`` exists."""
    site = day.site.id
    station_tables = (
        (lake.STATE_CHANGES, day.states),
        (lake.PART_COUNTS, day.counts),
        (lake.INSPECTION_RESULTS, day.inspections),
    )
    files: dict[str, list[Path]] = {}
    for table, by_station in station_tables:
        rows = (
            lake.station_row(table, message, *path)
            for path, messages in by_station.items()
            for message in messages
        )
        files[table.name] = write_rows(root, table, rows)
    documents = (
        (lake.NONCONFORMANCES, day.nonconformances),
        (lake.PRODUCTION_ORDERS, day.orders),
        (lake.PRODUCTION_CONFIRMATIONS, day.confirmations),
    )
    for table, records in documents:
        files[table.name] = write_rows(root, table, (lake.document_row(table, r) for r in records))
    files[lake.TELEMETRY.name] = write_telemetry(root, day.telemetry, site)
    for table in lake.TABLES:
        if not files.get(table.name):
            files[table.name] = [write_empty(root, table, site, lake.day_of(day.start_ms))]
    return files
