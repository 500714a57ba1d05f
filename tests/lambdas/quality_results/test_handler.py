"""quality_results under moto: Given inspection results on the queue, When handled, Then each
part counts once in its window and in the KPI engine's and SiteWise's counts, each DEFECT becomes
one non-conformance for PLM, and nothing is lost or doubled when a send fails or a message is
redelivered. moto has no SiteWise: a fake checks each request against botocore's model."""

import json
import time

import boto3
import pytest
from botocore.validate import validate_parameters
from moto import mock_aws

from lambdas.common import aws
from lambdas.quality_results import adapters, handler
from lambdas.quality_results.results import TOPIC_FIELD, window_start_ms
from tests.lambdas.conftest import LambdaContext

STATION = "berlin/body-line-1/vision-01"
TOPIC = f"mes/v1/{STATION}/quality"
BUS = "mes-events"
WINDOW = 15
ENV = {
    "RECORDS_TABLE": "quality-records",
    "COUNTS_TABLE": "quality-counts",
    "NONCONFORMANCES_TABLE": "nonconformances",
    "EVENT_BUS_NAME": BUS,
    "WINDOW_MINUTES": str(WINDOW),
    "TIMESTREAM_DATABASE": "mes",
    "EVENTS_TABLE": "events",
}


class FakeSiteWise:
    """Records BatchPutAssetPropertyValue calls; keeps one value per alias and time, as SiteWise
    does; can refuse the next call."""

    def __init__(self):
        self.model = boto3.client("iotsitewise").meta.service_model
        self.values = {}
        self.calls = 0
        self.refuse_next = False

    def batch_put_asset_property_value(self, **request):
        operation = self.model.operation_model("BatchPutAssetPropertyValue")
        validate_parameters(request, operation.input_shape)
        self.calls += 1
        if self.refuse_next:
            self.refuse_next = False
            return {"errorEntries": [{"entryId": "Good_Count", "errors": [{"errorCode": "x"}]}]}
        for entry in request["entries"]:
            for value in entry["propertyValues"]:
                time = (value["timestamp"]["timeInSeconds"], value["timestamp"]["offsetInNanos"])
                self.values[(entry["propertyAlias"], time)] = value["value"]["integerValue"]
        return {"errorEntries": []}


@pytest.fixture
def aws_world(fake_credentials, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        aws.client.cache_clear()
        for cached in (handler.settings, handler.store, handler.counts):
            cached.cache_clear()
        sitewise = FakeSiteWise()
        monkeypatch.setattr(
            adapters,
            "client",
            lambda service: sitewise if service == "iotsitewise" else aws.client(service),
        )
        timestream = boto3.client("timestream-write")
        timestream.create_database(DatabaseName="mes")
        timestream.create_table(DatabaseName="mes", TableName="events")
        dynamodb = boto3.client("dynamodb")
        for table, keys in {
            ENV["RECORDS_TABLE"]: [("station", "S"), ("part_id", "S")],
            ENV["COUNTS_TABLE"]: [("station", "S"), ("window_start", "N")],
            ENV["NONCONFORMANCES_TABLE"]: [("ncr_id", "S")],
        }.items():
            dynamodb.create_table(
                TableName=table,
                KeySchema=[
                    {"AttributeName": name, "KeyType": kind}
                    for (name, _), kind in zip(keys, ("HASH", "RANGE"), strict=False)
                ],
                AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in keys],
                BillingMode="PAY_PER_REQUEST",
            )
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS)
        queue_url = sqs.create_queue(QueueName="plm-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        events.put_rule(
            Name="to-plm", EventBusName=BUS, EventPattern=json.dumps({"source": ["mes.quality"]})
        )
        events.put_targets(
            Rule="to-plm",
            EventBusName=BUS,
            Targets=[{"Id": "plm", "Arn": queue_arn["Attributes"]["QueueArn"]}],
        )
        yield {"dynamodb": dynamodb, "sqs": sqs, "queue_url": queue_url, "sitewise": sitewise}
    aws.client.cache_clear()


