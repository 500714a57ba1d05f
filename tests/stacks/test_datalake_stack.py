"""DataLakeStack as synthesized: Parquet conversion, prefixes, buffering, encryption, the Glue
tables against mes_domain.lake, the crawler, the workgroup and its named queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from lambdas.erp_plm_router.contract import EnvVar as RouterEnv
from lambdas.lake_flattener.contract import STREAM_TABLES, EnvVar
from mes_domain import lake
from mes_domain.enterprise import EventSource
from stacks import datalake_queries
from stacks.constructs.lake_athena import BYTES_SCANNED_CUTOFF, MIN_BYTES_SCANNED_CUTOFF
from stacks.constructs.lake_delivery import EVENT_TABLES, partition_query
from stacks.constructs.lake_storage import RESULTS_EXPIRE_DAYS
from tests.stacks.test_cfn_lint import lint

# Firehose's format conversion needs a buffer of at least 64 MiB; the API allows at most 128.
MIN_CONVERSION_BUFFER_MB, MAX_BUFFER_MB = 64, 128


@pytest.fixture(scope="module")
def template(synthesized) -> Template:
    stacks, _ = synthesized
    return Template.from_stack(stacks.datalake)


@pytest.fixture(scope="module")
def resources(template) -> dict:
    return template.to_json()["Resources"]


def of_type(resources: dict, kind: str) -> dict:
    return {key: value for key, value in resources.items() if value["Type"] == kind}


def streams(resources: dict) -> dict[str, dict]:
    """Each delivery stream's S3 destination, by the lake table it converts to."""
    found = {}
    for stream in of_type(resources, "AWS::KinesisFirehose::DeliveryStream").values():
        destination = stream["Properties"]["ExtendedS3DestinationConfiguration"]
        table = destination["DataFormatConversionConfiguration"]["SchemaConfiguration"]
        found[table["TableName"]] = stream["Properties"]
    return found


def test_one_stream_per_lake_table_converting_json_to_parquet(resources, demo_plant):
    by_table = streams(resources)
    assert sorted(by_table) == sorted(t.name for t in lake.TABLES)
    for name, stream in by_table.items():
        destination = stream["ExtendedS3DestinationConfiguration"]
        conversion = destination["DataFormatConversionConfiguration"]
        assert conversion["Enabled"] is True
        assert conversion["InputFormatConfiguration"] == {"Deserializer": {"OpenXJsonSerDe": {}}}
        serializer = conversion["OutputFormatConfiguration"]["Serializer"]
        # GZIP: the best ratio of the SerDe's codecs (UNCOMPRESSED, SNAPPY, GZIP).
        assert serializer == {
            "ParquetSerDe": {"Compression": "GZIP", "EnableDictionaryCompression": True}
        }
        schema = conversion["SchemaConfiguration"]
        assert schema["DatabaseName"] == lake.database_name(demo_plant.deployment.stack_prefix)
        assert schema["VersionId"] == "LATEST"
        assert destination["CompressionFormat"] == "UNCOMPRESSED", name  # Parquet compresses
        size = destination["BufferingHints"]["SizeInMBs"]
        assert MIN_CONVERSION_BUFFER_MB <= size <= MAX_BUFFER_MB, name
        assert 60 <= destination["BufferingHints"]["IntervalInSeconds"] <= 900, name


def test_prefixes_are_table_site_and_day_with_typed_error_prefixes(resources):
    for name, stream in streams(resources).items():
        destination = stream["ExtendedS3DestinationConfiguration"]
        source = "partitionKeyFromLambda" if name in STREAM_TABLES else "partitionKeyFromQuery"
        assert destination["Prefix"] == (f"{name}/site=!{{{source}:site}}/dt=!{{{source}:dt}}/")
        assert destination["ErrorOutputPrefix"].startswith(
            f"errors/{name}/!{{firehose:error-output-type}}/"
        )
        assert destination["DynamicPartitioningConfiguration"]["Enabled"] is True
        assert destination["CloudWatchLoggingOptions"]["Enabled"] is True


def test_the_telemetry_stream_reads_kinesis_through_the_flattener(resources):
    by_table = streams(resources)
    functions = of_type(resources, "AWS::Lambda::Function")
    for name in STREAM_TABLES:
        stream = by_table[name]
        assert stream["DeliveryStreamType"] == "KinesisStreamAsSource"
        assert "DeliveryStreamEncryptionConfigurationInput" not in stream
        source = stream["KinesisStreamSourceConfiguration"]["KinesisStreamARN"]
        assert "TelemetryStream" in json.dumps(source)
        (processor,) = stream["ExtendedS3DestinationConfiguration"]["ProcessingConfiguration"][
            "Processors"
        ]
        parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
        assert processor["Type"] == "Lambda" and parameters["BufferSizeInMBs"] == "1"
        function_id = parameters["LambdaArn"]["Fn::GetAtt"][0]
        function = functions[function_id]["Properties"]
        assert function["Handler"] == "lambdas.lake_flattener.handler.lambda_handler"
        assert function["Environment"]["Variables"][EnvVar.LAKE_TABLE] == name


