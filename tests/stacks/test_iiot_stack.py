"""IiotStack: thing groups from the config, encrypted stream, Timestream retention from config."""

import json

import pytest
from aws_cdk.assertions import Match


def test_a_thing_group_per_site_and_per_line_under_its_site(iiot_template, demo_plant):
    lines = [(site.id, line.id) for site in demo_plant.sites for line in site.lines]
    iiot_template.resource_count_is("AWS::IoT::ThingGroup", len(demo_plant.sites) + len(lines))
    for site_id, line_id in lines:
        iiot_template.has_resource_properties(
            "AWS::IoT::ThingGroup",
            {
                "ThingGroupName": f"MesDemo-{site_id}-{line_id}",
                "ParentGroupName": f"MesDemo-{site_id}",
            },
        )


def test_telemetry_stream_is_kms_encrypted_on_demand_with_retention(iiot_template, demo_plant):
    iiot_template.has_resource_properties(
        "AWS::Kinesis::Stream",
        {
            "StreamEncryption": {"EncryptionType": "KMS", "KeyId": Match.any_value()},
            "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
            "RetentionPeriodHours": demo_plant.iiot.telemetry_stream_retention_hours,
        },
    )


@pytest.mark.parametrize("table", ["telemetry", "events", "kpis"])
def test_timestream_retention_and_late_data_from_the_config(iiot_template, demo_plant, table):
    retention = demo_plant.retention
    iiot_template.has_resource_properties(
        "AWS::Timestream::Database",
        {"DatabaseName": "MesDemo-telemetry", "KmsKeyId": Match.any_value()},
    )
    iiot_template.resource_count_is("AWS::Timestream::Table", 3)
    iiot_template.has_resource_properties(
        "AWS::Timestream::Table",
        {
            "TableName": table,
            "RetentionProperties": {
                "MemoryStoreRetentionPeriodInHours": str(retention.timeseries_memory_hours),
                "MagneticStoreRetentionPeriodInDays": str(retention.timeseries_magnetic_days),
            },
            "MagneticStoreWriteProperties": {
                "EnableMagneticStoreWrites": True,
                "MagneticStoreRejectedDataLocation": {
                    "S3Configuration": Match.object_like({"EncryptionOption": "SSE_KMS"})
                },
            },
        },
    )


def test_rejected_late_data_bucket_is_encrypted_and_logged(iiot_template):
    iiot_template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {
                            "ServerSideEncryptionByDefault": Match.object_like(
                                {"SSEAlgorithm": "aws:kms"}
                            )
                        }
                    )
                ]
            },
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "TimeseriesRejected/"}),
            "VersioningConfiguration": {"Status": "Enabled"},
        },
    )


def test_event_source_reports_partial_failures_with_batch_window_and_on_failure(iiot_template):
    from stacks.constructs.telemetry_writer import BATCH_SIZE, RETRY_ATTEMPTS

    iiot_template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": BATCH_SIZE,
            "MaximumBatchingWindowInSeconds": 5,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": RETRY_ATTEMPTS,
            "StartingPosition": "TRIM_HORIZON",
            "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}},
        },
    )


def test_writer_function_environment_and_tracing(iiot_template):
    from lambdas.telemetry_writer.settings import EnvVar

    functions = iiot_template.find_resources("AWS::Lambda::Function")
    (function,) = functions.values()
    props = function["Properties"]
    assert props["Handler"] == "lambdas.telemetry_writer.handler.lambda_handler"
    assert props["Runtime"] == "python3.11" and props["TracingConfig"] == {"Mode": "Active"}
    assert {key.value for key in EnvVar} <= set(props["Environment"]["Variables"])
    assert props["Layers"], "third-party runtime comes from the pinned layer"


def test_writer_may_write_only_its_tables_and_send_only_to_its_queues(iiot_template):
    iiot_template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Action": "timestream:WriteRecords",
                            "Effect": "Allow",
                            "Resource": [
                                {"Fn::GetAtt": [Match.string_like_regexp(f"{table}Table"), "Arn"]}
                                for table in ("Events", "Telemetry")
                            ],
                        }
                    ]
                )
            }
        },
    )


