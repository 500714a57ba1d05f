"""What a probe found: spoofed stations, repeated dead letters on retry, cut dead letters."""

import json
import re

import pytest
from botocore.exceptions import ClientError

from lambdas.telemetry_writer import handler
from lambdas.telemetry_writer.adapters import TimestreamRecordWriter
from lambdas.telemetry_writer.ingest import ingest
from mes_domain.topics import BASIC_INGEST_PREFIX, MessageKind, StationTopic
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.telemetry_writer.conftest import (
    DATABASE,
    TABLE,
    dead_letters,
    kinesis_event,
    now_ms,
    recovered,
    telemetry_batch,
    written_records,
)

BERLIN = StationTopic("berlin", "body-line-1", "press-01", MessageKind.TELEMETRY)
SUBSTITUTION = re.compile(r"\$\{topic\((\d*)\)\}")


def telemetry_rule_partition_key(iiot_template) -> str:
    """The partition key template of the synthesized telemetry rule's Kinesis action."""
    (rule,) = [
        r["Properties"]["TopicRulePayload"]
        for r in iiot_template.find_resources("AWS::IoT::TopicRule").values()
        if r["Properties"]["RuleName"].endswith(f"_{MessageKind.TELEMETRY.value}")
    ]
    (action,) = [a["Kinesis"] for a in rule["Actions"] if "Kinesis" in a]
    return action["PartitionKey"]


def evaluate(template: str, topic: str) -> str:
    """An IoT substitution template of topic() functions, as the rules engine evaluates it. The
    Basic Ingest prefix ($aws/rules/<rule>) is not available to topic(Decimal) (AWS IoT Developer
    Guide, "Reducing messaging costs with Basic Ingest")."""
    if topic.startswith(BASIC_INGEST_PREFIX):
        topic = topic[len(BASIC_INGEST_PREFIX) :].partition("/")[2]
    levels = topic.split("/")
    key = SUBSTITUTION.sub(lambda m: levels[int(m[1]) - 1] if m[1] else topic, template)
    assert "${" not in key, f"the test cannot evaluate {template!r}: extend evaluate()"
    return key


@pytest.mark.parametrize("published_on", [str(BERLIN), BERLIN.basic_ingest("MesDemo_telemetry")])
def test_a_batch_naming_another_station_than_its_topic_is_dead_lettered(
    iiot_template, aws, published_on
):
    key = evaluate(telemetry_rule_partition_key(iiot_template), published_on)
    spoofed = {
        **telemetry_batch("b-spoof", 4),
        "site": "hamburg",
        "line": "paint-9",
        "station": "robot-1",
    }
    genuine = telemetry_batch("b-genuine", 2)
    event = kinesis_event([spoofed, genuine], {0: key, 1: key})

    response = handler.lambda_handler(event, LambdaContext())

    assert response == {"batchItemFailures": []}  # rejected for good, not retried
    stations = {tuple(d["Value"] for d in r["Dimensions"][:3]) for r in written_records()}
    assert stations == {("berlin", "body-line-1", "press-01")}  # site, line, station
    assert len(written_records()) == 2  # the genuine batch only
    (letter,) = dead_letters(aws["queue_url"])
    assert letter["source_id"] == event["Records"][0]["kinesis"]["sequenceNumber"]
    assert "hamburg/paint-9/robot-1" in letter["reason"] and str(BERLIN) in letter["reason"]
    assert letter["readings"] == 4 and letter["partition_key"] == key
    assert json.loads(letter["data"]) == spoofed  # kept whole for whoever investigates


class FlakyTimestream:
    """Timestream refusing its first ``failures`` calls (after botocore's retries), then the
    moto backend."""

    def __init__(self, failures):
        import boto3

        self.failures = failures
        self.real = boto3.client("timestream-write")

    def write_records(self, **kwargs):
        if self.failures:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "W")
        return self.real.write_records(**kwargs)


def retry_of(event, response):
    """The batch Kinesis delivers again: from the lowest reported sequence number on."""
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    records = event["Records"]
    first = min(i for i, r in enumerate(records) if r["kinesis"]["sequenceNumber"] in failed)
    return {"Records": records[first:]}


def test_a_retried_batch_sends_each_dead_letter_exactly_once(aws, monkeypatch):
    writer = TimestreamRecordWriter(DATABASE, TABLE, timestream=FlakyTimestream(failures=1))
    _, event_writer, sink = handler.ports()
    monkeypatch.setattr(handler, "ports", lambda: (writer, event_writer, sink))
    event = kinesis_event([b"garbage 0", telemetry_batch("b-1", 3), b"garbage 2", b"garbage 3"])

    first = handler.lambda_handler(event, LambdaContext())
    assert first["batchItemFailures"], "the write failed: Kinesis must deliver it again"
    second = handler.lambda_handler(retry_of(event, first), LambdaContext())

    assert second == {"batchItemFailures": []}
    letters = dead_letters(aws["queue_url"])
    sequence = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert sorted(letter["source_id"] for letter in letters) == [
        sequence[0],
        sequence[2],
        sequence[3],
    ]
    ids = [letter["letter_id"] for letter in letters]
    assert sorted(ids) == [f"shardId-000000000000:{sequence[i]}:p0" for i in (0, 2, 3)]
    assert len(written_records()) == 3


