"""IiotStack: thing groups from the config, encrypted stream, Timestream retention from config."""

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


def test_timestream_retention_and_late_data_from_the_config(iiot_template, demo_plant):
    retention = demo_plant.retention
    iiot_template.has_resource_properties(
        "AWS::Timestream::Database",
        {"DatabaseName": "MesDemo-telemetry", "KmsKeyId": Match.any_value()},
    )
    iiot_template.has_resource_properties(
        "AWS::Timestream::Table",
        {
            "TableName": "telemetry",
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
