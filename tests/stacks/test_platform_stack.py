"""PlatformStack: keys rotate, buckets are encrypted, TLS-only and private, alarms encrypted."""

from aws_cdk.assertions import Match


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
