"""Step 7 with the Greengrass API stubbed: the station's model group deployment revised to the
new model; the line and camera station groups (the EdgeFleet stack's) never touched.

A deployment to a thing group replaces that group's previous one
(docs.aws.amazon.com/greengrass/v2/developerguide/revise-deployments.html): two writers on one
group would each silently undo the other. So the stack deploys to the camera station's group
and the pipeline to its model group only; the camera gateway is in both (mes_domain.fleet).
"""

import json
from datetime import UTC, datetime

import pytest
from botocore.stub import ANY

from lambdas.model_pipeline import deploy_model
from lambdas.model_pipeline.greengrass import deployment_request
from lambdas.model_pipeline.layout import thing_group_arn
from lambdas.model_pipeline.registry import InvalidTransition, ModelStatus
from mes_domain import edge_deployment as edge
from mes_domain import fleet
from mes_domain.naming import station_thing_group_name, thing_group_name
from mes_domain.plant import Plant
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.model_pipeline.conftest import (
    LINE,
    MODEL_COMPONENT,
    SITE,
    STATION,
    STATION_KEY,
    THING_GROUP_ARN_PREFIX,
    approved_model,
    sample_state,
)

STATION_GROUP = f"MesDemo-{SITE}-{LINE}:{STATION}"  # the stack's: QualityInspection
MODEL_GROUP = f"{STATION_GROUP}:models"  # the pipeline's
TARGET = THING_GROUP_ARN_PREFIX + MODEL_GROUP
STATION_TARGET = THING_GROUP_ARN_PREFIX + STATION_GROUP
LINE_TARGET = THING_GROUP_ARN_PREFIX + thing_group_name("MesDemo", SITE, LINE)
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
INSPECTION = edge.QUALITY_INSPECTION
RUNNING = {
    MODEL_COMPONENT: {"componentVersion": "1.0.1700000000", "runWith": {"posixUser": "ggc_user"}},
}
POLICIES = {
    "failureHandlingPolicy": "ROLLBACK",
    "componentUpdatePolicy": {"timeoutInSeconds": 60, "action": "NOTIFY_COMPONENTS"},
}
LISTING = {"targetArn": TARGET, "historyFilter": "LATEST_ONLY"}


def summary(deployment_id, status, day):
    return {
        "targetArn": TARGET,
        "deploymentId": deployment_id,
        "deploymentName": f"{MODEL_GROUP} model",
        "deploymentStatus": status,
        "creationTimestamp": datetime(2026, 11, day, tzinfo=UTC),
        "isLatestForTarget": True,
    }


def running(stubber, components=RUNNING):
    """The model group's latest live deployment runs ``components``."""
    stubber.add_response(
        "list_deployments",
        {"deployments": [summary("d-active", "ACTIVE", 10)], "nextToken": "page-2"},
        LISTING,
    )
    stubber.add_response(
        "list_deployments",
        {"deployments": [summary("d-cancelled", "CANCELED", 12)]},  # newer, but cancelled
        LISTING | {"nextToken": "page-2"},
    )
    stubber.add_response(
        "get_deployment",
        {
            "targetArn": TARGET,
            "deploymentId": "d-active",
            "deploymentName": f"{MODEL_GROUP} model",
            "components": components,
            "deploymentPolicies": POLICIES,
        },
        {"deploymentId": "d-active"},
    )


def deploy():
    return deploy_model.lambda_handler(STATE, LambdaContext())


def sent(calls, operation):
    return [params for name, params in calls if name == operation]


def test_the_release_goes_to_the_stations_model_group_with_the_model_alone(
    registry, greengrass, greengrass_calls
):
    stubber, _ = greengrass
    approved_model(registry, STATE)
    running(stubber)
    stubber.add_response(
        "create_deployment",
        {"deploymentId": "d-new"},
        {
            "targetArn": TARGET,
            "deploymentName": f"{MODEL_GROUP} model",
            "components": ANY,
            "deploymentPolicies": POLICIES,
            "clientToken": ANY,
        },
    )

    assert deploy() == {"deployment_id": "d-new"}

    (request,) = sent(greengrass_calls, "CreateDeployment")
    components = request["components"]
    assert set(components) == {MODEL_COMPONENT}
    # The new model, its configuration reset to the new version's defaults.
    assert components[MODEL_COMPONENT] == {
        "componentVersion": VERSION,
        "configurationUpdate": {"reset": [""]},
        "runWith": {"posixUser": "ggc_user"},
    }

    record = registry.get(STATION_KEY, VERSION)
    assert record.status is ModelStatus.DEPLOYED
    assert (record.deployment_id, record.component_arn) == ("d-new", COMPONENT_ARN)
    assert record.deployed_at


