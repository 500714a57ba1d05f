"""PlatformStack: keys rotate, buckets are encrypted, TLS-only and private, alarms encrypted."""

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from mes_domain import naming
from tests.stacks.plants import ALARM_EMAILS
from tests.stacks.test_cfn_lint import lint


def test_two_customer_managed_keys_with_rotation(platform_template):
    platform_template.resource_count_is("AWS::KMS::Key", 2)
    keys = platform_template.find_resources("AWS::KMS::Key")
    assert all(k["Properties"]["EnableKeyRotation"] is True for k in keys.values())
    assert all(k["DeletionPolicy"] == "Retain" for k in keys.values())
    platform_template.has_resource_properties(
        "AWS::KMS::Alias", {"AliasName": "alias/MesDemo/data"}
    )
    platform_template.has_resource_properties(
        "AWS::KMS::Alias", {"AliasName": "alias/MesDemo/logs"}
    )


def test_logs_key_lets_only_cloudwatch_logs_of_this_account_use_it(platform_template):
    platform_template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "Description": Match.string_like_regexp("CloudWatch Logs"),
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": Match.any_value()},
                                "Condition": {
                                    "ArnLike": {
                                        "kms:EncryptionContext:aws:logs:arn": Match.any_value()
                                    }
                                },
                            }
                        )
                    ]
                )
            },
        },
    )


def test_access_log_bucket_is_encrypted_private_and_expires(platform_template):
    platform_template.resource_count_is("AWS::S3::Bucket", 1)
    platform_template.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Retain",
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                    ]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "LifecycleConfiguration": {
                    "Rules": Match.array_with([Match.object_like({"ExpirationInDays": 365})])
                },
            },
        },
    )


def test_access_log_bucket_denies_plain_http_and_old_tls(platform_template):
    platform_template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Principal": {"AWS": "*"},
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ),
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}},
                            }
                        ),
                    ]
                )
            }
        },
    )


def test_alarm_topic_is_encrypted_with_the_data_key_and_tls_only(platform_template):
    topics = platform_template.find_resources("AWS::SNS::Topic")
    (topic,) = topics.values()
    key_ref = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = platform_template.find_resources("AWS::KMS::Key")[key_ref]
    assert "data at rest" in key["Properties"]["Description"]
    platform_template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
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
            }
        },
    )


def test_data_key_lets_cloudwatch_alarms_publish_to_the_encrypted_topic(platform_template):
    platform_template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                            }
                        )
                    ]
                )
            }
        },
    )


def test_stack_name_and_tags_come_from_the_config(synthesized, demo_plant, platform_template):
    stacks, assembly = synthesized
    assert stacks.platform.stack_name == f"{demo_plant.deployment.stack_prefix}-Platform"
    assert assembly.get_stack_by_name("MesDemo-Platform") is not None
    key = next(iter(platform_template.find_resources("AWS::KMS::Key").values()))
    tags = {t["Key"]: t["Value"] for t in key["Properties"]["Tags"]}
    assert tags == demo_plant.deployment.tags


def test_outputs_expose_what_later_stacks_and_operators_need(platform_template):
    outputs = platform_template.find_outputs("*")
    assert {"DataKeyArn", "LogsKeyArn", "AccessLogBucketName", "AlarmTopicArn"} <= set(outputs)


def test_access_log_bucket_is_versioned_and_expires_old_versions(platform_template):
    """checkov CKV_AWS_21: a deleted or overwritten access log stays recoverable a while."""
    platform_template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "ExpirationInDays": 365,
                                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                            }
                        )
                    ]
                )
            },
        },
    )


# --- alarm e-mails (the plant with the longest names has two; the demo none) ---


def test_no_alarm_emails_no_dead_letter_queue(platform_template):
    platform_template.resource_count_is("AWS::SNS::Subscription", 0)
    platform_template.resource_count_is("AWS::SQS::Queue", 0)


