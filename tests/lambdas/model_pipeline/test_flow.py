"""The steps after training chained as the state machine chains them (each result stored under
its key), so their event and output shapes fit together."""

import json

import boto3
from botocore.stub import ANY, Stubber

from lambdas.model_pipeline import (
    deploy_model,
    evaluate_model,
    publish_component,
    register_model,
    request_approval,
)
from lambdas.model_pipeline.approval import decide
from lambdas.model_pipeline.registry import ModelStatus
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.model_pipeline.conftest import (
    REGION,
    STATION_KEY,
    THING_GROUP_ARN_PREFIX,
    sample_state,
)

GATEWAY = f"{THING_GROUP_ARN_PREFIX}MesDemo-berlin-body-line-1:vision-01:models"  # model group


def test_a_gated_model_goes_from_registration_to_the_line(registry, greengrass):
    gg, _ = greengrass
    state = sample_state()
    del state["evaluation"]
    state["training"]["card"]["validation"]["defect_recall"] = 0.9
    version = state["training"]["model_version"]

    state["evaluation"] = evaluate_model.lambda_handler(state, LambdaContext())
    state["registration"] = register_model.lambda_handler(state, LambdaContext())
    assert state["registration"] == {"status": "TRAINED"}

    token = "task-token-of-the-execution"
    wait = {"task_token": token, "model_version": version}
    wait |= {key: state[key] for key in ("site", "line", "station")}
    request_approval.lambda_handler(wait, LambdaContext())
    sfn = boto3.client("stepfunctions", region_name=REGION)
    with Stubber(sfn) as released:
        output = json.dumps({"approved_by": "jane"})
        released.add_response("send_task_success", {}, {"taskToken": token, "output": output})
        decide(registry, sfn, STATION_KEY, version, "approve", "jane", "checked on 40 parts")

    arn = f"arn:aws:greengrass:eu-central-1:123456789012:components:x:versions:{version}"
    gg.add_response(
        "create_component_version",
        {
            "arn": arn,
            "componentName": "x",
            "componentVersion": version,
            "creationTimestamp": "2026-11-20T10:30:00Z",
            "status": {"componentState": "DEPLOYABLE"},
        },
        {"inlineRecipe": ANY},
    )
    state["component"] = publish_component.lambda_handler(state, LambdaContext())
    # The station's model group has no deployment yet: its first model goes there alone (the
    # camera gateway's QualityInspection is the EdgeFleet stack's deployment, another group).
    gg.add_response(
        "list_deployments",
        {"deployments": []},
        {"targetArn": GATEWAY, "historyFilter": "LATEST_ONLY"},
    )
    gg.add_response(
        "create_deployment",
        {"deploymentId": "d-1"},
        {
            "targetArn": GATEWAY,
            "deploymentName": ANY,
            "components": ANY,
            "clientToken": ANY,
        },
    )
    state["deployment"] = deploy_model.lambda_handler(state, LambdaContext())

    assert state["deployment"] == {"deployment_id": "d-1"}
    record = registry.get(STATION_KEY, version)
    assert (record.status, record.approved_by) == (ModelStatus.DEPLOYED, "jane")
    assert record.component_arn == state["component"]["arn"] == arn
    json.dumps(state)  # the whole state stays JSON
