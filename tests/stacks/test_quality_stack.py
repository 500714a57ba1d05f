"""QualityInspectionStack as synthesized: encrypted, versioned stores; the results consumer on
the quality queue with partial batch failures and only the permissions it uses."""

import json

from aws_cdk.assertions import Match

TABLE = "AWS::DynamoDB::Table"


def test_dataset_and_model_buckets_are_versioned_kms_encrypted_and_logged(quality_template):
    quality_template.resource_count_is("AWS::S3::Bucket", 2)
    for bucket in quality_template.find_resources("AWS::S3::Bucket").values():
        properties = bucket["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert "DestinationBucketName" in properties["LoggingConfiguration"]
        assert bucket["DeletionPolicy"] == "Retain"


def test_registry_and_results_tables_are_keyed_for_idempotency_and_retained(quality_template):
    keys = {}
    for table in quality_template.find_resources(TABLE).values():
        properties = table["Properties"]
        assert properties["SSESpecification"]["SSEEnabled"] is True
        assert properties["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }
        assert table["DeletionPolicy"] == "Retain"
        keys[tuple(k["AttributeName"] for k in properties["KeySchema"])] = properties
    assert set(keys) == {
        ("station", "model_version"),  # the model registry
        ("station", "part_id"),  # one record per part: results are idempotent
        ("station", "window_start"),  # good/bad counts per window
        ("ncr_id",),
    }


def test_the_consumer_reads_the_quality_queue_with_partial_batch_failures(quality_template):
    (mapping,) = quality_template.find_resources("AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    assert "QualityResults" in json.dumps(properties["EventSourceArn"])  # the IIoT queue
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BatchSize"] == 50 and properties["MaximumBatchingWindowInSeconds"] == 5
    quality_template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "lambdas.quality_results.handler.lambda_handler",
            "Environment": {
                "Variables": Match.object_like(
                    {"WINDOW_MINUTES": "15", "EVENT_BUS_NAME": Match.any_value()}
                )
            },
        },
    )


def test_the_consumer_may_only_write_what_it_writes(quality_template):
    policies = quality_template.find_resources("AWS::IAM::Policy")
    (policy,) = [p for key, p in policies.items() if key.startswith("ResultsConsumer")]
    actions = set()
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        found = statement["Action"]
        actions.update([found] if isinstance(found, str) else found)
    dynamodb = {a for a in actions if a.startswith("dynamodb:")}
    assert dynamodb == {
        "dynamodb:PutItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
    }
    assert "events:PutEvents" in actions
    assert not any(a.endswith("*") and not a.startswith("kms:") for a in actions), actions
    assert "dynamodb:Scan" not in json.dumps(policy)


def test_the_platform_event_bus_is_kms_encrypted(platform_template):
    platform_template.has_resource_properties(
        "AWS::Events::EventBus",
        {"Name": "MesDemo-events", "KmsKeyIdentifier": Match.any_value()},
    )