@pytest.fixture(scope="module")
def with_emails(longest_synthesized):
    stacks, _ = longest_synthesized
    return Template.from_stack(stacks.platform), Template.from_stack(stacks.kpi)


def test_each_alarm_email_sends_what_sns_cannot_deliver_to_one_dead_letter_queue(with_emails):
    """cdk-nag's Serverless-SNSRedrivePolicy: synth of a plant with alarm_emails failed."""
    platform, _ = with_emails
    subscriptions = platform.find_resources("AWS::SNS::Subscription")
    assert sorted(s["Properties"]["Endpoint"] for s in subscriptions.values()) == sorted(
        ALARM_EMAILS
    )
    (queue_id,) = platform.find_resources("AWS::SQS::Queue")
    for subscription in subscriptions.values():
        assert subscription["Properties"]["Protocol"] == "email"
        assert subscription["Properties"]["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [queue_id, "Arn"]}
        }


def test_the_dead_letter_queue_is_encrypted_tls_only_and_keeps_14_days(with_emails):
    platform, _ = with_emails
    ((queue_id, queue),) = platform.find_resources("AWS::SQS::Queue").items()
    key_id = queue["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    assert (
        "data at rest"
        in platform.find_resources("AWS::KMS::Key")[key_id]["Properties"]["Description"]
    )
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    ((_, policy),) = platform.find_resources("AWS::SQS::QueuePolicy").items()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (topic_id,) = platform.find_resources("AWS::SNS::Topic")
    assert {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
    } in statements
    # Only the alarm topic may send to it.
    allowed = [s for s in statements if s["Effect"] == "Allow"]
    assert allowed == [
        {
            "Action": "sqs:SendMessage",
            "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": topic_id}}},
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
        }
    ]


def test_sns_may_use_the_data_key_only_for_the_alarm_topic(with_emails, longest_plant):
    """An encrypted SNS dead-letter queue needs SNS in the key policy (SNS developer guide,
    sns-dead-letter-queues); the condition names the alarm topic by its ARN."""
    platform, _ = with_emails
    ((_, topic),) = platform.find_resources("AWS::SNS::Topic").items()
    topic_name = topic["Properties"]["TopicName"]
    assert topic_name == naming.alarm_topic_name(longest_plant.deployment.stack_prefix)
    sns_statements = [
        statement
        for key in platform.find_resources("AWS::KMS::Key").values()
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "sns.amazonaws.com"}
    ]
    (statement,) = sns_statements
    assert statement["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    source = statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Join"][1]
    assert source[-1] == f":{topic_name}" and ":sns:" in source


def test_undelivered_alarm_emails_are_on_the_dashboard_and_alarmed(with_emails):
    _, kpi = with_emails
    (alarm,) = [
        alarm["Properties"]
        for alarm in kpi.find_resources("AWS::CloudWatch::Alarm").values()
        if "AlarmEmailsUndelivered" in alarm["Properties"]["AlarmDescription"]
    ]
    assert alarm["AlarmActions"] and alarm["Threshold"] == 1
    assert "ApproximateNumberOfMessagesVisible" in json.dumps(alarm["Metrics"])
    dashboards = kpi.find_resources("AWS::CloudWatch::Dashboard")
    assert "AlarmEmailsUndelivered" in json.dumps(dashboards)


def test_a_plant_with_alarm_emails_passes_the_gate_and_cfn_lint(longest_synthesized):
    _, assembly = longest_synthesized
    report = json.loads((Path(assembly.directory) / "validation-report.json").read_text())
    assert [p for p in report["pluginReports"] if p["conclusion"] != "success"] == []
    templates = sorted(Path(assembly.directory).glob("*.template.json"))
    assert any(t.name.endswith("-Platform.template.json") for t in templates)
    result = lint(templates)
    assert [line for line in result.stdout.splitlines() if ":E" in line or ":W" in line] == []
