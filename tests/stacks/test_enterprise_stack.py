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
    assert arrivals["VisibilityTimeout"] == 6 * 900  # six times the router's timeout


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
        "ProductionConfirmation", "OrderStatusChanged", "NonConformance", "InventoryAvailability",
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


def test_every_inbox_is_a_signed_keyed_and_validated_api_method(enterprise_template):
    from lambdas.erp_plm_router.documents import INBOXES

    methods = [
        m["Properties"]
        for m in enterprise_template.find_resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] != "OPTIONS"
    ]
    assert len(methods) == sum(len(types) for types in INBOXES.values())
    for method in methods:
        assert method["HttpMethod"] == "POST"
        assert method["AuthorizationType"] == "AWS_IAM" and method["ApiKeyRequired"] is True
        assert "RequestValidatorId" in method and "application/json" in method["RequestModels"]
    schemas = {
        m["Properties"]["Name"]: m["Properties"]["Schema"]
        for m in enterprise_template.find_resources("AWS::ApiGateway::Model").values()
    }
    assert len(schemas) == len(methods)
    assert "ErpProductionOrder" in schemas and "PlmRouting" in schemas
    enterprise_template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan", {"Throttle": {"RateLimit": 50, "BurstLimit": 100}}
    )
    enterprise_template.resource_count_is("AWS::ApiGateway::ApiKey", 2)


def _actions(template, prefix):
    policies = template.find_resources("AWS::IAM::Policy")
    (policy,) = [p for key, p in policies.items() if key.startswith(prefix)]
    actions = set()
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        found = statement["Action"]
        actions.update([found] if isinstance(found, str) else found)
    return actions, json.dumps(policy)


def test_the_file_router_reads_inbound_and_writes_only_archive_and_quarantine(enterprise_template):
    (mapping,) = enterprise_template.find_resources("AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["BatchSize"] == 5
    actions, text = _actions(enterprise_template, "RouterFilesRole")
    assert {"s3:PutObject", "dynamodb:BatchGetItem", "dynamodb:PutItem"} <= actions
    assert not {"dynamodb:Scan", "dynamodb:DeleteTable", "s3:DeleteObject"} & actions
    assert "/inbound/*" in text and "/archive/*" in text and "/quarantine/*" in text
    api_actions, api_text = _actions(enterprise_template, "RouterDocumentsRole")
    assert not any(a.startswith("s3:") for a in api_actions)  # the API never touches files


# What Firehose needs of an S3 destination ("Grant Firehose access to an Amazon S3
# destination", https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html).
FIREHOSE_S3_ACTIONS = {
    "s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket",
    "s3:ListBucketMultipartUploads", "s3:PutObject",
}  # fmt: skip


def _render(value):
    """A policy resource as cdk-nag names it in findings (``<Logical.Arn>/path``)."""
    if isinstance(value, str):
        return value
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(part) for part in parts)
    return json.dumps(value)


def _statements(template, logical_id):
    statements = template["Resources"][logical_id]["Properties"]["PolicyDocument"]["Statement"]
    for statement in statements:
        actions, resources = statement["Action"], statement["Resource"]
        yield (
            [actions] if isinstance(actions, str) else actions,
            [_render(r) for r in (resources if isinstance(resources, list) else [resources])],
            statement.get("Condition"),
        )


def _export_policy(enterprise_template):
    template = enterprise_template.to_json()
    (stream,) = enterprise_template.find_resources("AWS::KinesisFirehose::DeliveryStream").values()
    role = stream["Properties"]["ExtendedS3DestinationConfiguration"]["RoleARN"]["Fn::GetAtt"][0]
    policies = [
        key
        for key, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Policy"
        and {"Ref": role} in resource["Properties"]["Roles"]
    ]
    return template, stream, policies


def test_firehose_may_only_write_its_files_under_exports(enterprise_template):
    template, stream, policies = _export_policy(enterprise_template)

    (policy,) = policies  # no second (default) policy with the destination's bucket-wide grant
    assert policy in stream["DependsOn"]
    bucket = "<StorageExchangeBucket85F6A4AE.Arn>"
    s3_grants = {}
    for actions, resources, condition in _statements(template, policy):
        for action in actions:
            assert "*" not in action and "Delete" not in action, action
            if action.startswith("s3:"):
                s3_grants[action] = resources
            elif action.startswith("kms:"):
                assert action in {"kms:GenerateDataKey", "kms:Decrypt"}
                assert condition["StringEquals"]["kms:EncryptionContext:aws:s3:arn"] == {
                    "Fn::GetAtt": ["StorageExchangeBucket85F6A4AE", "Arn"]
                }
                assert "kms:ViaService" in condition["StringEquals"]
            else:
                assert action == "logs:PutLogEvents"
    assert set(s3_grants) == FIREHOSE_S3_ACTIONS
    objects = sorted([f"{bucket}/export-errors/*", f"{bucket}/exports/*"])
    for action in ("s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"):
        assert sorted(s3_grants[action]) == objects
    for action in ("s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"):
        assert s3_grants[action] == [bucket]
    destination = stream["Properties"]["ExtendedS3DestinationConfiguration"]
    assert destination["Prefix"].startswith("exports/")
    assert destination["ErrorOutputPrefix"].startswith("export-errors/")


def test_the_export_log_group_is_encrypted_with_the_logs_key(enterprise_template):
    template, stream, _ = _export_policy(enterprise_template)
    logging = stream["Properties"]["ExtendedS3DestinationConfiguration"]["CloudWatchLoggingOptions"]
    log_group = template["Resources"][logging["LogGroupName"]["Ref"]]["Properties"]

    assert "LogsKey" in json.dumps(log_group["KmsKeyId"])
    for group in enterprise_template.find_resources("AWS::Logs::LogGroup").values():
        assert "LogsKey" in json.dumps(group["Properties"]["KmsKeyId"])


def test_the_file_router_lists_nothing_and_reads_only_inbound(enterprise_template):
    actions, text = _actions(enterprise_template, "RouterFilesRole")

    assert not {a for a in actions if a.startswith(("s3:List", "s3:GetBucket"))}
    assert "s3:GetObject*" in actions
    template = enterprise_template.to_json()
    (policy,) = [k for k in template["Resources"] if k.startswith("RouterFilesRoleDefaultPolicy")]
    reads = [r for a, r, _ in _statements(template, policy) if "s3:GetObject*" in a]
    assert reads == [["<StorageExchangeBucket85F6A4AE.Arn>/inbound/*"]]


def test_every_outbound_event_reaches_erp_or_plm():
    from mes_domain.enterprise import OUTBOUND_EVENTS
    from stacks.constructs.enterprise_outbound import MES_SOURCES, TO_ERP, TO_PLM

    for model, route in OUTBOUND_EVENTS.items():
        assert route.source.value in MES_SOURCES, model.__name__
        assert route.detail_type in TO_ERP + TO_PLM, model.__name__
