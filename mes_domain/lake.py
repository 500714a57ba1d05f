"""The data lake's tables, derived from the ``mes_domain`` contracts (the single source of truth).

Each ``LakeTable`` names a table of the Glue database, its prefix under the curated bucket, its
data columns as (name, Glue/Hive type) and the epoch-ms column its day partition comes from.
The columns are the contract model's fields, mapped by ``glue_type``, plus a few context columns
the message does not carry itself (the station of a state change is its topic's, say):

- str, enums -> ``string``; int -> ``bigint``; float -> ``double``; bool -> ``boolean``;
- ``X | None`` -> the type of X (every column is nullable);
- a nested model or dataclass -> ``struct<...>``; a list, tuple or set -> ``array<...>``;
  a mapping -> ``map<string,...>``; a union of scalars -> ``string`` (its JSON text).
- Timestamps stay epoch milliseconds UTC (``bigint``), exactly as the contracts carry them, so
  a query computes with the same integers as ``mes_domain.kpi`` (no rounding through a
  timestamp type); Athena reads them with ``from_unixtime(ts / 1e3)``.

Partitions are ``site`` (string) and ``dt`` (the UTC day ``YYYY-MM-DD`` of ``time_column``),
never tag or asset: Firehose's dynamic partitioning allows 500 active partitions per stream
("Once the active partition count reaches the limit of 500 per Firehose stream, the rest of
the records ... are delivered to the specified S3 error bucket prefix",
docs.aws.amazon.com/firehose/latest/dev/buffering.html), and a tag per partition would also
give Athena a tiny Parquet file per tag and day. A site and a day stay in the dozens.
Both are projected (Athena partition projection: site ``enum`` of the plant's sites, which
the docs advise keeping to "a few dozen or less", dt ``date``), so no crawler or MSCK REPAIR is
needed (docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html).

A contract field named ``site`` is the ``site`` partition, not a data column: Hive forbids a
partition column with a data column's name. Rows built here (``*_row(s)``) carry ``site`` and
``dt`` as keys next to the data columns; Firehose drops keys that are not columns.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Union

from pydantic import BaseModel

from mes_domain.contracts import InspectionResult, PartCount, Reading, StateChange, TelemetryBatch
from mes_domain.enterprise import (
    NonConformanceReport,
    OrderStatusChanged,
    ProductionConfirmation,
    ProductionOrder,
)
from mes_domain.kpi import KpiResult, ParetoEntry, Reliability

SITE = "site"
DT = "dt"
DT_FORMAT = "yyyy-MM-dd"  # Java's SimpleDateFormat, as Athena's projection.dt.format reads it
DT_STRFTIME = "%Y-%m-%d"  # the same day in Python's and jq's strftime
# First day the date projection enumerates; a query's dt filter narrows it further.
PROJECTION_START_DAY = "2024-01-01"
# NOW+1DAYS: a device clock may run up to 15 minutes ahead (contracts.MAX_FUTURE_SKEW_MS), so
# a reading can belong to tomorrow's UTC day shortly before midnight.
PROJECTION_END = "NOW+1DAYS"
# How Firehose's ParquetSerDe writes the curated zone. Its codecs are UNCOMPRESSED, SNAPPY and
# GZIP ("Use GZIP if the compression ratio is more important than speed", Firehose API
# reference, ParquetSerDe; no ZSTD): GZIP, as Athena bills the bytes a query scans.
# Dictionary encoding on: parquet-mr, the SerDe's writer, keeps a column's dictionary only
# where it pays (dictionary and indices smaller than the plain values of the first page),
# which the strings (line, station, tag, unit, quality) do. benchmarks/datalake.py writes the
# same way.
PARQUET_COMPRESSION = "GZIP"
PARQUET_DICTIONARY = True


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # Glue/Hive type: string, bigint, double, boolean, struct<...>, array<...>, map<...>


PARTITION_KEYS = (Column(SITE, "string"), Column(DT, "string"))


class UnmappedType(TypeError):
    pass


def _strip(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> X."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _scalar(annotation: Any) -> str | None:
    if isinstance(annotation, type):
        if issubclass(annotation, Enum) or issubclass(annotation, str):
            return "string"
        if issubclass(annotation, bool):  # before int: bool is an int in Python
            return "boolean"
        if issubclass(annotation, int):
            return "bigint"
        if issubclass(annotation, float):
            return "double"
    return None


def glue_type(annotation: Any) -> str:
    """The Glue/Hive type of a field's annotation (rules in the module's docstring)."""
    annotation = _strip(annotation)
    scalar = _scalar(annotation)
    if scalar is not None:
        return scalar
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [_strip(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return glue_type(members[0])
        if all(_scalar(member) is not None for member in members):
            return "string"
        raise UnmappedType(f"no column type for a union of {members}")
    if origin in (list, tuple, set, frozenset, Sequence, Iterable):
        (item, *rest) = typing.get_args(annotation)
        if origin is tuple and rest not in ([], [Ellipsis]):
            raise UnmappedType(f"a fixed tuple {annotation} has no column type")
        return f"array<{glue_type(item)}>"
    if origin in (dict, Mapping):
        key, value = typing.get_args(annotation)
        return f"map<{glue_type(key)},{glue_type(value)}>"
    if isinstance(annotation, type) and _fields(annotation):
        inner = ",".join(f"{c.name}:{c.type}" for c in columns_of(annotation))
        return f"struct<{inner}>"
    raise UnmappedType(f"no column type for {annotation!r}")


def _fields(model: type) -> dict[str, Any]:
    """Field name -> annotation of a pydantic model, dataclass or NamedTuple."""
    if issubclass(model, BaseModel):
        return {name: info.annotation for name, info in model.model_fields.items()}
    if dataclasses.is_dataclass(model) or hasattr(model, "_fields"):
        hints = typing.get_type_hints(model, include_extras=True)
        names = (
            [f.name for f in dataclasses.fields(model)]
            if dataclasses.is_dataclass(model)
            else list(model._fields)
        )
        return {name: hints[name] for name in names}
    return {}


def columns_of(model: type, *, exclude: Iterable[str] = ()) -> tuple[Column, ...]:
    """A model's fields as columns, in declaration order."""
    skip = set(exclude)
    return tuple(
        Column(name, glue_type(annotation))
        for name, annotation in _fields(model).items()
        if name not in skip
    )


