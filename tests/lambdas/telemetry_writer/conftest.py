import base64
import json
import time

import boto3
import pytest
from moto import mock_aws

from lambdas.common.aws import client as aws_clients
from lambdas.telemetry_writer import handler
from lambdas.telemetry_writer.contract import EnvVar

DATABASE, TABLE, EVENTS_TABLE = "mes_demo", "telemetry", "events"
BUCKET = "dead-letter-payloads"
STATION_KEY = "berlin/body-line-1/press-01"  # the telemetry rule's key for press-01's topic


def now_ms():
    return int(time.time() * 1000)


def station_key(payload):
    """The partition key of a batch published on its own station's topic."""
    return "/".join(str(payload.get(level)) for level in ("site", "line", "station"))


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
    telemetry rule sets for its own station's topic (site/line/station)."""
    records = []
    for i, payload in enumerate(payloads):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        default = station_key(payload) if isinstance(payload, dict) else STATION_KEY
        key = (partition_keys or {}).get(i, default)
        records.append(
            {
                "eventSource": "aws:kinesis",
                "eventID": f"shardId-000000000000:4959{i:020d}",
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
    """Credentials -> mock_aws -> Timestream tables, DLQ and its bucket -> handler environment."""
    with mock_aws():
        timestream = boto3.client("timestream-write")
        timestream.create_database(DatabaseName=DATABASE)
        timestream.create_table(DatabaseName=DATABASE, TableName=TABLE)
        timestream.create_table(DatabaseName=DATABASE, TableName=EVENTS_TABLE)
        queue_url = boto3.client("sqs").create_queue(QueueName="telemetry-dlq")["QueueUrl"]
        boto3.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        monkeypatch.setenv(EnvVar.TIMESTREAM_DATABASE, DATABASE)
        monkeypatch.setenv(EnvVar.TIMESTREAM_TABLE, TABLE)
        monkeypatch.setenv(EnvVar.EVENTS_TABLE, EVENTS_TABLE)
        monkeypatch.setenv(EnvVar.DEAD_LETTER_QUEUE_URL, queue_url)
        monkeypatch.setenv(EnvVar.DEAD_LETTER_BUCKET, BUCKET)
        ports = handler.ports  # tests may monkeypatch it; clear the real cache either way
        aws_clients.cache_clear()
        ports.cache_clear()
        yield {"queue_url": queue_url, "bucket": BUCKET}
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


def recovered(letter):
    """The whole dead letter: itself, or the S3 object its pointer names."""
    if "payload" not in letter:
        return letter
    pointer = letter["payload"]
    body = boto3.client("s3").get_object(Bucket=pointer["bucket"], Key=pointer["key"])["Body"]
    data = body.read()
    assert len(data) == pointer["bytes"]
    return json.loads(data)