def result(part, verdict, ts, **overrides):
    payload = {
        "v": 1,
        "ts": ts,
        "part_id": part,
        "verdict": verdict,
        "model_id": "surface-defects",
        "model_version": "1.0.7",
        "latency_ms": 4.2,
        TOPIC_FIELD: TOPIC,
    }
    if verdict == "ERROR":
        payload["reason"] = "truncated JPEG"
    else:
        payload.update(score=0.9 if verdict == "DEFECT" else 0.1, threshold=0.5)
    if verdict == "DEFECT":
        payload["image_key"] = f"captures/{part}.jpg"
    payload.update(overrides)
    return payload


def sqs_event(*bodies):
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:quality",
                "awsRegion": "eu-central-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def run(*bodies):
    response = handler.lambda_handler(sqs_event(*bodies), LambdaContext())
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def counts(world):
    items = world["dynamodb"].scan(TableName=ENV["COUNTS_TABLE"])["Items"]
    return {
        int(item["window_start"]["N"]): (
            int(item.get("good_parts", {"N": "0"})["N"]),
            int(item.get("bad_parts", {"N": "0"})["N"]),
        )
        for item in items
    }


def kpi_counts():
    """The events table's count records as the KPI engine reads them: one per time."""
    from moto.timestreamwrite.models import timestreamwrite_backends

    records = timestreamwrite_backends["123456789012"]["eu-central-1"].databases["mes"]
    by_time = {}
    for record in records.tables["events"].records:
        assert record["MeasureName"] == "count"
        dims = tuple(d["Value"] for d in record["Dimensions"])
        values = {m["Name"]: int(m["Value"]) for m in record["MeasureValues"]}
        key = (dims, int(record["Time"]))
        assert by_time.setdefault(key, values) == values  # a resend is the same record
    return by_time


def sitewise_counts(world):
    good = sum(
        v for (alias, _), v in world["sitewise"].values.items() if alias.endswith("Good_Count")
    )
    bad = sum(
        v for (alias, _), v in world["sitewise"].values.items() if alias.endswith("Bad_Count")
    )
    return good, bad


