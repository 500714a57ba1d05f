"""Step 7 with the Greengrass API stubbed: the camera station's gateway deployment revised to
the generated camera gateway deployment with the new model; the line's group never touched.

A deployment to a thing group replaces that group's previous one
(docs.aws.amazon.com/greengrass/v2/developerguide/revise-deployments.html): a release to the
line's group would remove the line gateway's DataCollector, and one without QualityInspection
would remove it from the camera gateway.
"""

import json
from datetime import UTC, datetime

import pytest
from botocore.stub import ANY

from lambdas.model_pipeline import deploy_model
from lambdas.model_pipeline.errors import CameraGatewayNotDeployed
from lambdas.model_pipeline.greengrass import deployment_request
from lambdas.model_pipeline.layout import thing_group_arn
from lambdas.model_pipeline.registry import InvalidTransition, ModelStatus
from mes_domain import edge_deployment as edge
from mes_domain.naming import thing_group_name
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

STATION_GROUP = f"MesDemo-{SITE}-{LINE}:{STATION}"  # the group the README documents
TARGET = THING_GROUP_ARN_PREFIX + STATION_GROUP
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
    INSPECTION: {
        "componentVersion": "1.2.0",
        "configurationUpdate": {"merge": '{"station": {"station": "stale"}}'},
        "runWith": {"posixUser": "mes-vision"},
    },
    "aws.greengrass.Nucleus": {"componentVersion": "2.14.0"},
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
        "deploymentName": f"{STATION_GROUP} camera gateway",
        "deploymentStatus": status,
        "creationTimestamp": datetime(2026, 11, day, tzinfo=UTC),
        "isLatestForTarget": True,
    }


def running(stubber, components=RUNNING):
    """The station group's latest live deployment runs ``components``."""
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
            "deploymentName": f"{STATION_GROUP} camera gateway",
            "components": components,
            "deploymentPolicies": POLICIES,
        },
        {"deploymentId": "d-active"},
    )


def deploy():
    return deploy_model.lambda_handler(STATE, LambdaContext())


def sent(calls, operation):
    return [params for name, params in calls if name == operation]


def test_the_release_goes_to_the_camera_stations_group_with_its_whole_gateway(
    registry, greengrass, greengrass_calls, demo_plant
):
    stubber, _ = greengrass
    approved_model(registry, STATE)
    running(stubber)
    stubber.add_response(
        "create_deployment",
        {"deploymentId": "d-new"},
        {
            "targetArn": TARGET,
            "deploymentName": f"{STATION_GROUP} camera gateway",
            "components": ANY,
            "deploymentPolicies": POLICIES,
            "clientToken": ANY,
        },
    )

    assert deploy() == {"deployment_id": "d-new"}

    (request,) = sent(greengrass_calls, "CreateDeployment")
    components = request["components"]
    assert set(components) == {INSPECTION, MODEL_COMPONENT, "aws.greengrass.Nucleus"}
    # QualityInspection stays, at the version the gateway runs, configured for this station
    # from the plant config (the stale merge is replaced), with its runWith.
    inspection = components[INSPECTION]
    assert inspection["componentVersion"] == "1.2.0"
    assert inspection["runWith"] == {"posixUser": "mes-vision"}
    config = json.loads(inspection["configurationUpdate"]["merge"])
    assert config["station"] == {"site": SITE, "line": LINE, "station": STATION}
    assert config["model"] == {"componentName": MODEL_COMPONENT}
    ref = demo_plant.station(SITE, LINE, STATION)
    assert config == edge.quality_inspection_configuration(
        demo_plant, ref.site, ref.line, ref.station
    )
    # The new model, its configuration reset to the new version's defaults.
    assert components[MODEL_COMPONENT] == {
        "componentVersion": VERSION,
        "configurationUpdate": {"reset": [""]},
        "runWith": {"posixUser": "ggc_user"},
    }
    assert components["aws.greengrass.Nucleus"] == {"componentVersion": "2.14.0"}

    record = registry.get(STATION_KEY, VERSION)
    assert record.status is ModelStatus.DEPLOYED
    assert (record.deployment_id, record.component_arn) == ("d-new", COMPONENT_ARN)
    assert record.deployed_at


def test_the_lines_group_is_never_read_or_deployed_to(registry, greengrass, greengrass_calls):
    stubber, _ = greengrass
    approved_model(registry, STATE)
    running(stubber)
    stubber.add_response("create_deployment", {"deploymentId": "d-new"})

    deploy()

    targets = [params["targetArn"] for _, params in greengrass_calls if "targetArn" in params]
    assert targets and set(targets) == {TARGET} and LINE_TARGET not in targets
    assert edge.DATA_COLLECTOR not in json.dumps(sent(greengrass_calls, "CreateDeployment"))


@pytest.mark.parametrize(
    "components",
    [None, {MODEL_COMPONENT: {"componentVersion": "1.0.1700000000"}}],
    ids=["no deployment", "no QualityInspection"],
)
def test_a_gateway_not_running_quality_inspection_gets_no_model(
    registry, greengrass, greengrass_calls, components
):
    stubber, _ = greengrass
    approved_model(registry, STATE)
    if components is None:
        stubber.add_response("list_deployments", {"deployments": []}, LISTING)
    else:
        running(stubber, components)

    # A deployment of just the model would remove QualityInspection from the device.
    with pytest.raises(CameraGatewayNotDeployed, match=STATION_GROUP):
        deploy()

    assert not sent(greengrass_calls, "CreateDeployment")
    assert registry.get(STATION_KEY, VERSION).status is ModelStatus.APPROVED


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


def test_each_camera_station_is_released_to_the_group_its_generated_deployment_targets(
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

    assert released == {THING_GROUP_ARN_PREFIX + g for g in generated - {line_group}}
    assert len(released) == 2 and THING_GROUP_ARN_PREFIX + line_group not in released


def test_a_retry_sends_the_same_idempotency_token(demo_plant):
    ref = demo_plant.station(SITE, LINE, STATION)

    def request(model_version):
        generated = edge.camera_gateway_deployment(
            demo_plant, ref.site, ref.line, ref.station, "1.2.0", model_version
        )
        return deployment_request(None, TARGET, generated, MODEL_COMPONENT)

    first, again, other = request(VERSION), request(VERSION), request("1.0.1795169999")

    assert first["clientToken"] == again["clientToken"] != other["clientToken"]
    assert len(first["clientToken"]) <= 64
