"""Step 7 with the Greengrass API stubbed: the line's deployment revised or created."""

from datetime import UTC, datetime

import pytest
from botocore.stub import ANY

from lambdas.model_pipeline import deploy_model
from lambdas.model_pipeline.registry import InvalidTransition, ModelStatus
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.model_pipeline.conftest import (
    MODEL_COMPONENT,
    STATION_KEY,
    THING_GROUP_ARN_PREFIX,
    approved_model,
    sample_state,
)

TARGET = THING_GROUP_ARN_PREFIX + "berlin-body-line-1"
BASE = sample_state()
VERSION = BASE["training"]["model_version"]
COMPONENT_ARN = (
    f"arn:aws:greengrass:eu-central-1:123456789012:components:{MODEL_COMPONENT}:versions:{VERSION}"
)
STATE = BASE | {
    "component": {
        "component_name": MODEL_COMPONENT,
        "component_version": VERSION,
        "arn": COMPONENT_ARN,
    }
}
INSPECTION = "com.acme.mes.QualityInspection"
OTHERS = {
    INSPECTION: {
        "componentVersion": "1.2.0",
        "configurationUpdate": {"merge": '{"cameraId": "cam-7"}'},
    },
    "aws.greengrass.Nucleus": {"componentVersion": "2.14.0"},
}
POLICIES = {
    "failureHandlingPolicy": "ROLLBACK",
    "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
}


def summary(deployment_id, status, day):
    return {
        "targetArn": TARGET,
        "deploymentId": deployment_id,
        "deploymentName": "MesDemo-berlin-body-line-1",
        "deploymentStatus": status,
        "creationTimestamp": datetime(2026, 11, day, tzinfo=UTC),
        "isLatestForTarget": True,
    }


def deploy():
    return deploy_model.lambda_handler(STATE, LambdaContext())


def test_the_current_deployment_is_revised_with_only_the_model_changed(registry, greengrass):
    stubber, _ = greengrass
    approved_model(registry, STATE)
    listing = {"targetArn": TARGET, "historyFilter": "LATEST_ONLY"}
    stubber.add_response(
        "list_deployments",
        {"deployments": [summary("d-active", "ACTIVE", 10)], "nextToken": "page-2"},
        listing,
    )
    stubber.add_response(
        "list_deployments",
        {"deployments": [summary("d-cancelled", "CANCELED", 12)]},  # newer, but cancelled
        listing | {"nextToken": "page-2"},
    )
    old_model = {"componentVersion": "1.0.1700000000", "runWith": {"posixUser": "ggc_user"}}
    stubber.add_response(
        "get_deployment",
        {
            "targetArn": TARGET,
            "deploymentId": "d-active",
            "deploymentName": "MesDemo-berlin-body-line-1",
            "components": OTHERS | {MODEL_COMPONENT: old_model},
            "deploymentPolicies": POLICIES,
        },
        {"deploymentId": "d-active"},
    )
    stubber.add_response(
        "create_deployment",
        {"deploymentId": "d-new"},
        {
            "targetArn": TARGET,
            "deploymentName": "MesDemo-berlin-body-line-1",
            "components": OTHERS
            | {
                MODEL_COMPONENT: {
                    "componentVersion": VERSION,
                    "configurationUpdate": {"reset": [""]},
                    "runWith": {"posixUser": "ggc_user"},
                }
            },
            "deploymentPolicies": POLICIES,
            "clientToken": ANY,
        },
    )

    assert deploy() == {"deployment_id": "d-new"}

    record = registry.get(STATION_KEY, VERSION)
    assert record.status is ModelStatus.DEPLOYED
    assert (record.deployment_id, record.component_arn) == ("d-new", COMPONENT_ARN)
    assert record.deployed_at


def test_a_line_without_a_deployment_gets_one_with_just_the_model(registry, greengrass):
    stubber, _ = greengrass
    approved_model(registry, STATE)
    stubber.add_response("list_deployments", {"deployments": []})
    stubber.add_response(
        "create_deployment",
        {"deploymentId": "d-first"},
        {
            "targetArn": TARGET,
            "deploymentName": "MesDemo-berlin-body-line-1 quality models",
            "components": {
                MODEL_COMPONENT: {
                    "componentVersion": VERSION,
                    "configurationUpdate": {"reset": [""]},
                }
            },
            "clientToken": ANY,
        },
    )

    assert deploy() == {"deployment_id": "d-first"}
    assert registry.get(STATION_KEY, VERSION).status is ModelStatus.DEPLOYED


def test_a_rerun_after_the_model_was_deployed_changes_nothing(registry, greengrass):
    approved_model(registry, STATE, status=ModelStatus.DEPLOYED)

    # No stubbed response: any Greengrass call would fail the test.
    assert deploy() == {"deployment_id": "d-old"}


def test_a_model_that_is_not_approved_is_never_deployed(registry, greengrass):
    approved_model(registry, STATE, status=ModelStatus.TRAINED)

    with pytest.raises(InvalidTransition, match="from TRAINED to DEPLOYED"):
        deploy()

    assert registry.get(STATION_KEY, VERSION).status is ModelStatus.TRAINED


def test_a_retry_sends_the_same_idempotency_token(greengrass):
    from lambdas.model_pipeline.greengrass import deployment_request

    first = deployment_request(None, TARGET, MODEL_COMPONENT, VERSION)
    again = deployment_request(None, TARGET, MODEL_COMPONENT, VERSION)
    other = deployment_request(None, TARGET, MODEL_COMPONENT, "1.0.1795169999")

    assert first["clientToken"] == again["clientToken"] != other["clientToken"]
    assert len(first["clientToken"]) <= 64
