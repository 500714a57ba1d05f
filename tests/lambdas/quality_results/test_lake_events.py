"""Every inspection result also goes to the platform bus as a row of the data lake's
inspection_results table; ERP and PLM (source mes.quality) never see those events."""

from __future__ import annotations

import json
import time

import pytest

from lambdas.quality_results import adapters, handler
from mes_domain import lake
from tests.lambdas.quality_results.test_handler import (  # noqa: F401 (aws_world is a fixture)
    BUS,
    aws_world,
    published,
    result,
    run,
)


@pytest.fixture
def lake_inbox(aws_world):  # noqa: F811
    """The lake's rule, as the DataLake stack declares it, into a queue."""
    import boto3

    events, sqs = boto3.client("events"), aws_world["sqs"]
    queue = sqs.create_queue(QueueName="lake-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    pattern = {
        "source": [lake.INSPECTION_EVENT_SOURCE],
        "detail-type": [lake.INSPECTION_EVENT_DETAIL_TYPE],
    }
    events.put_rule(Name="to-lake", EventBusName=BUS, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule="to-lake",
        EventBusName=BUS,
        Targets=[{"Id": "lake", "Arn": arn["Attributes"]["QueueArn"]}],
    )

    def rows():
        found = []
        while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
            found += [json.loads(m["Body"])["detail"] for m in batch]
            for m in batch:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        return found

    return rows


def test_every_result_becomes_a_lake_row_with_its_station(aws_world, lake_inbox):  # noqa: F811
    t = int(time.time() * 1000) - 60_000
    assert (
        run(result("P1", "GOOD", t), result("P2", "DEFECT", t + 1), result("P3", "ERROR", t + 2))
        == []
    )

    rows = sorted(lake_inbox(), key=lambda r: r["part_id"])
    assert [(r["part_id"], r["verdict"]) for r in rows] == [
        ("P1", "GOOD"),
        ("P2", "DEFECT"),
        ("P3", "ERROR"),
    ]
    columns = {c.name for c in lake.INSPECTION_RESULTS.columns}
    for row in rows:
        assert set(row) == columns | {"site", "dt"}
        assert (row["site"], row["line"], row["station"]) == ("berlin", "body-line-1", "vision-01")
        assert row["model_version"] == "1.0.7" and row["dt"] == lake.day_of(row["ts"])
    # ERP and PLM get the defect's report only, never the lake's rows.
    (report,) = published(aws_world)
    assert report["part_id"] == "P2"


def test_a_redelivery_sends_the_row_again_and_a_failed_send_retries_everything(
    aws_world,  # noqa: F811
    lake_inbox,
    monkeypatch,
):
    t = int(time.time() * 1000) - 60_000
    body = result("P7", "GOOD", t)
    assert run(body) == [] and run(body) == []
    assert [r["part_id"] for r in lake_inbox()] == ["P7", "P7"]  # at least once

    real_publish = adapters.publish_inspection

    def failing_for_p8(bus, item):
        if item.result.part_id == "P8":
            raise adapters.PublishFailed("bus down")
        real_publish(bus, item)

    monkeypatch.setattr(handler, "publish_inspection", failing_for_p8)
    failed = run(result("P8", "DEFECT", t + 5), result("P9", "GOOD", t + 6))
    assert len(failed) == 1  # P8: SQS redelivers it
    assert published(aws_world) == []  # nothing else was done for it: no report yet
    assert [r["part_id"] for r in lake_inbox()] == ["P9"]
