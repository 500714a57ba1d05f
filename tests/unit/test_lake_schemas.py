"""The lake's tables against the contracts they come from (mes_domain.lake)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from pydantic import BaseModel

from mes_domain import lake
from mes_domain.contracts import (
    InspectionResult,
    PartCount,
    Reading,
    ReadingQuality,
    StateChange,
    TelemetryBatch,
)
from mes_domain.enterprise import (
    NonConformanceReport,
    OrderStatusChanged,
    ProductionConfirmation,
    ProductionOrder,
)
from mes_domain.kpi import KpiResult, Reliability

# The expected types, written out by hand: a change of a contract's field type must show here.
EXPECTED_FIELD_TYPES = {
    "telemetry": {
        "v": "bigint",
        "line": "string",
        "station": "string",
        "batch_id": "string",
        "ts": "bigint",
        "tag": "string",
        "value": "string",
        "unit": "string",
        "quality": "string",
    },
    "inspection_results": {
        "v": "bigint",
        "ts": "bigint",
        "part_id": "string",
        "verdict": "string",
        "score": "double",
        "threshold": "double",
        "model_id": "string",
        "model_version": "string",
        "latency_ms": "double",
        "image_key": "string",
        "reason": "string",
    },
    "production_confirmations": {
        "operation_no": "bigint",
        "good_quantity": "double",
        "materials_consumed": "array<struct<material_id:string,quantity:double,uom:string>>",
        "started_at": "bigint",
        "final": "boolean",
    },
    "nonconformances": {
        "inspection": "struct<v:bigint,ts:bigint,part_id:string,verdict:string,score:double,"
        "threshold:double,model_id:string,model_version:string,latency_ms:double,"
        "image_key:string,reason:string>",
        "source": "string",
        "detected_at": "bigint",
    },
    "kpi_results": {
        "oee": "double",
        "produced_quantity": "bigint",
        "downtime_by_state_s": "map<string,double>",
        "flags": "array<string>",
        "failures": "bigint",
        "pareto": "array<struct<cause:string,seconds:double,occurrences:bigint>>",
    },
}

SOURCES = {
    "telemetry": (TelemetryBatch, Reading),
    "state_changes": (StateChange,),
    "part_counts": (PartCount,),
    "inspection_results": (InspectionResult,),
    "nonconformances": (NonConformanceReport,),
    "production_orders": (ProductionOrder,),
    "production_confirmations": (ProductionConfirmation,),
    "order_status_changes": (OrderStatusChanged,),
    "kpi_results": (KpiResult, Reliability),
}


def field_names(model: type) -> list[str]:
    if issubclass(model, BaseModel):
        return list(model.model_fields)
    return [f.name for f in dataclasses.fields(model)]


@pytest.mark.parametrize("table", lake.TABLES, ids=lambda t: t.name)
def test_columns_are_the_models_fields_plus_declared_context(table: lake.LakeTable) -> None:
    assert table.sources == SOURCES[table.name]
    fields = [
        name
        for model in table.sources
        for name in field_names(model)
        if name not in {"site", "readings"}
    ]
    names = [column.name for column in table.columns]
    context = [column.name for column in table.context]
    assert sorted(names) == sorted(fields + context)
    assert len(set(names)) == len(names), "a column is declared twice"


@pytest.mark.parametrize("table", lake.TABLES, ids=lambda t: t.name)
def test_partitions_are_site_and_day_and_never_a_data_column(table: lake.LakeTable) -> None:
    assert [(c.name, c.type) for c in table.partition_keys] == [
        ("site", "string"),
        ("dt", "string"),
    ]
    assert not {c.name for c in table.partition_keys} & {c.name for c in table.columns}
    assert table.column(table.time_column).type == "bigint"


@pytest.mark.parametrize("name", sorted(EXPECTED_FIELD_TYPES))
def test_column_types_follow_the_field_types(name: str) -> None:
    table = lake.TABLES_BY_NAME[name]
    for column, expected in EXPECTED_FIELD_TYPES[name].items():
        assert table.column(column).type == expected, column


def test_every_source_field_maps_to_the_type_of_its_annotation() -> None:
    """The mapping itself, field by field, so a nested model change reaches its struct."""
    for table in lake.TABLES:
        for model in table.sources:
            for column in lake.columns_of(model, exclude={"site", "readings"}):
                assert table.column(column.name).type == column.type


def test_unmappable_annotations_are_refused() -> None:
    with pytest.raises(lake.UnmappedType):
        lake.glue_type(object)
    with pytest.raises(lake.UnmappedType):
        lake.glue_type(tuple[int, str])


def test_projection_names_the_sites_and_days_and_where_they_are() -> None:
    params = lake.TELEMETRY.projection("curated-bucket", ["plant-a", "plant-b"])
    assert params["projection.enabled"] == "true"
    assert params["projection.site.type"] == "enum"
    assert params["projection.site.values"] == "plant-a,plant-b"
    assert params["projection.dt.type"] == "date"
    assert params["projection.dt.format"] == "yyyy-MM-dd"
    assert params["projection.dt.range"] == "2024-01-01,NOW+1DAYS"
    assert (
        params["storage.location.template"]
        == "s3://curated-bucket/telemetry/site=${site}/dt=${dt}/"
    )
    with pytest.raises(ValueError):
        lake.TELEMETRY.projection("curated-bucket", [])


NOW = 1_764_500_000_000  # 2025-11-30T10:53:20Z


def test_a_batch_becomes_one_row_per_reading_with_its_station_and_day() -> None:
    batch = TelemetryBatch(
        v=1,
        site="plant-a",
        line="line-1",
        station="press-1",
        batch_id="b-1",
        readings=[
            Reading(ts=NOW, tag="temp", value=21.5, unit="C", quality=ReadingQuality.GOOD),
            Reading(ts=NOW + 1, tag="running", value=True, quality=ReadingQuality.GOOD),
            Reading(ts=NOW + 2, tag="recipe", value="R-7", quality=ReadingQuality.UNCERTAIN),
        ],
    )
    rows = lake.telemetry_rows(batch)
    assert [(r["tag"], r["value"], r["value_number"]) for r in rows] == [
        ("temp", None, 21.5),  # a number is not written twice
        ("running", "true", 1.0),
        ("recipe", "R-7", None),
    ]
    columns = {c.name for c in lake.TELEMETRY.columns}
    for row in rows:
        assert set(row) == columns | {"site", "dt"}
        assert (row["site"], row["station"], row["dt"]) == ("plant-a", "press-1", "2025-11-30")
    json.dumps(rows)  # Firehose's records are JSON


def reading_of(text: str | None, number: float | None) -> bool | float | str:
    """A reading's value back from its two columns, by the rule of lake.reading_text."""
    if text is None:
        assert number is not None, "a reading has a value"
        return number
    return json.loads(text) if number is not None else text