@dataclass(frozen=True, slots=True)
class LakeTable:
    """One Glue table of the curated zone.

    ``columns`` are the data columns (Parquet), in order; ``sources`` the models whose fields
    they are; ``context`` the columns that are no source's field (the topic's station, the
    KPI's scope, a value derived for queries);
    ``time_column`` the epoch-ms column whose UTC day is ``dt``.
    """

    name: str
    description: str
    sources: tuple[type, ...]
    columns: tuple[Column, ...]
    context: tuple[Column, ...]
    time_column: str

    @property
    def prefix(self) -> str:
        """Under the curated bucket: ``<name>/site=<site>/dt=<YYYY-MM-DD>/``."""
        return f"{self.name}/"

    @property
    def partition_keys(self) -> tuple[Column, ...]:
        return PARTITION_KEYS

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")

    def location(self, bucket_name: str) -> str:
        return f"s3://{bucket_name}/{self.prefix}"

    def location_template(self, bucket_name: str) -> str:
        """Athena's ``storage.location.template``: where one partition's objects are."""
        return f"s3://{bucket_name}/{self.prefix}{SITE}=${{{SITE}}}/{DT}=${{{DT}}}/"

    def projection(self, bucket_name: str, site_ids: Sequence[str]) -> dict[str, str]:
        """The Glue table parameters of partition projection for this table."""
        if not site_ids:
            raise ValueError("partition projection needs at least one site id")
        return {
            "projection.enabled": "true",
            f"projection.{SITE}.type": "enum",
            f"projection.{SITE}.values": ",".join(site_ids),
            f"projection.{DT}.type": "date",
            f"projection.{DT}.format": DT_FORMAT,
            f"projection.{DT}.range": f"{PROJECTION_START_DAY},{PROJECTION_END}",
            f"projection.{DT}.interval": "1",
            f"projection.{DT}.interval.unit": "DAYS",
            "storage.location.template": self.location_template(bucket_name),
        }


