"""The lake flattener: telemetry batches become one row per reading, state and count one row,
other kinds are dropped, broken records fail with their bytes kept."""

from __future__ import annotations

import base64
import json
import time

import pytest

from lambdas.lake_flattener import handler
from lambdas.lake_flattener.contract import STREAM_TABLES, EnvVar
from lambdas.lake_flattener.rows import DROPPED, FAILED, OK, SourceRecord, transform
from mes_domain import lake

NOW = int(time.time() * 1000) - 60_000
DAY = lake.day_of(NOW)
STATION = "plant-a/line-1/press-1"


def batch(readings: int = 3, **overrides) -> bytes:
    document = {
        "v": 1,
        "site": "plant-a",
        "line": "line-1",
        "station": "press-1",
        "batch_id": "b-1",
        "readings": [
            {
                "ts": NOW + i,
                "tag": f"tag_{i % 7}",
                "value": 20.0 + i,
                "unit": "C",
                "quality": "GOOD",
            }
            for i in range(readings)
        ],
    }
    return json.dumps({**document, **overrides}).encode()


STATE = json.dumps({"v": 1, "ts": NOW, "state": "UNPLANNED_STOP", "reason_code": "JAM"}).encode()
COUNT = json.dumps({"v": 1, "ts": NOW, "good": 5, "bad": 1}).encode()


def stream_records() -> list[SourceRecord]:
    return [
        SourceRecord("1", batch(), STATION),
        SourceRecord("2", STATE, "mes/v1/plant-a/line-1/press-1/state"),
        SourceRecord("3", COUNT, "mes/v1/plant-a/line-1/press-1/count"),
    ]


def rows(result: dict) -> list[dict]:
    return [json.loads(line) for line in base64.b64decode(result["data"]).splitlines()]


def test_tables_served_are_the_lakes_and_the_contracts_kinds():
    assert set(STREAM_TABLES) <= set(lake.TABLES_BY_NAME)


def test_telemetry_stream_keeps_batches_flattened_and_drops_the_rest():
    outcome = transform(lake.TELEMETRY, stream_records())
    assert [r["result"] for r in outcome.results] == [OK, DROPPED, DROPPED]
    assert [r["recordId"] for r in outcome.results] == ["1", "2", "3"]
    first = outcome.results[0]
    assert first["metadata"] == {"partitionKeys": {"site": "plant-a", "dt": DAY}}
    flattened = rows(first)
    assert [(r["tag"], r["value"], r["value_number"]) for r in flattened] == [
        ("tag_0", None, 20.0),
        ("tag_1", None, 21.0),
        ("tag_2", None, 22.0),
    ]
    columns = {c.name for c in lake.TELEMETRY.columns}
    assert all(columns <= set(r) for r in flattened)


@pytest.mark.parametrize(
    ("table", "kept", "expected"),
    [
        (lake.STATE_CHANGES, "2", {"state": "UNPLANNED_STOP", "reason_code": "JAM"}),
        (lake.PART_COUNTS, "3", {"good": 5, "bad": 1}),
    ],
)
def test_state_and_count_streams_keep_theirs_with_the_topics_station(table, kept, expected):
    outcome = transform(table, stream_records())
    by_id = {r["recordId"]: r for r in outcome.results}
    assert {i: r["result"] for i, r in by_id.items()} == {
        i: OK if i == kept else DROPPED for i in ("1", "2", "3")
    }
    (row,) = rows(by_id[kept])
    assert {c.name for c in table.columns} <= set(row)
    assert (row["site"], row["line"], row["station"], row["dt"]) == (
        "plant-a",
        "line-1",
        "press-1",
        DAY,
    )
    assert expected.items() <= row.items()


@pytest.mark.parametrize(
    ("table", "data", "key"),
    [
        (lake.TELEMETRY, b"not json", STATION),
        (lake.TELEMETRY, batch(readings=0), STATION),  # a batch needs a reading
        (lake.TELEMETRY, batch(station="press-2"), STATION),  # another station than its key
        (lake.TELEMETRY, batch(), "plant-a/line+1/press-1"),  # not an id
        (lake.TELEMETRY, batch(), "mes/v1/a/b/c/d/e"),  # neither a station nor a topic
        (
            lake.STATE_CHANGES,
            json.dumps({"v": 2, "ts": NOW, "state": "RUNNING"}).encode(),  # unknown version
            "mes/v1/a/b/c/state",
        ),
    ],
    # Fixed ids: the data holds the current time, and pytest-xdist's workers must collect
    # the same test names.
    ids=[
        "not-json",
        "no-reading",
        "other-station",
        "key-not-an-id",
        "key-neither-station-nor-topic",
        "unknown-version",
    ],
)
def test_a_broken_record_fails_with_its_bytes_kept(table, data, key):
    outcome = transform(table, [SourceRecord("9", data, key)])
    (result,) = outcome.results
    assert result["result"] == FAILED and base64.b64decode(result["data"]) == data
    (failure,) = outcome.failures
    assert failure["recordId"] == "9" and failure["detail"]


def test_the_handler_answers_firehose_in_its_own_shape(monkeypatch):
    monkeypatch.setenv(EnvVar.LAKE_TABLE, "state_changes")
    handler.table.cache_clear()
    event = {
        "invocationId": "i",
        "deliveryStreamArn": "arn:aws:firehose:eu-central-1:123456789012:deliverystream/s",
        "records": [
            {
                "recordId": record.record_id,
                "approximateArrivalTimestamp": NOW,
                "data": base64.b64encode(record.data).decode(),
                "kinesisRecordMetadata": {"partitionKey": record.partition_key, "shardId": "s"},
            }
            for record in stream_records()
        ],
    }
    from tests.lambdas.conftest import LambdaContext

    answer = handler.lambda_handler(event, LambdaContext())
    assert [r["result"] for r in answer["records"]] == [DROPPED, OK, DROPPED]
    handler.table.cache_clear()


def test_rows_grow_a_batch_by_a_bounded_factor():
    """Firehose hands the processor at most 1 MB (its BufferSizeInMBs in the stack) and takes back
    at most Lambda's 6 MB response: the flattened rows must stay well under 6x the batch."""
    data = batch(readings=500)
    (result,) = transform(lake.TELEMETRY, [SourceRecord("1", data, STATION)]).results
    growth = len(base64.b64decode(result["data"])) / len(data)
    assert 1 < growth < 4, growth