@pytest.mark.parametrize("value", [21.5, -3, 0, 2**53, True, False, "R-7", "", "true", "1.5"])
def test_value_and_value_number_together_keep_every_reading_whole(value) -> None:
    text, number = lake.reading_text(value), lake.reading_number(value)
    back = reading_of(text, number)
    assert back == value and type(back) is (float if type(value) is int else type(value))
    # Each reading's value is stored once but for a boolean (its text marks it as one).
    assert (text is None) == (type(value) in (int, float))
    assert (number is None) == isinstance(value, str)


def test_station_and_document_rows_carry_every_column() -> None:
    state = StateChange(v=1, ts=NOW, state="RUNNING")
    row = lake.station_row(lake.STATE_CHANGES, state, "plant-a", "line-1", "press-1")
    assert set(row) == {c.name for c in lake.STATE_CHANGES.columns} | {"site", "dt"}
    assert row["dt"] == "2025-11-30"
    order = ProductionOrder(
        v=1,
        source_system="ERP",
        document_id="d-1",
        revision=0,
        issued_at=NOW,
        order_id="o-1",
        material_id="m-1",
        quantity=10,
        uom="EA",
        site="plant-a",
        planned_start=NOW,
        planned_end=NOW + 3_600_000,
    )
    row = lake.document_row(lake.PRODUCTION_ORDERS, order)
    assert set(row) == {c.name for c in lake.PRODUCTION_ORDERS.columns} | {"site", "dt"}


def test_day_is_the_utc_day() -> None:
    assert lake.day_of(1_764_547_199_999) == "2025-11-30"  # 23:59:59.999Z
    assert lake.day_of(1_764_547_200_000) == "2025-12-01"
