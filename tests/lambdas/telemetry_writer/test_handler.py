"""telemetry_writer under moto: Given stream batches, When handled, Then nothing is lost."""

import json

from botocore.exceptions import ClientError

from lambdas.telemetry_writer import handler
from lambdas.telemetry_writer.adapters import TimestreamRecordWriter
from lambdas.telemetry_writer.ingest import ingest
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.telemetry_writer.conftest import (
    BUCKET,
    DATABASE,
    EVENTS_TABLE,
    STATION_KEY,
    TABLE,
    dead_letters,
    kinesis_event,
    now_ms,
    recovered,
    telemetry_batch,
    written_records,
)


def test_valid_batches_land_as_multi_measure_records(aws):
    event = kinesis_event([telemetry_batch("b-1", 3), telemetry_batch("b-2", 2, station="cnc-01")])

    response = handler.lambda_handler(event, LambdaContext())

    assert response == {"batchItemFailures": []}
    records = written_records()
    assert len(records) == 5  # distinct timestamps: one record each
    assert {r["MeasureValueType"] for r in records} == {"MULTI"}
    stations = {d["Value"] for r in records for d in r["Dimensions"] if d["Name"] == "station"}
    assert stations == {"press-01", "cnc-01"}
    assert dead_letters(aws["queue_url"]) == []


def test_mixed_batch_dead_letters_exactly_the_malformed_items(aws):
    bad_version = {**telemetry_batch("b-2"), "v": 2}
    event = kinesis_event(
        [telemetry_batch("b-1"), b"{not json", bad_version, telemetry_batch("b-4")]
    )

    response = handler.lambda_handler(event, LambdaContext())

    assert response == {"batchItemFailures": []}  # malformed input is not retried, it is kept
    letters = dead_letters(aws["queue_url"])
    sequence = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert sorted(letter["source_id"] for letter in letters) == [sequence[1], sequence[2]]
    reasons = {letter["source_id"]: letter["reason"] for letter in letters}
    assert "Invalid JSON" in reasons[sequence[1]]
    assert "unsupported payload version 2" in reasons[sequence[2]]
    assert all("data" in letter for letter in letters)  # the original payload travels along
    assert len(written_records()) == 6


class RejectingTimestream:
    """Timestream refusing some records of a call, as RejectedRecordsException reports them."""

    def __init__(self, reject_indices):
        self.reject_indices = reject_indices
        self.calls = []

    def write_records(self, **kwargs):
        self.calls.append(kwargs["Records"])
        raise ClientError(
            {
                "Error": {"Code": "RejectedRecordsException", "Message": "rejected"},
                "RejectedRecords": [
                    {"RecordIndex": i, "Reason": "Measure value type mismatch"}
                    for i in self.reject_indices
                ],
            },
            "WriteRecords",
        )


def test_rejected_records_and_only_those_reach_the_dlq(aws):
    timestream = RejectingTimestream(reject_indices=[1])
    writer = TimestreamRecordWriter(DATABASE, TABLE, timestream=timestream)
    _, _, sink = handler.ports()
    payload = json.dumps(telemetry_batch("b-1", 3)).encode()

    outcome = ingest([("seq-1", payload, STATION_KEY)], writer, sink)

    (letter,) = dead_letters(aws["queue_url"])
    assert letter["reason"] == "Timestream rejected the record: Measure value type mismatch"
    assert letter["record"] == timestream.calls[0][1]
    assert (outcome.readings_written, outcome.readings_dead_lettered) == (2, 1)
    assert outcome.failed_sources == set()


class UnavailableTimestream:
    def write_records(self, **kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "W")


def test_items_whose_write_failed_are_reported_for_retry_with_nothing_after_them(aws, monkeypatch):
    writer = TimestreamRecordWriter(DATABASE, TABLE, timestream=UnavailableTimestream())
    _, event_writer, sink = handler.ports()
    monkeypatch.setattr(handler, "ports", lambda: (writer, event_writer, sink))
    event = kinesis_event([b"garbage", telemetry_batch("b-1"), b"more garbage"])

    response = handler.lambda_handler(event, LambdaContext())

    second = event["Records"][1]["kinesis"]["sequenceNumber"]
    assert response == {"batchItemFailures": [{"itemIdentifier": second}]}
    # Kinesis delivers the second item and all after it again: only the first is settled now.
    (letter,) = dead_letters(aws["queue_url"])
    assert letter["source_id"] == event["Records"][0]["kinesis"]["sequenceNumber"]


