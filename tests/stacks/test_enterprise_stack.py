"""EnterpriseStack as synthesized: the exchange bucket's arrivals reach an encrypted queue
with a dead-letter queue; one store per bounded context; MES events reach ERP and PLM through
API destinations keyed from Secrets Manager, and files, with every target dead-lettered."""

import json

from aws_cdk.assertions import Match


def test_files_dropped_under_inbound_reach_an_encrypted_queue_with_a_dlq(enterprise_template):
    (notification,) = enterprise_template.find_resources("Custom::S3BucketNotifications").values()
    (queue_config,) = notification["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert queue_config["Events"] == ["s3:ObjectCreated:*"]
    rules = queue_config["Filter"]["Key"]["FilterRules"]
    assert rules == [{"Name": "prefix", "Value": "inbound/"}]
    queues = enterprise_template.find_resources("AWS::SQS::Queue")
    arrivals = queues[queue_config["QueueArn"]["Fn::GetAtt"][0]]["Properties"]
    assert "KmsMasterKeyId" in arrivals and arrivals["RedrivePolicy"]["maxReceiveCount"] == 5
    assert arrivals["VisibilityTimeout"] == 960


def test_the_exchange_bucket_is_versioned_encrypted_and_kept(enterprise_template):
    (bucket,) = enterprise_template.find_resources("AWS::S3::Bucket").values()
    assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert bucket["DeletionPolicy"] == "Retain"


def test_one_store_per_bounded_context_and_an_idempotency_table(enterprise_template):
    tables = enterprise_template.find_resources("AWS::DynamoDB::Table")
    names = sorted(key.removeprefix("Storage")[:-8] for key in tables)
    assert names == ["Idempotency", "Inventory", "Orders", "ProcessPlans", "Products"]
    for table in tables.values():
        assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True
        assert table["DeletionPolicy"] == "Retain"


def test_erp_and_plm_get_their_events_through_keyed_api_destinations(
    enterprise_template, demo_plant
):
    destinations = enterprise_template.find_resources("AWS::Events::ApiDestination")
    endpoints = {
        d["Properties"]["InvocationEndpoint"]: d["Properties"] for d in destinations.values()
    }
    assert set(endpoints) == {demo_plant.erp_plm.erp.url, demo_plant.erp_plm.plm.url}
    assert all(d["HttpMethod"] == "POST" and d["InvocationRateLimitPerSecond"] == 10
               for d in endpoints.values())  # fmt: skip
    for connection in enterprise_template.find_resources("AWS::Events::Connection").values():
        auth = connection["Properties"]["AuthParameters"]["ApiKeyAuthParameters"]
        assert auth["ApiKeyName"] == "x-api-key"
        assert "resolve:secretsmanager" in json.dumps(auth["ApiKeyValue"])  # never in the template
    patterns = {
        json.dumps(r["Properties"]["Description"]): r["Properties"]["EventPattern"]
        for r in enterprise_template.find_resources("AWS::Events::Rule").values()
    }
    assert patterns['"ToErp"']["detail-type"] == [
        "ProductionConfirmation", "OrderStatusChanged", "NonConformance",
    ]  # fmt: skip
    assert patterns['"ToPlm"']["detail-type"] == ["NonConformance"]
    assert "detail-type" not in patterns['"ToFiles"']  # every MES event is exported


def test_every_outbound_target_retries_for_a_day_then_dead_letters(enterprise_template):
    for rule in enterprise_template.find_resources("AWS::Events::Rule").values():
        for target in rule["Properties"]["Targets"]:
            assert "Undelivered" in json.dumps(target["DeadLetterConfig"])
            assert target["RetryPolicy"]["MaximumRetryAttempts"] == 185
    enterprise_template.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "ExtendedS3DestinationConfiguration": Match.object_like(
                {"Prefix": "exports/!{timestamp:yyyy/MM/dd}/"}
            )
        },
    )
