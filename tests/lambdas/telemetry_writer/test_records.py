"""Pure record building: grouping, types, call counts, and a property test over random input."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas.common.timestream import (
    MAX_MEASURE_VALUE_BYTES,
    MAX_MEASURES_PER_RECORD,
    measure_value_bytes,
)
from lambdas.telemetry_writer.ingest import ingest, telemetry_topic
from lambdas.telemetry_writer.records import (
    MAX_RECORDS_PER_WRITE,
    SourcedRecord,
    Table,
    batch_to_records,
    write_groups,
)
from mes_domain.contracts import TelemetryBatch, parse_station_message
from tests.lambdas.telemetry_writer.conftest import (
    STATION_KEY,
    now_ms,
    station_key,
    telemetry_batch,
)

NOW = now_ms()


def test_readings_sharing_a_timestamp_become_one_typed_multi_measure_record():
    batch = TelemetryBatch.model_validate(
        {
            **telemetry_batch(),
            "readings": [
                {"ts": NOW, "tag": "force", "value": 1.5, "quality": "GOOD"},
                {"ts": NOW, "tag": "count", "value": 7, "quality": "GOOD"},
                {"ts": NOW, "tag": "clamped", "value": True, "quality": "GOOD"},
                {"ts": NOW, "tag": "program", "value": "P-1", "quality": "GOOD"},
                {"ts": NOW, "tag": "force", "value": 1.4, "quality": "BAD"},
            ],
        }
    )
    records, dead = batch_to_records(batch, "seq")
    assert dead == [] and len(records) == 2
    good = records[0].record
    assert [(m["Name"], m["Type"], m["Value"]) for m in good["MeasureValues"]] == [
        ("force", "DOUBLE", "1.5"),
        ("count", "BIGINT", "7"),
        ("clamped", "BOOLEAN", "true"),
        ("program", "VARCHAR", "P-1"),
    ]
    assert good["Time"] == str(NOW) and good["TimeUnit"] == "MILLISECONDS"
    assert {"Name": "quality", "Value": "BAD"} in records[1].record["Dimensions"]


def test_write_groups_make_ceil_n_over_100_calls_per_table():
    for n, m in ((0, 0), (1, 0), (99, 1), (100, 100), (101, 250), (1000, 7)):
        records = [SourcedRecord(str(i), {}, 1) for i in range(n)]
        records += [SourcedRecord(str(i), {}, 1, Table.EVENTS) for i in range(m)]
        groups = list(write_groups(records[::-1]))  # interleaving does not matter
        assert len(groups) == math.ceil(n / MAX_RECORDS_PER_WRITE) + math.ceil(
            m / MAX_RECORDS_PER_WRITE
        )
        assert all(len(g) <= MAX_RECORDS_PER_WRITE for g in groups)
        assert all(len({r.table for r in g}) == 1 for g in groups)
        assert sum(len(g) for g in groups) == n + m


class RecordingWriter:
    def __init__(self):
        self.calls = []

    def write(self, records):
        assert len(records) <= MAX_RECORDS_PER_WRITE
        self.calls.append(records)
        return []


class RecordingSink:
    def __init__(self):
        self.letters = []

    def send(self, letters):
        self.letters.extend(letters)
        return len(letters)


reading = st.fixed_dictionaries(
    {
        "ts": st.one_of(st.integers(NOW - 10**9, NOW + 10**6), st.integers(), st.text(max_size=3)),
        "tag": st.one_of(st.sampled_from(["a", "b", "c"]), st.text(max_size=4)),
        "value": st.one_of(
            st.floats(), st.integers(), st.booleans(), st.text(max_size=5), st.none()
        ),
        "quality": st.sampled_from(["GOOD", "BAD", "UNCERTAIN", "MEH"]),
    }
)
batch = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1, 1, 2, "1"]),
        "site": st.sampled_from(["berlin", "a/b"]),
        "line": st.just("l1"),
        "station": st.sampled_from(["s1", "s2", "s+"]),
        "batch_id": st.text(min_size=1, max_size=8),
        "readings": st.lists(reading, max_size=30),
    }
)
# (payload, partition key): the key of the batch's own station, of another one, or no station.
item = st.one_of(
    batch.map(lambda d: (json.dumps(d).encode(), station_key(d))),
    st.tuples(
        batch.map(lambda d: json.dumps(d).encode()),
        st.sampled_from([STATION_KEY, "berlin/l1/s1", "", "berlin/l1"]),
    ),
    st.tuples(st.binary(max_size=64), st.just(STATION_KEY)),
    st.just((b"[]", STATION_KEY)),
    st.just((b'{"readings": "nope"}', STATION_KEY)),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(item, min_size=1, max_size=5))
def test_random_payloads_never_raise_and_never_lose_a_reading(items):
    writer, sink = RecordingWriter(), RecordingSink()
    items = [(f"seq-{i}", data, key) for i, (data, key) in enumerate(items)]

    outcome = ingest(items, writer, sink, now_ms=NOW)

    assert outcome.failed_sources == set() and outcome.readings_retried == 0
    assert outcome.readings_in == outcome.readings_written + outcome.readings_dead_lettered
    written = sum(len(r["MeasureValues"]) for call in writer.calls for r in call)
    assert written <= outcome.readings_written  # exact duplicates are held, not re-sent
    dead_sources = {letter.source_id for letter in sink.letters}
    keys = {source: key for source, _, key in items}
    for call in writer.calls:  # only under the station the partition key names
        for record in call:
            dims = {d["Name"]: d["Value"] for d in record["Dimensions"]}
            assert f"{dims['site']}/{dims['line']}/{dims['station']}" in keys.values()
    for source, raw, key in items:
        topic = telemetry_topic(key)
        try:
            if topic is None:
                raise ValueError("no station")
            parse_station_message(topic, raw, now_ms=NOW)
        except ValueError:
            assert source in dead_sources  # every invalid item is kept, with its reason


def test_the_measures_per_record_quota_is_timestreams():
    # Timestream for LiveAnalytics Developer Guide, "Quotas": 256 measures and 2048 bytes of
    # measure values per multi-measure record; values sized as in "Metering and pricing".
    assert (MAX_MEASURES_PER_RECORD, MAX_MEASURE_VALUE_BYTES) == (256, 2048)
    assert [measure_value_bytes(t, v) for t, v in [("BOOLEAN", "true"), ("DOUBLE", "1.25")]] == [
        1,
        8,
    ]
    assert measure_value_bytes("VARCHAR", "\u00e9t\u00e9") == 5  # UTF-8 bytes, not characters


def test_ten_thousand_tags_at_one_timestamp_split_into_records_within_the_quotas():
    batch = TelemetryBatch.model_validate(
        {
            **telemetry_batch(),
            "readings": [
                {"ts": NOW, "tag": f"t{i}", "value": float(i), "quality": "GOOD"}
                for i in range(10_000)
            ],
        }
    )

    records, dead = batch_to_records(batch, "seq")

    assert dead == []
    assert len(records) == math.ceil(10_000 / MAX_MEASURES_PER_RECORD)
    for sourced in records:
        measures = sourced.record["MeasureValues"]
        assert len(measures) <= MAX_MEASURES_PER_RECORD
        assert sum(measure_value_bytes(m["Type"], m["Value"]) for m in measures) <= 2048
        assert sourced.readings == len(measures)
    names = [r.record["MeasureName"] for r in records]
    assert names[:3] == ["telemetry", "telemetry_2", "telemetry_3"]
    assert len(set(names)) == len(names)  # same dimensions and time: the name keeps them apart
    tags = [m["Name"] for r in records for m in r.record["MeasureValues"]]
    assert tags == [f"t{i}" for i in range(10_000)]


def test_long_text_values_split_records_by_the_value_size_quota():
    text = "x" * 700
    batch = TelemetryBatch.model_validate(
        {
            **telemetry_batch(),
            "readings": [
                {"ts": NOW, "tag": f"t{i}", "value": text, "quality": "GOOD"} for i in range(5)
            ]
            + [{"ts": NOW, "tag": "t1", "value": text, "quality": "GOOD"}],  # an exact duplicate
        }
    )

    records, _ = batch_to_records(batch, "seq")

    assert [len(r.record["MeasureValues"]) for r in records] == [2, 2, 1]  # 1,400 bytes each
    assert [r.readings for r in records] == [3, 2, 1]  # the duplicate is counted, not re-sent
