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
    assert {
        "events:PutEvents",
        "timestream:WriteRecords",  # part counts for the KPI engine
        "iotsitewise:BatchPutAssetPropertyValue",  # and for SiteWise
    } <= actions
    assert not any(a.endswith("*") and not a.startswith("kms:") for a in actions), actions
    assert "dynamodb:Scan" not in json.dumps(policy)


def test_the_platform_event_bus_is_kms_encrypted(platform_template):
    platform_template.has_resource_properties(
        "AWS::Events::EventBus",
        {"Name": "MesDemo-events", "KmsKeyIdentifier": Match.any_value()},
    )


def _definition(quality_template):
    (machine,) = quality_template.find_resources("AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "<token>" for p in parts)
    return json.loads(text), machine


def test_the_pipeline_runs_every_step_in_order_and_waits_for_the_expert(quality_template):
    definition, machine = _definition(quality_template)
    states = definition["States"]
    order, name = [], definition["StartAt"]
    while name in states and states[name]["Type"] == "Task":
        order.append(name)
        name = states[name].get("Next")
        if states.get(name, {}).get("Type") == "Choice":
            order.append(name)
            name = states[name]["Default"]
    assert order == [
        "Validate Dataset", "Train Model", "Evaluate Model", "Register Model",
        "Passed The Gate?", "Request Approval", "Publish Component", "Deploy Model",
    ]  # fmt: skip
    approval = states["Request Approval"]
    assert approval["Resource"].endswith(":lambda:invoke.waitForTaskToken")
    assert approval["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert approval["TimeoutSeconds"] == 7 * 24 * 3600
    caught = {
        error: catch["Next"]
        for state in states.values()
        for catch in state.get("Catch", [])
        for error in catch["ErrorEquals"]
    }
    assert caught == {
        "DatasetInvalid": "Dataset Invalid",
        "ModelRejected": "Rejected By Expert",
        "ComponentFailed": "Publish Failed",
    }
    gate = states["Passed The Gate?"]["Choices"][0]
    assert gate == {
        "Variable": "$.registration.status",
        "StringEquals": "REJECTED",
        "Next": "Quality Gate Failed",
    }
    properties = machine["Properties"]
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["LoggingConfiguration"]["Level"] == "ALL"


def _step_actions(quality_template, step):
    policies = quality_template.find_resources("AWS::IAM::Policy")
    (policy,) = [p for key, p in policies.items() if key.startswith(f"Pipeline{step}Role")]
    actions = set()
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        found = statement["Action"]
        actions.update([found] if isinstance(found, str) else found)
    return {a for a in actions if not a.startswith(("xray:", "logs:"))}


def test_each_step_holds_only_what_it_touches(quality_template):
    assert _step_actions(quality_template, "EvaluateModel") == set()
    train = _step_actions(quality_template, "TrainModel")
    assert not any(a.startswith(("dynamodb:", "greengrass:", "iot:")) for a in train)
    assert "s3:PutObject" in train
    register = _step_actions(quality_template, "RegisterModel")
    assert {a for a in register if a.startswith("dynamodb:")} == {
        "dynamodb:PutItem",
        "dynamodb:GetItem",
    }
    deploy = _step_actions(quality_template, "DeployModel")
    assert {"greengrass:CreateDeployment", "iot:CreateJob"} <= deploy
    assert not any(a.startswith("s3:") for a in deploy)
    publish = _step_actions(quality_template, "PublishComponent")
    assert "greengrass:CreateComponentVersion" in publish and "iot:CreateJob" not in publish


def test_training_runs_mes_vision_on_python_312_with_room_to_work(quality_template):
    quality_template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "lambdas.model_pipeline.train_model.lambda_handler",
            "Runtime": "python3.12",
            "MemorySize": 3008,
            "Timeout": 900,
        },
    )


def test_every_api_method_needs_a_cognito_user_and_bodies_are_validated(quality_template):
    methods = quality_template.find_resources("AWS::ApiGateway::Method")
    routed = [
        m["Properties"] for m in methods.values() if m["Properties"]["HttpMethod"] != "OPTIONS"
    ]
    assert len(routed) == 6
    for method in routed:
        assert method["AuthorizationType"] == "COGNITO_USER_POOLS"
        assert "RequestValidatorId" in method
    posts_with_models = [m for m in routed if m.get("RequestModels")]
    assert len(posts_with_models) == 2
    quality_template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator",
        {"ValidateRequestBody": True, "ValidateRequestParameters": True},
    )
    models = quality_template.find_resources("AWS::ApiGateway::Model")
    schemas = {m["Properties"]["Name"]: m["Properties"]["Schema"] for m in models.values()}
    assert schemas["DecisionRequest"]["properties"]["decision"]["enum"] == ["approve", "reject"]
    assert schemas["UploadRequest"]["required"] == ["kind", "files"]
    quality_template.has_resource_properties(
        "AWS::Cognito::UserPool",
        {
            "MfaConfiguration": "ON",
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
        },
    )
    quality_template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "TracingEnabled": True,
            "MethodSettings": Match.array_with(
                [Match.object_like({"ThrottlingRateLimit": 20, "ThrottlingBurstLimit": 40})]
            ),
        },
    )