def _table(
    name: str,
    description: str,
    sources: Sequence[type],
    time_column: str,
    *,
    context: Sequence[Column] = (),
    derived: Sequence[Column] = (),
    exclude: Iterable[str] = (),
) -> LakeTable:
    """Columns: ``context`` first, then each source's fields but ``site``, then ``derived``."""
    skip = {SITE, *exclude}
    fields = (c for model in sources for c in columns_of(model, exclude=skip))
    columns = (*context, *fields, *derived)
    return LakeTable(name, description, tuple(sources), columns, (*context, *derived), time_column)


STATION = (Column("line", "string"), Column("station", "string"))

TELEMETRY = _table(
    "telemetry",
    "One row per Reading of a TelemetryBatch, with the batch's station and id.",
    (TelemetryBatch, Reading),
    "ts",
    # value: the reading's text when it is not a number (a string as is, a boolean "true" or
    # "false"), else null; value_number: a number or a boolean (1/0) as a double, else null.
    # A number is in value_number only: as text too it was a third of the Parquet bytes.
    derived=(Column("value_number", "double"),),
    exclude=("readings",),
)
STATE_CHANGES = _table(
    "state_changes",
    "StateChange messages with the station of their topic.",
    (StateChange,),
    "ts",
    context=STATION,
)
PART_COUNTS = _table(
    "part_counts",
    "PartCount messages (deltas) with the station of their topic.",
    (PartCount,),
    "ts",
    context=STATION,
)
INSPECTION_RESULTS = _table(
    "inspection_results",
    "InspectionResult messages (verdict, score, model id and version) with their station.",
    (InspectionResult,),
    "ts",
    context=STATION,
)
NONCONFORMANCES = _table(
    "nonconformances",
    "NonConformanceReport events of the platform bus.",
    (NonConformanceReport,),
    "detected_at",
)
PRODUCTION_ORDERS = _table(
    "production_orders",
    "ProductionOrder documents from ERP, each revision.",
    (ProductionOrder,),
    "issued_at",
)
PRODUCTION_CONFIRMATIONS = _table(
    "production_confirmations",
    "ProductionConfirmation events sent to ERP.",
    (ProductionConfirmation,),
    "issued_at",
)
ORDER_STATUS_CHANGES = _table(
    "order_status_changes",
    "OrderStatusChanged events sent to ERP: when an order started, held, completed.",
    (OrderStatusChanged,),
    "changed_at",
)
# The KPI calculator's records: a scope (level, line, station; "-" where the scope has none, as
# in its Timestream records), a period, then KpiResult, Reliability and the downtime Pareto.
KPI_SCOPE = (
    Column("level", "string"),
    Column("line", "string"),
    Column("station", "string"),
    Column("period", "string"),
    Column("label", "string"),
    Column("start_ms", "bigint"),
    Column("end_ms", "bigint"),
    Column("computed_at_ms", "bigint"),
)
# The quality-results consumer puts every inspection result it receives on the platform bus as
# these events (their detail is the row, the station from the topic); the DataLake stack's rule
# delivers them to the inspection_results table. Not "mes.quality": the enterprise rules, which
# send that source's events to ERP and PLM, must not see them.
INSPECTION_EVENT_SOURCE = "mes.inspection"
INSPECTION_EVENT_DETAIL_TYPE = "InspectionResult"
# The KPI calculator puts each closed window's rows on the platform bus as these events (their
# detail is the row); a rule of the DataLake stack delivers them to this table's stream.
KPI_EVENT_SOURCE = "mes.kpi"
KPI_EVENT_DETAIL_TYPE = "KpiResult"
# The ERP/PLM router puts each production order it stores for the first time (a new order, or a
# newer revision) on the platform bus as these events (their detail is the row); a rule of the
# DataLake stack delivers them to the production_orders table. A source of its own: the
# enterprise rules (mes.enterprise, mes.quality) send events to ERP and must not echo orders.
PRODUCTION_ORDER_EVENT_SOURCE = "mes.erp"
PRODUCTION_ORDER_EVENT_DETAIL_TYPE = "ProductionOrder"
KPI_RESULTS = _table(
    "kpi_results",
    "KPI results of the KPI calculator per station, line and site, window or shift.",
    (KpiResult, Reliability),
    "start_ms",
    context=KPI_SCOPE,
    derived=(Column("pareto", glue_type(tuple[ParetoEntry, ...])),),
)

