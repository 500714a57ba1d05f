"""The router's world under moto: a versioned landing bucket, the four stores, the idempotency
table and the platform bus, whose rule for the lake's production orders (as the DataLake stack
declares it) feeds a queue, with the handlers' cached settings and clients cleared around each
test."""

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from lambdas.common import aws
from lambdas.erp_plm_router import api_handler, s3_handler
from lambdas.erp_plm_router.settings import EnvVar
from mes_domain import lake

SAMPLES = Path(__file__).parent / "samples"
BUCKET = "mes-landing"
ENV = {
    EnvVar.LANDING_BUCKET: BUCKET,
    EnvVar.ORDERS_TABLE: "orders",
    EnvVar.PRODUCTS_TABLE: "products",
    EnvVar.PROCESS_PLANS_TABLE: "process-plans",
    EnvVar.INVENTORY_TABLE: "inventory",
    EnvVar.IDEMPOTENCY_TABLE: "router-idempotency",
    EnvVar.EVENT_BUS_NAME: "mes-platform",
}
LAKE_INBOX = "lake-production-orders"
STORES = (
    EnvVar.ORDERS_TABLE,
    EnvVar.PRODUCTS_TABLE,
    EnvVar.PROCESS_PLANS_TABLE,
    EnvVar.INVENTORY_TABLE,
)


def clear_caches():
    aws.client.cache_clear()
    for cached in (s3_handler.settings, s3_handler.store, api_handler.settings, api_handler.store):
        cached.cache_clear()


def create_store(dynamodb, name):
    dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def create_world():
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = boto3.client("dynamodb")
    for var in STORES:
        create_store(dynamodb, ENV[var])
    dynamodb.create_table(
        TableName=ENV[EnvVar.IDEMPOTENCY_TABLE],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    create_lake_rule()
    return s3, dynamodb


def create_lake_rule() -> None:
    """The DataLake stack's rule for production orders, into a queue instead of Firehose."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    bus = ENV[EnvVar.EVENT_BUS_NAME]
    events.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName=LAKE_INBOX)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    pattern = {
        "source": [lake.PRODUCTION_ORDER_EVENT_SOURCE],
        "detail-type": [lake.PRODUCTION_ORDER_EVENT_DETAIL_TYPE],
    }
    events.put_rule(Name="to-lake", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule="to-lake",
        EventBusName=bus,
        Targets=[{"Id": "lake", "Arn": arn["Attributes"]["QueueArn"]}],
    )


@pytest.fixture
def world(fake_credentials, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key.value, value)
    with mock_aws():
        clear_caches()
        s3, dynamodb = create_world()
        yield World(s3, dynamodb)
    clear_caches()


class World:
    """Helpers to drop files, deliver their notifications and read what was stored."""

    def __init__(self, s3, dynamodb):
        self.s3 = s3
        self.dynamodb = dynamodb

    def drop(self, key: str, body: bytes) -> dict:
        """Put a file in the landing bucket; its S3 notification as an SQS record."""
        put = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        notification = {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": BUCKET},
                        "object": {
                            "key": key.replace(" ", "+"),
                            "size": len(body),
                            "versionId": put["VersionId"],
                        },
                    },
                }
            ]
        }
        return {
            "messageId": f"m-{key}-{put['VersionId']}",
            "receiptHandle": "r",
            "body": json.dumps(notification),
            "attributes": {},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:landing",
            "awsRegion": "eu-central-1",
        }

    def item(self, var: EnvVar, pk: str, sk: str = "DOC") -> dict | None:
        found = self.dynamodb.get_item(
            TableName=ENV[var], Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        return found.get("Item")

    def items(self, var: EnvVar) -> list[dict]:
        return self.dynamodb.scan(TableName=ENV[var], ConsistentRead=True)["Items"]

    def read(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def lake_rows(self) -> list[dict]:
        """The details the lake's rule took since the last call (each a production_orders row)."""
        sqs = boto3.client("sqs")
        queue = sqs.get_queue_url(QueueName=LAKE_INBOX)["QueueUrl"]
        found = []
        while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
            found += [json.loads(m["Body"])["detail"] for m in batch]
            for m in batch:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        return found

    def keys(self, prefix: str = "") -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(obj["Key"] for obj in listed.get("Contents", []))