def published(world):
    messages = (
        world["sqs"]
        .receive_message(QueueUrl=world["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
        .get("Messages", [])
    )
    return [json.loads(message["Body"])["detail"] for message in messages]


def now_ms():
    return int(time.time() * 1000)


def test_results_count_per_window_and_a_defect_becomes_one_report(aws_world):
    t = now_ms() - 3_600_000
    first, second = window_start_ms(t, WINDOW), window_start_ms(t + WINDOW * 60_000, WINDOW)

    failures = run(
        result("P1", "GOOD", t),
        result("P2", "DEFECT", t + 1),
        result("P3", "GOOD", t + WINDOW * 60_000),
    )

    assert failures == []
    assert counts(aws_world) == {first: (1, 1), second: (1, 0)}
    station = ("berlin", "body-line-1", "vision-01")
    assert kpi_counts() == {
        (station, t): {"good": 1, "bad": 0},
        (station, t + 1): {"good": 0, "bad": 1},
        (station, t + WINDOW * 60_000): {"good": 1, "bad": 0},
    }
    assert sitewise_counts(aws_world) == (2, 1)
    aliases = {alias for alias, _ in aws_world["sitewise"].values}
    assert aliases == {f"/mes/{STATION}/Good_Count", f"/mes/{STATION}/Bad_Count"}
    (report,) = published(aws_world)
    assert report["ncr_id"] == "NCR-berlin-body-line-1-vision-01-P2"
    assert report["schema_version"] == 1 and report["source"] == "VISION"
    assert report["inspection"]["image_key"] == "captures/P2.jpg"
    (stored,) = aws_world["dynamodb"].scan(TableName=ENV["NONCONFORMANCES_TABLE"])["Items"]
    assert stored["model_version"]["S"] == "1.0.7" and stored["score"]["N"] == "0.9"
    assert stored["image_key"]["S"] == "captures/P2.jpg" and stored["published"]["BOOL"]


def test_a_redelivered_or_repeated_part_changes_nothing(aws_world):
    t = now_ms() - 60_000
    run(result("P1", "GOOD", t), result("P2", "DEFECT", t + 1))
    before = counts(aws_world)
    assert len(published(aws_world)) == 1

    # The same messages again, and a second verdict for P1 at the same station.
    failures = run(
        result("P1", "GOOD", t), result("P2", "DEFECT", t), result("P1", "DEFECT", t + 5)
    )

    assert failures == []
    assert counts(aws_world) == before
    assert published(aws_world) == []
    # P1's later DEFECT does not replace its first verdict anywhere.
    assert sorted((v["good"], v["bad"]) for v in kpi_counts().values()) == [(0, 1), (1, 0)]
    assert sitewise_counts(aws_world) == (1, 1)
    records = aws_world["dynamodb"].scan(TableName=ENV["RECORDS_TABLE"])["Items"]
    assert sorted(r["part_id"]["S"] for r in records) == ["P1", "P2"]


def test_a_failed_publish_is_retried_and_the_report_is_sent_once(aws_world, monkeypatch):
    t = now_ms() - 60_000
    real_publish = adapters.publish_nonconformance
    calls = []

    def flaky(bus, report):
        calls.append(report.ncr_id)
        if len(calls) == 1:
            raise adapters.PublishFailed("EventBridge throttled")
        real_publish(bus, report)

    monkeypatch.setattr(handler, "publish_nonconformance", flaky)
    # The defect's publish fails (SQS will redeliver it); the good part beside it goes through.
    assert run(result("P9", "DEFECT", t), result("P10", "GOOD", t + 1)) == ["m0"]
    assert published(aws_world) == []

    assert run(result("P9", "DEFECT", t)) == []  # the redelivery

    assert len(published(aws_world)) == 1
    assert counts(aws_world) == {window_start_ms(t, WINDOW): (1, 1)}  # P9 counted once
    assert sitewise_counts(aws_world) == (1, 1)
    assert run(result("P9", "DEFECT", t)) == [] and published(aws_world) == []


def test_a_refused_count_is_sent_again_on_redelivery_and_counted_once(aws_world):
    t = now_ms() - 60_000
    aws_world["sitewise"].refuse_next = True
    assert run(result("P7", "GOOD", t), result("P8", "GOOD", t + 1)) == ["m0"]
    assert sitewise_counts(aws_world) == (1, 0)

    assert run(result("P7", "GOOD", t)) == []  # the redelivery

    assert sitewise_counts(aws_world) == (2, 0)
    assert counts(aws_world) == {window_start_ms(t, WINDOW): (2, 0)}
    assert len(kpi_counts()) == 2


def test_an_error_result_is_recorded_but_counts_neither_way(aws_world):
    t = now_ms() - 60_000
    assert run(result("P5", "ERROR", t)) == []
    assert counts(aws_world) == {} and kpi_counts() == {}
    assert aws_world["sitewise"].calls == 0
    assert published(aws_world) == []
    (record,) = aws_world["dynamodb"].scan(TableName=ENV["RECORDS_TABLE"])["Items"]
    assert record["reason"]["S"] == "truncated JPEG" and "score" not in record


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({k: v for k, v in result("P1", "GOOD", 1_763_000_000_000).items()
                    if k != TOPIC_FIELD}),
        json.dumps(result("P1", "GOOD", 1_763_000_000_000, **{TOPIC_FIELD: "mes/v1/a/b/c/count"})),
        json.dumps(result("P1", "GOOD", 1_763_000_000_000, score=None)),
        json.dumps(result("P1", "GOOD", 1_763_000_000_000, v=2)),
    ],
    ids=["not-json", "no-topic", "count-topic", "no-score", "v2"],
)  # fmt: skip
def test_malformed_messages_fail_alone_and_write_nothing(aws_world, body):
    t = now_ms() - 60_000
    failures = run(result("OK", "GOOD", t), body)
    assert failures == ["m1"]
    assert counts(aws_world) == {window_start_ms(t, WINDOW): (1, 0)}
