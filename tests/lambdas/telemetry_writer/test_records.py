"""Pure record building: grouping, types, call counts, and a property test over random input."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas.telemetry_writer.ingest import ingest
from lambdas.telemetry_writer.records import (
    MAX_RECORDS_PER_WRITE,
    SourcedRecord,
    Table,
    batch_to_records,
    write_groups,
)
from mes_domain.contracts import TelemetryBatch
from tests.lambdas.telemetry_writer.conftest import now_ms, telemetry_batch

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
payload = st.one_of(
    st.fixed_dictionaries(
        {
            "v": st.sampled_from([1, 1, 1, 2, "1"]),
            "site": st.sampled_from(["berlin", "a/b"]),
            "line": st.just("l1"),
            "station": st.sampled_from(["s1", "s+"]),
            "batch_id": st.text(min_size=1, max_size=8),
            "readings": st.lists(reading, max_size=30),
        }
    ).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=64),
    st.just(b"[]"),
    st.just(b'{"readings": "nope"}'),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(payload, min_size=1, max_size=5))
def test_random_payloads_never_raise_and_never_lose_a_reading(payloads):
    writer, sink = RecordingWriter(), RecordingSink()
    items = [(f"seq-{i}", p) for i, p in enumerate(payloads)]

    outcome = ingest(items, writer, sink, now_ms=NOW)

    assert outcome.failed_sources == set()
    assert outcome.readings_in == outcome.readings_written + outcome.readings_dead_lettered
    written = sum(len(r["MeasureValues"]) for call in writer.calls for r in call)
    assert written <= outcome.readings_written  # exact duplicates are held, not re-sent
    dead_sources = {letter.source_id for letter in sink.letters}
    for source, raw in items:
        try:
            TelemetryBatch.model_validate_json(raw, context={"now_ms": NOW})
        except ValueError:
            assert source in dead_sources  # every invalid item is kept, with its reason