def test_the_stacks_groups_are_never_read_or_deployed_to(registry, greengrass, greengrass_calls):
    stubber, _ = greengrass
    approved_model(registry, STATE)
    running(stubber)
    stubber.add_response("create_deployment", {"deploymentId": "d-new"})

    deploy()

    targets = [params["targetArn"] for _, params in greengrass_calls if "targetArn" in params]
    assert targets and set(targets) == {TARGET}
    assert LINE_TARGET not in targets and STATION_TARGET not in targets
    created = json.dumps(sent(greengrass_calls, "CreateDeployment"))
    assert edge.DATA_COLLECTOR not in created and INSPECTION not in created


def test_the_first_model_of_a_station_deploys_it_alone_to_its_model_group(
    registry, greengrass, greengrass_calls
):
    stubber, _ = greengrass
    approved_model(registry, STATE)
    stubber.add_response("list_deployments", {"deployments": []}, LISTING)
    stubber.add_response("create_deployment", {"deploymentId": "d-first"})

    assert deploy() == {"deployment_id": "d-first"}

    (request,) = sent(greengrass_calls, "CreateDeployment")
    assert request["targetArn"] == TARGET
    assert request["components"] == {
        MODEL_COMPONENT: {"componentVersion": VERSION, "configurationUpdate": {"reset": [""]}}
    }


def test_a_model_component_the_station_does_not_use_is_not_released(registry, greengrass):
    approved_model(registry, STATE)
    state = STATE | {"component": STATE["component"] | {"component_name": "com.acme.other"}}

    # No stubbed response: any Greengrass call would fail the test.
    with pytest.raises(ValueError, match=MODEL_COMPONENT):
        deploy_model.lambda_handler(state, LambdaContext())


def test_a_rerun_after_the_model_was_deployed_changes_nothing(registry, greengrass):
    approved_model(registry, STATE, status=ModelStatus.DEPLOYED)

    # No stubbed response: any Greengrass call would fail the test.
    assert deploy() == {"deployment_id": "d-old"}


def test_a_model_that_is_not_approved_is_never_deployed(registry, greengrass):
    approved_model(registry, STATE, status=ModelStatus.TRAINED)

    with pytest.raises(InvalidTransition, match="from TRAINED to DEPLOYED"):
        deploy()

    assert registry.get(STATION_KEY, VERSION).status is ModelStatus.TRAINED


def _two_cameras(demo: Plant) -> Plant:
    """The demo plant with a second camera station on the camera line."""
    document = demo.model_dump(mode="json")
    line = next(li for li in document["sites"][0]["lines"] if li["id"] == LINE)
    camera = next(st for st in line["stations"] if st["id"] == STATION)
    line["stations"].append({**camera, "id": "vision-02"})
    return Plant.model_validate(document)


def test_each_camera_station_is_released_to_its_model_group_never_a_generated_target(
    demo_plant,
):
    plant = _two_cameras(demo_plant)
    versions = {edge.DATA_COLLECTOR: "1.0.0", edge.QUALITY_INSPECTION: "1.0.0"}
    document = edge.line_deployments(plant, SITE, LINE, versions)
    generated = {d["targetThingGroupName"] for d in document["deployments"]}
    line_group = thing_group_name("MesDemo", SITE, LINE)

    released = {
        thing_group_arn(THING_GROUP_ARN_PREFIX, "MesDemo", SITE, LINE, station)
        for station in ("vision-01", "vision-02")
    }

    cameras = generated - {line_group}
    assert cameras == {
        station_thing_group_name("MesDemo", SITE, LINE, s) for s in ("vision-01", "vision-02")
    }
    assert released == {THING_GROUP_ARN_PREFIX + g + fleet.MODEL_GROUP_SUFFIX for g in cameras}
    assert not released & {THING_GROUP_ARN_PREFIX + g for g in generated}


def test_a_retry_sends_the_same_idempotency_token(demo_plant):
    def request(model_version):
        generated = fleet.model_group_deployment(
            "MesDemo", SITE, LINE, STATION, MODEL_COMPONENT, model_version
        )
        return deployment_request(None, TARGET, generated, MODEL_COMPONENT)

    first, again, other = request(VERSION), request(VERSION), request("1.0.1795169999")

    assert first["clientToken"] == again["clientToken"] != other["clientToken"]
    assert len(first["clientToken"]) <= 64
