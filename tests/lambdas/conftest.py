import boto3
import pytest
from moto import mock_aws

from mes_domain.fleet import AllowListAttribute

ALLOW_LIST_TABLE = "allow-list"


@pytest.fixture
def fake_credentials(monkeypatch):
    """moto needs credentials and a region; never real ones."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-central-1",
    }.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def allow_list_db(fake_credentials):
    """A moto DynamoDB client with the EdgeFleet allow-list table ``ALLOW_LIST_TABLE``."""
    serial = AllowListAttribute.SERIAL.value
    with mock_aws():
        db = boto3.client("dynamodb", region_name="eu-central-1")
        db.create_table(
            TableName=ALLOW_LIST_TABLE,
            KeySchema=[{"AttributeName": serial, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": serial, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield db


class LambdaContext:
    function_name = "handler-under-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-central-1:123456789012:function:handler-under-test"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self):
        return 60_000