TABLES: tuple[LakeTable, ...] = (
    TELEMETRY,
    STATE_CHANGES,
    PART_COUNTS,
    INSPECTION_RESULTS,
    NONCONFORMANCES,
    PRODUCTION_ORDERS,
    PRODUCTION_CONFIRMATIONS,
    ORDER_STATUS_CHANGES,
    KPI_RESULTS,
)
TABLES_BY_NAME = {table.name: table for table in TABLES}


def day_of(epoch_ms: int) -> str:
    """The ``dt`` partition of an epoch-ms instant: its UTC day."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime(DT_STRFTIME)


def reading_text(value: bool | int | float | str) -> str | None:
    """A reading's value as the ``value`` column holds it: a string as is, a boolean as its
    JSON text (``true``/``false``), a number not at all (``value_number`` holds it). With
    ``value_number`` the reading stays whole: text and number is a boolean, text alone a
    string, a number alone a number (an integer as a double: exact up to 2**53)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return json.dumps(value)
    return None


def reading_number(value: bool | int | float | str) -> float | None:
    """A reading's value as the ``value_number`` column holds it: numbers and booleans (1/0)."""
    if isinstance(value, str):
        return None
    return float(value)


def telemetry_rows(batch: TelemetryBatch) -> list[dict[str, Any]]:
    """The telemetry table's rows of one batch: one per reading, each with its own day. (Firehose
    files a whole batch under its first reading's day: a batch that straddles midnight UTC is
    in one partition, so a query on a day's boundary reads one ``dt`` more.)"""
    head = batch.model_dump(mode="json", exclude={"readings"})
    rows = []
    for reading in batch.readings:
        row = {**head, **reading.model_dump(mode="json")}
        row["value"] = reading_text(reading.value)
        row["value_number"] = reading_number(reading.value)
        row[DT] = day_of(reading.ts)
        rows.append(row)
    return rows


def station_row(
    table: LakeTable, message: BaseModel, site: str, line: str, station: str
) -> dict[str, Any]:
    """A row of a station message's table (state, count, inspection) with its topic's ids."""
    row = {SITE: site, "line": line, "station": station, **message.model_dump(mode="json")}
    row[DT] = day_of(row[table.time_column])
    return row


def document_row(table: LakeTable, document: BaseModel) -> dict[str, Any]:
    """A row of an enterprise document's table: its fields (``site`` among them) and ``dt``."""
    row = document.model_dump(mode="json")
    row[DT] = day_of(row[table.time_column])
    return row


def database_name(stack_prefix: str) -> str:
    """The Glue database: Athena wants lower-case letters, digits and underscores."""
    return f"{stack_prefix.lower().replace('-', '_')}_lake"


def workgroup_name(stack_prefix: str) -> str:
    return f"{stack_prefix}-lake"


__all__ = [
    "DT",
    "DT_FORMAT",
    "INSPECTION_EVENT_DETAIL_TYPE",
    "INSPECTION_EVENT_SOURCE",
    "KPI_EVENT_DETAIL_TYPE",
    "KPI_EVENT_SOURCE",
    "PARQUET_COMPRESSION",
    "PARQUET_DICTIONARY",
    "PARTITION_KEYS",
    "PRODUCTION_ORDER_EVENT_DETAIL_TYPE",
    "PRODUCTION_ORDER_EVENT_SOURCE",
    "SITE",
    "TABLES",
    "TABLES_BY_NAME",
    "Column",
    "LakeTable",
    "columns_of",
    "database_name",
    "day_of",
    "document_row",
    "glue_type",
    "reading_number",
    "reading_text",
    "station_row",
    "telemetry_rows",
    "workgroup_name",
]
