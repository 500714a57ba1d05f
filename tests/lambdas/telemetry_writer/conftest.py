import base64
import json
import time

import boto3
import pytest
from moto import mock_aws

from lambdas.common.aws import client as aws_clients
from lambdas.telemetry_writer import handler
from lambdas.telemetry_writer.settings import EnvVar

DATABASE, TABLE, EVENTS_TABLE = "mes_demo", "telemetry", "events"


def now_ms():
    return int(time.time() * 1000)


def telemetry_batch(batch_id="b-1", readings=3, station="press-01", ts=None):
    ts = ts or now_ms() - 60_000
    return {
        "v": 1,
        "site": "berlin",
        "line": "body-line-1",
        "station": station,
        "batch_id": batch_id,
        "readings": [
            {"ts": ts + i, "tag": f"tag_{i % 5}", "value": float(i), "quality": "GOOD"}
            for i in range(readings)
        ],
    }


def kinesis_event(payloads, partition_keys=None):
    """Stream records as Lambda receives them; a payload's partition key defaults to what the
    telemetry rule sets (site/line/station)."""
    records = []
    for i, payload in enumerate(payloads):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        key = (partition_keys or {}).get(i, "berlin/body-line-1/press-01")
        records.append(
            {
                "eventSource": "aws:kinesis",
                "eventID": f"shardId-000000000000:{i}",
                "awsRegion": "eu-central-1",
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": key,
                    "sequenceNumber": f"4959{i:020d}",
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": 1.7e9,
                },
            }
        )
    return {"Records": records}


@pytest.fixture
def aws(monkeypatch, fake_credentials):
    """Credentials -> mock_aws -> Timestream table and DLQ -> handler environment."""
    with mock_aws():
        timestream = boto3.client("timestream-write")
        timestream.create_database(DatabaseName=DATABASE)
        timestream.create_table(DatabaseName=DATABASE, TableName=TABLE)
        timestream.create_table(DatabaseName=DATABASE, TableName=EVENTS_TABLE)
        queue_url = boto3.client("sqs").create_queue(QueueName="telemetry-dlq")["QueueUrl"]
        monkeypatch.setenv(EnvVar.TIMESTREAM_DATABASE, DATABASE)
        monkeypatch.setenv(EnvVar.TIMESTREAM_TABLE, TABLE)
        monkeypatch.setenv(EnvVar.EVENTS_TABLE, EVENTS_TABLE)
        monkeypatch.setenv(EnvVar.DEAD_LETTER_QUEUE_URL, queue_url)
        ports = handler.ports  # tests may monkeypatch it; clear the real cache either way
        aws_clients.cache_clear()
        ports.cache_clear()
        yield {"queue_url": queue_url}
        aws_clients.cache_clear()
        ports.cache_clear()


def written_records(table=TABLE):
    from moto.timestreamwrite.models import timestreamwrite_backends

    backend = timestreamwrite_backends["123456789012"]["eu-central-1"]
    return backend.databases[DATABASE].tables[table].records


def dead_letters(queue_url):
    sqs = boto3.client("sqs")
    letters = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages")
        if not messages:
            return letters
        for message in messages:
            letters.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