def test_a_dead_letter_repeated_by_a_lost_answer_keeps_its_id(aws):
    """The one repeat ordering cannot prevent (SQS stored a message but its answer was lost):
    the retry sends the same letter_id, so a consumer can drop it."""
    writer, event_writer, sink = handler.ports()
    items = [("seq-7", b"garbage", "berlin/body-line-1/press-01", "shardId-000000000001:seq-7")]

    ingest(items, writer, sink, event_writer=event_writer)
    ingest(items, writer, sink, event_writer=event_writer)

    first, repeat = dead_letters(aws["queue_url"])
    assert first["letter_id"] == repeat["letter_id"] == "shardId-000000000001:seq-7:p0"


def test_ten_thousand_readings_are_all_recoverable_from_the_dead_letter_and_s3(aws):
    ts = now_ms() - 60_000
    payload = {
        **telemetry_batch("b-wide"),
        "readings": [
            {"ts": ts, "tag": f"tag_{i}", "value": float(i), "quality": "GOOD"}
            for i in range(10_000)
        ],
    }
    writer, event_writer, sink = handler.ports()
    items = [("seq-1", json.dumps(payload).encode(), "berlin/body-line-1/press-01")]

    outcome = ingest(items, writer, sink, event_writer=event_writer)

    (letter,) = dead_letters(aws["queue_url"])
    assert letter["payload"]["bucket"] == aws["bucket"]  # too large for a message: a pointer
    assert letter["readings"] == 10_000 and "131072 bytes" in letter["reason"]
    recovered_readings = json.loads(recovered(letter)["data"])["readings"]
    assert recovered_readings == payload["readings"]
    assert outcome.readings_dead_lettered == len(recovered_readings) == 10_000
    assert outcome.readings_in == 10_000 and outcome.readings_written == 0


def test_records_timestream_rejects_are_dead_lettered_within_the_quota_and_all_recoverable(
    aws,
):
    from lambdas.common.timestream import MAX_MEASURES_PER_RECORD
    from tests.lambdas.telemetry_writer.test_handler import RejectingTimestream

    ts = now_ms() - 60_000
    payload = {
        **telemetry_batch("b-wide"),
        "readings": [
            {"ts": ts, "tag": f"t{i}", "value": i, "quality": "GOOD"} for i in range(1_000)
        ],
    }
    writer = TimestreamRecordWriter(DATABASE, TABLE, timestream=RejectingTimestream(range(4)))
    _, event_writer, sink = handler.ports()
    items = [("seq-1", json.dumps(payload).encode(), "berlin/body-line-1/press-01")]

    outcome = ingest(items, writer, sink, event_writer=event_writer)

    letters = [recovered(letter) for letter in dead_letters(aws["queue_url"])]
    assert len(letters) == 4  # ceil(1000 / 256) records, one letter each
    measures = [m for letter in letters for m in letter["record"]["MeasureValues"]]
    assert all(len(x["record"]["MeasureValues"]) <= MAX_MEASURES_PER_RECORD for x in letters)
    assert sorted(int(m["Value"]) for m in measures) == list(range(1_000))
    assert outcome.readings_dead_lettered == sum(x["readings"] for x in letters) == 1_000


def test_when_the_queue_takes_only_some_letters_kinesis_resumes_at_the_first_unsent_one():
    from tests.lambdas.telemetry_writer.test_records import RecordingWriter

    class PartialSink:
        def __init__(self, accepts):
            self.accepts, self.letters = accepts, []

        def send(self, letters):
            self.letters += letters[: self.accepts]
            return min(self.accepts, len(letters))

    sink = PartialSink(accepts=1)
    items = [(f"seq-{i}", b"garbage", "berlin/body-line-1/press-01") for i in range(3)]
    items.insert(1, ("seq-ok", json.dumps(telemetry_batch("b-1", 2)).encode(), items[0][2]))

    outcome = ingest(items, RecordingWriter(), sink)

    assert [letter.source_id for letter in sink.letters] == ["seq-0"]
    assert outcome.retry_from == "seq-1" and outcome.failed_sources == {"seq-1", "seq-2"}
    assert (outcome.readings_written, outcome.readings_dead_lettered) == (2, 0)