def test_readings_in_equal_readings_written_plus_dead_lettered(aws):
    conflicting = telemetry_batch("b-3", 2)
    conflicting["readings"][1] = {**conflicting["readings"][0], "value": 99.0}
    duplicate = telemetry_batch("b-4", 2)
    duplicate["readings"][1] = duplicate["readings"][0]
    payloads = [
        telemetry_batch("b-1", 250),
        {**telemetry_batch("b-2", 7), "v": 9},
        conflicting,
        duplicate,
    ]
    writer, _, sink = handler.ports()

    outcome = ingest(
        [(str(i), json.dumps(p).encode(), STATION_KEY) for i, p in enumerate(payloads)],
        writer,
        sink,
    )

    assert outcome.readings_in == 250 + 7 + 2 + 2
    assert outcome.readings_in == outcome.readings_written + outcome.readings_dead_lettered
    assert outcome.readings_dead_lettered == 7 + 1
    assert outcome.write_calls == 3  # 250 + 1 + 1 records -> ceil(252 / 100)


def test_large_dead_letters_are_sent_within_the_sqs_request_limit_and_never_cut(aws):
    from lambdas.telemetry_writer.adapters import SQS_MAX_BYTES, DeadLetterStore, SqsDeadLetterSink
    from lambdas.telemetry_writer.records import DeadLetter

    class RecordingSqs:
        def __init__(self):
            self.requests = []

        def send_message_batch(self, QueueUrl, Entries):
            self.requests.append(Entries)
            return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    sqs = RecordingSqs()
    letters = [
        DeadLetter(f"seq-{i}", "malformed", {"data": "x" * 100_000}, 1, f"shard:seq-{i}:p0")
        for i in range(10)
    ]
    huge = "y" * 400_000
    letters.append(DeadLetter("seq-huge", "malformed", {"data": huge}, 7, "shard:seq-huge:p0"))

    delivered = SqsDeadLetterSink(aws["queue_url"], DeadLetterStore(BUCKET), sqs=sqs).send(letters)

    assert delivered == len(letters)
    sent = [json.loads(e["MessageBody"]) for request in sqs.requests for e in request]
    assert [m["source_id"] for m in sent] == [f"seq-{i}" for i in range(10)] + ["seq-huge"]
    for request in sqs.requests:
        assert len(request) <= 10
        assert sum(len(e["MessageBody"].encode()) for e in request) <= SQS_MAX_BYTES
    pointer = sent[-1]
    assert pointer["reason"] == "malformed" and pointer["readings"] == 7
    assert pointer["payload"]["bucket"] == BUCKET
    assert pointer["payload"]["key"] == "dead-letters/shard/seq-huge/p0.json"
    assert recovered(pointer)["data"] == huge  # whole, not truncated
    assert recovered(pointer)["letter_id"] == pointer["letter_id"] == "shard:seq-huge:p0"


STATE_TOPIC = "mes/v1/berlin/body-line-1/press-01/state"
COUNT_TOPIC = "$aws/rules/MesDemo_count/mes/v1/berlin/body-line-1/press-01/count"


def test_states_and_counts_keyed_by_their_topic_land_in_the_events_table(aws):
    ts = now_ms() - 5_000
    state = {"v": 1, "ts": ts, "state": "UNPLANNED_STOP", "reason_code": "JAM"}
    count = {"v": 1, "ts": ts + 1, "good": 7, "bad": 1}
    event = kinesis_event(
        [telemetry_batch("b-1", 2), state, count], {1: STATE_TOPIC, 2: COUNT_TOPIC}
    )

    response = handler.lambda_handler(event, LambdaContext())

    assert response == {"batchItemFailures": []}
    assert len(written_records(TABLE)) == 2
    events = {r["MeasureName"]: r for r in written_records(EVENTS_TABLE)}
    assert set(events) == {"state", "count"}
    assert events["state"]["Time"] == str(ts)
    assert {d["Name"]: d["Value"] for d in events["state"]["Dimensions"]} == {
        "site": "berlin",
        "line": "body-line-1",
        "station": "press-01",
    }
    values = {m["Name"]: (m["Type"], m["Value"]) for m in events["state"]["MeasureValues"]}
    assert values == {"state": ("VARCHAR", "UNPLANNED_STOP"), "reason_code": ("VARCHAR", "JAM")}
    values = {m["Name"]: (m["Type"], m["Value"]) for m in events["count"]["MeasureValues"]}
    assert values == {"good": ("BIGINT", "7"), "bad": ("BIGINT", "1")}
    assert dead_letters(aws["queue_url"]) == []


def test_a_malformed_state_is_dead_lettered_with_its_topic_and_counted(aws):
    bad_state = {"v": 1, "ts": now_ms(), "state": "EXPLODED"}
    writer, event_writer, sink = handler.ports()
    items = [("s-1", json.dumps(bad_state).encode(), STATE_TOPIC)]

    outcome = ingest(items, writer, sink, event_writer=event_writer)

    (letter,) = dead_letters(aws["queue_url"])
    assert letter["topic"] == STATE_TOPIC and "state: Input should be" in letter["reason"]
    assert outcome.readings_in == 1 == outcome.readings_dead_lettered
    assert written_records(EVENTS_TABLE) == []