def test_queues_are_encrypted_and_tls_only(iiot_template):
    # writer DeadLetters and FailedBatches, QualityResults and its dead-letter queue
    iiot_template.resource_count_is("AWS::SQS::Queue", 4)
    queues = iiot_template.find_resources("AWS::SQS::Queue")
    for queue in queues.values():
        assert "KmsMasterKeyId" in queue["Properties"]
        assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    iiot_template.resource_count_is("AWS::SQS::QueuePolicy", 4)
    iiot_template.has_resource_properties(
        "AWS::SQS::Queue",
        {"RedrivePolicy": {"deadLetterTargetArn": Match.any_value(), "maxReceiveCount": 5}},
    )


def test_writer_logs_are_kms_encrypted_with_configured_retention(iiot_template, demo_plant):
    iiot_template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"KmsKeyId": Match.any_value(), "RetentionInDays": demo_plant.retention.log_days},
    )


def _writer_dead_letter_bucket(iiot_template):
    buckets = iiot_template.find_resources(
        "AWS::S3::Bucket",
        {"Properties": {"LoggingConfiguration": {"LogFilePrefix": "DeadLetterPayloads/"}}},
    )
    ((logical_id, bucket),) = buckets.items()
    return logical_id, bucket["Properties"]


def test_oversized_dead_letters_go_to_an_encrypted_tls_only_logged_bucket(iiot_template):
    from lambdas.telemetry_writer.contract import EnvVar

    logical_id, props = _writer_dead_letter_bucket(iiot_template)
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    rejected = iiot_template.find_resources(
        "AWS::S3::Bucket",
        {"Properties": {"LoggingConfiguration": {"LogFilePrefix": "TimeseriesRejected/"}}},
    )
    (other,) = rejected.values()  # the same data key and access-log bucket as its neighbour
    (other_encryption,) = other["Properties"]["BucketEncryption"][
        "ServerSideEncryptionConfiguration"
    ]
    assert encryption == other_encryption
    destination = props["LoggingConfiguration"]["DestinationBucketName"]
    assert destination == other["Properties"]["LoggingConfiguration"]["DestinationBucketName"]
    assert props["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    iiot_template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": logical_id},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )
    (function,) = iiot_template.find_resources("AWS::Lambda::Function").values()
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables[EnvVar.DEAD_LETTER_BUCKET.value] == {"Ref": logical_id}


def test_writer_may_only_put_objects_under_the_dead_letter_prefix(iiot_template):
    from lambdas.telemetry_writer.contract import DEAD_LETTER_PREFIX

    logical_id, _ = _writer_dead_letter_bucket(iiot_template)
    grants = [
        statement
        for policy in iiot_template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if logical_id in json.dumps(statement["Resource"])
    ]
    assert grants == [
        {
            "Action": "s3:PutObject",
            "Effect": "Allow",
            "Resource": {
                "Fn::Join": [
                    "",
                    [{"Fn::GetAtt": [logical_id, "Arn"]}, f"/{DEAD_LETTER_PREFIX}/*"],
                ]
            },
        }
    ]


def test_the_dead_letter_queue_takes_every_message_the_writer_sends_inline(iiot_template):
    from lambdas.telemetry_writer.adapters import SQS_MAX_BYTES

    # MaximumMessageSize defaults to 262,144 bytes (SQS SetQueueAttributes); 1 MiB is the most.
    default_maximum = 262_144
    queues = iiot_template.find_resources("AWS::SQS::Queue")
    writer_queue = [q for q in queues if q.startswith("TelemetryWriterDeadLetters")]
    assert writer_queue, "the writer's dead-letter queue"
    for logical_id in writer_queue:
        props = queues[logical_id]["Properties"]
        assert props.get("MaximumMessageSize", default_maximum) >= SQS_MAX_BYTES