def test_direct_put_streams_extract_site_and_day_with_jq_and_are_encrypted(resources):
    by_table = streams(resources)
    for name in EVENT_TABLES:
        stream = by_table[name]
        assert stream["DeliveryStreamType"] == "DirectPut"
        encryption = stream["DeliveryStreamEncryptionConfigurationInput"]
        assert encryption["KeyType"] == "CUSTOMER_MANAGED_CMK"
        assert "DataKey" in json.dumps(encryption["KeyARN"])
        (processor,) = stream["ExtendedS3DestinationConfiguration"]["ProcessingConfiguration"][
            "Processors"
        ]
        parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
        assert processor["Type"] == "MetadataExtraction"
        assert parameters["JsonParsingEngine"] == "JQ-1.6"
        assert parameters["MetadataExtractionQuery"] == partition_query(lake.TABLES_BY_NAME[name])


@pytest.mark.parametrize("name", list(EVENT_TABLES))
def test_the_jq_partition_query_gives_a_rows_site_and_utc_day(name, tmp_path):
    """Run by jq 1.6 itself, as Firehose does (it is the Firehose parser's version)."""
    import shutil
    import subprocess

    jq = shutil.which("jq")
    assert jq, "jq is needed to check the partition queries"
    table = lake.TABLES_BY_NAME[name]
    row = {"site": "berlin", table.time_column: 1_764_547_199_999}  # 2025-11-30T23:59:59.999Z
    answer = subprocess.run(
        [jq, "-c", partition_query(table)],
        input=json.dumps(row),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(answer.stdout) == {"site": "berlin", "dt": "2025-11-30"}


def test_platform_events_reach_their_tables_as_their_detail(resources):
    rules = of_type(resources, "AWS::Events::Rule").values()
    by_type = {r["Properties"]["EventPattern"]["detail-type"][0]: r["Properties"] for r in rules}
    assert set(EVENT_TABLES) == {
        "nonconformances",
        "production_confirmations",
        "order_status_changes",
        "inspection_results",
        "kpi_results",
        "production_orders",
    }
    stream_ids = {
        name: key
        for key, stream in of_type(resources, "AWS::KinesisFirehose::DeliveryStream").items()
        for name in [stream["Properties"]["ExtendedS3DestinationConfiguration"]]
        for name in [name["DataFormatConversionConfiguration"]["SchemaConfiguration"]["TableName"]]
    }
    policies = of_type(resources, "AWS::IAM::Policy").values()
    for name, (source, detail_type) in EVENT_TABLES.items():
        rule = by_type[detail_type]
        assert rule["EventPattern"]["source"] == [str(source)]
        (target,) = rule["Targets"]
        # Each rule feeds its own table's stream, and its role may put to that stream only.
        assert target["Arn"] == {"Fn::GetAtt": [stream_ids[name], "Arn"]}, name
        role_id = target["RoleArn"]["Fn::GetAtt"][0]
        (policy,) = [p for p in policies if {"Ref": role_id} in p["Properties"]["Roles"]]
        (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert sorted(statement["Action"]) == ["firehose:PutRecord", "firehose:PutRecordBatch"]
        assert statement["Resource"] == {"Fn::GetAtt": [stream_ids[name], "Arn"]}, name
        assert target["InputPath"] == "$.detail"
        assert target["DeadLetterConfig"]["Arn"]
        assert "EventBusName" in rule


def test_only_the_lakes_rules_match_the_lakes_own_event_sources(synthesized):
    """mes.erp, mes.inspection and mes.kpi events are lake rows: no other rule of the app (the
    enterprise rules send mes.enterprise and mes.quality events to ERP, PLM and files) may
    take them, or ERP would get its own orders back."""
    stacks, assembly = synthesized
    lake_sources = {str(source) for source, _ in EVENT_TABLES.values()} - {
        str(source) for source in EventSource
    }
    assert lake_sources == {"mes.erp", "mes.inspection", "mes.kpi"}
    matched_by = {}
    for artifact in assembly.stacks:
        for key, resource in artifact.template["Resources"].items():
            if resource["Type"] != "AWS::Events::Rule":
                continue
            pattern = resource["Properties"].get("EventPattern", {})
            sources = pattern.get("source")
            assert sources is not None or "ScheduleExpression" in resource["Properties"], key
            for source in set(sources or ()) & lake_sources:
                matched_by.setdefault(source, []).append((artifact.stack_name, key))
    datalake = stacks.datalake.stack_name
    assert {source: [stack for stack, _ in found] for source, found in matched_by.items()} == {
        source: [datalake] for source in lake_sources
    }


def test_the_router_may_put_events_on_the_platform_bus_only(synthesized):
    stacks, _ = synthesized
    resources = Template.from_stack(stacks.enterprise).to_json()["Resources"]
    functions = of_type(resources, "AWS::Lambda::Function").values()
    routers = [
        f["Properties"]
        for f in functions
        if f["Properties"]["Handler"].startswith("lambdas.erp_plm_router.")
    ]
    assert len(routers) == 2  # files and API
    policies = of_type(resources, "AWS::IAM::Policy").values()
    for router in routers:
        bus_name = router["Environment"]["Variables"][RouterEnv.EVENT_BUS_NAME]
        role_id = router["Role"]["Fn::GetAtt"][0]
        statements = [
            statement
            for policy in policies
            if {"Ref": role_id} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if "events:PutEvents" in json.dumps(statement["Action"])
        ]
        (statement,) = statements
        assert statement["Action"] == "events:PutEvents"
        # One resource, the platform's bus, whose name the function is given (both imported
        # from the platform stack's outputs of that bus).
        bus_id = stacks.platform.get_logical_id(stacks.platform.event_bus.node.default_child)
        for value, reference in (
            (statement["Resource"], f"FnGetAtt{bus_id}Arn"),
            (bus_name, f"Ref{bus_id}"),
        ):
            output = value["Fn::GetStackOutput"]
            assert output["StackName"] == stacks.platform.stack_name
            assert output["OutputName"].startswith(f"PublishOutput{reference}"), output


def test_every_stream_backs_its_sources_up_raw_once(resources):
    backups = {
        name: stream["ExtendedS3DestinationConfiguration"].get("S3BackupConfiguration")
        for name, stream in streams(resources).items()
    }
    # The three telemetry-stream readers see the same records: one backup of them is enough.
    assert backups["telemetry"]["Prefix"] == "kinesis/telemetry-stream/dt=!{timestamp:yyyy-MM-dd}/"
    assert backups["state_changes"] is None and backups["part_counts"] is None
    for name in EVENT_TABLES:
        assert backups[name]["Prefix"] == f"{name}/dt=!{{timestamp:yyyy-MM-dd}}/"
        assert backups[name]["CompressionFormat"] == "GZIP"
        assert "RawBucket" in json.dumps(backups[name]["BucketARN"])


def test_glue_tables_are_the_lake_tables_with_projection(resources, demo_plant):
    tables = {
        t["Properties"]["TableInput"]["Name"]: t["Properties"]["TableInput"]
        for t in of_type(resources, "AWS::Glue::Table").values()
    }
    assert sorted(tables) == sorted(t.name for t in lake.TABLES)
    sites = ",".join(site.id for site in demo_plant.sites)
    for table in lake.TABLES:
        declared = tables[table.name]
        columns = declared["StorageDescriptor"]["Columns"]
        assert [(c["Name"], c["Type"]) for c in columns] == [
            (c.name, c.type) for c in table.columns
        ]
        assert [(c["Name"], c["Type"]) for c in declared["PartitionKeys"]] == [
            ("site", "string"),
            ("dt", "string"),
        ]
        assert declared["TableType"] == "EXTERNAL_TABLE"
        serde = declared["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
        assert serde == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
        parameters = declared["Parameters"]
        assert parameters["projection.enabled"] == "true"
        assert parameters["projection.site.type"] == "enum"
        assert parameters["projection.site.values"] == sites
        assert parameters["projection.dt.type"] == "date"
        assert parameters["projection.dt.format"] == "yyyy-MM-dd"
        assert parameters["projection.dt.range"].endswith(",NOW+1DAYS")
        template = json.dumps(parameters["storage.location.template"])
        assert f"/{table.name}/site=${{site}}/dt=${{dt}}/" in template


def test_buckets_are_encrypted_logged_and_expire_what_they_should(template, demo_plant):
    buckets = template.find_resources("AWS::S3::Bucket")
    assert len(buckets) == 3
    for bucket in buckets.values():
        properties = bucket["Properties"]
        (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert properties["LoggingConfiguration"]["DestinationBucketName"]
        rules = properties["LifecycleConfiguration"]["Rules"]
        assert any(r.get("AbortIncompleteMultipartUpload") for r in rules)
    expirations = sorted(
        r["ExpirationInDays"]
        for bucket in buckets.values()
        for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        if "ExpirationInDays" in r
    )
    assert expirations == sorted([demo_plant.retention.datalake_raw_days, RESULTS_EXPIRE_DAYS])
    for policy in template.find_resources("AWS::S3::BucketPolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_the_workgroup_enforces_encrypted_results_and_a_scan_cutoff(template, demo_plant):
    assert BYTES_SCANNED_CUTOFF >= MIN_BYTES_SCANNED_CUTOFF == 10_000_000
    template.has_resource_properties(
        "AWS::Athena::WorkGroup",
        {
            "Name": lake.workgroup_name(demo_plant.deployment.stack_prefix),
            "WorkGroupConfiguration": {
                "EnforceWorkGroupConfiguration": True,
                "PublishCloudWatchMetricsEnabled": True,
                "BytesScannedCutoffPerQuery": BYTES_SCANNED_CUTOFF,
                "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"},
                "ResultConfiguration": {
                    "OutputLocation": Match.any_value(),
                    "EncryptionConfiguration": {
                        "EncryptionOption": "SSE_KMS",
                        "KmsKey": Match.any_value(),
                    },
                },
            },
        },
    )


def test_each_named_query_is_its_rendered_sql_file(template, demo_plant):
    database = lake.database_name(demo_plant.deployment.stack_prefix)
    expected = datalake_queries.named_queries(database=database, plant=demo_plant)
    queries = {
        q["Properties"]["Name"]: q["Properties"]
        for q in template.find_resources("AWS::Athena::NamedQuery").values()
    }
    assert sorted(queries) == sorted(datalake_queries.NAMED_QUERIES)
    for name, query in queries.items():
        assert query["QueryString"] == expected[name]
        assert "${" not in query["QueryString"]
        assert query["Database"] == database
        assert query["Description"] == datalake_queries.description(name)
        assert query["WorkGroup"] == {"Ref": Match.any_value()} or query["WorkGroup"]


def test_the_crawler_reads_only_the_landing_zone_with_a_security_configuration(template):
    (crawler,) = template.find_resources("AWS::Glue::Crawler").values()
    properties = crawler["Properties"]
    (target,) = properties["Targets"]["S3Targets"]
    assert json.dumps(target["Path"]).endswith('/inbound/"]]}')
    assert properties["Schedule"]["ScheduleExpression"].startswith("cron(")
    assert properties["CrawlerSecurityConfiguration"]
    (security,) = template.find_resources("AWS::Glue::SecurityConfiguration").values()
    encryption = security["Properties"]["EncryptionConfiguration"]
    assert encryption["CloudWatchEncryption"]["CloudWatchEncryptionMode"] == "SSE-KMS"
    assert encryption["JobBookmarksEncryption"]["JobBookmarksEncryptionMode"] == "CSE-KMS"
    assert encryption["S3Encryptions"][0]["S3EncryptionMode"] == "SSE-KMS"


def test_each_delivery_role_writes_only_its_tables_prefixes(resources):
    policies = of_type(resources, "AWS::IAM::Policy")
    for name, stream in streams(resources).items():
        role_id = stream["ExtendedS3DestinationConfiguration"]["RoleARN"]["Fn::GetAtt"][0]
        (policy,) = [p for p in policies.values() if {"Ref": role_id} in p["Properties"]["Roles"]]
        writes = [
            s
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if "s3:PutObject" in s["Action"]
        ]
        (statement,) = writes
        suffixes = [r["Fn::Join"][1][1] for r in statement["Resource"]]
        assert all(
            s.startswith((f"/{name}/", f"/errors/{name}/", "/kinesis/telemetry-stream/"))
            or s.startswith("/errors/kinesis/telemetry-stream/")
            for s in suffixes
        ), suffixes


def test_the_stack_is_cfn_lint_clean(synthesized):
    stacks, assembly = synthesized
    template = Path(assembly.directory) / stacks.datalake.template_file
    result = lint([template])
    findings = [line for line in result.stdout.splitlines() if ":E" in line or ":W" in line]
    assert findings == [] and result.returncode in (0, 8), result.stdout + result.stderr


def test_the_readme_queries_the_workgroup_and_database_the_stack_makes(template, demo_plant):
    from tests.unit.test_readme import section

    prefix = demo_plant.deployment.stack_prefix
    text = section("Querying the data lake after deploy")
    template.has_resource_properties("AWS::Athena::WorkGroup", {"Name": "MesDemo-lake"})
    assert lake.workgroup_name(prefix) == "MesDemo-lake" and "--work-group MesDemo-lake" in text
    assert f"Database={lake.database_name(prefix)}" in text
    assert all(f"`{table.name}`" in text for table in lake.TABLES)
    assert f"{BYTES_SCANNED_CUTOFF // 1024**3} GiB" in text
