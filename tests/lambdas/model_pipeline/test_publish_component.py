"""Step 6 with the Greengrass API stubbed: the recipe sent, idempotence, and the wait."""

import json
from datetime import UTC, datetime

import pytest
from botocore.stub import ANY

from lambdas.model_pipeline import greengrass as greengrass_module
from lambdas.model_pipeline import publish_component
from lambdas.model_pipeline.errors import ComponentFailed, ComponentNotReady
from lambdas.model_pipeline.registry import InvalidTransition, ModelStatus
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.model_pipeline.conftest import (
    MODEL_BUCKET,
    MODEL_COMPONENT,
    STATION_KEY,
    approved_model,
    sample_state,
)

STATE = sample_state()
VERSION = STATE["training"]["model_version"]
PREFIX = STATE["training"]["s3_prefix"]
ARN = (
    f"arn:aws:greengrass:eu-central-1:123456789012:components:{MODEL_COMPONENT}:versions:{VERSION}"
)
CREATED = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


def created(state, message=None, errors=None):
    status = {"componentState": state}
    if message:
        status["message"] = message
    if errors:
        status["errors"] = errors
    return {
        "arn": ARN,
        "componentName": MODEL_COMPONENT,
        "componentVersion": VERSION,
        "creationTimestamp": CREATED,
        "status": status,
    }


def described(state):
    return {"arn": ARN, "status": {"componentState": state}}


@pytest.fixture
def sent_recipes(greengrass_client):
    """The recipes actually sent (the Stubber only compares them)."""
    recipes = []

    def capture(params, **kwargs):
        recipes.append(json.loads(params["inlineRecipe"]))

    event = "provide-client-params.greengrassv2.CreateComponentVersion"
    greengrass_client.meta.events.register(event, capture)
    yield recipes
    greengrass_client.meta.events.unregister(event, capture)


def publish():
    return publish_component.lambda_handler(STATE, LambdaContext())


def test_the_approved_model_becomes_its_stations_model_component(
    registry, greengrass, sent_recipes
):
    stubber, pauses = greengrass
    approved_model(registry, STATE)
    stubber.add_response("create_component_version", created("REQUESTED"), {"inlineRecipe": ANY})
    stubber.add_response("describe_component", described("INITIATED"), {"arn": ARN})
    stubber.add_response("describe_component", described("DEPLOYABLE"), {"arn": ARN})

    result = publish()

    assert result == {"component_name": MODEL_COMPONENT, "component_version": VERSION, "arn": ARN}
    assert pauses == [greengrass_module.POLL_INTERVAL_S] * 2
    [recipe] = sent_recipes
    assert recipe["RecipeFormatVersion"] == "2020-01-25"
    assert recipe["ComponentType"] == "aws.greengrass.generic"
    assert (recipe["ComponentName"], recipe["ComponentVersion"]) == (MODEL_COMPONENT, VERSION)
    [manifest] = recipe["Manifests"]
    assert "Lifecycle" not in manifest and "Lifecycle" not in recipe
    assert [a["Uri"] for a in manifest["Artifacts"]] == [
        f"s3://{MODEL_BUCKET}/{PREFIX}model.onnx",
        f"s3://{MODEL_BUCKET}/{PREFIX}model.json",
    ]
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert defaults["modelId"] == STATION_KEY
    assert defaults["modelVersion"] == VERSION
    assert defaults["threshold"] == STATE["training"]["card"]["threshold"]


def test_a_version_that_already_exists_is_reused(registry, greengrass):
    stubber, _ = greengrass
    approved_model(registry, STATE)
    stubber.add_client_error(
        "create_component_version",
        service_error_code="ConflictException",
        service_message=f"Component {MODEL_COMPONENT} version {VERSION} already exists",
        http_status_code=409,
    )
    stubber.add_response("describe_component", described("DEPLOYABLE"), {"arn": ARN})

    assert publish()["arn"] == ARN


def test_a_version_greengrass_refuses_fails_with_its_reason(registry, greengrass):
    stubber, pauses = greengrass
    approved_model(registry, STATE)
    failed = created(
        "FAILED",
        message="Failed to access artifact",
        errors={"model.onnx": "S3 access denied"},
    )
    stubber.add_response("create_component_version", failed)

    with pytest.raises(ComponentFailed) as raised:
        publish()

    assert "is FAILED: Failed to access artifact" in str(raised.value)
    assert "S3 access denied" in str(raised.value)
    assert pauses == []


def test_a_version_still_being_checked_after_the_last_poll_is_not_ready(
    registry, greengrass, monkeypatch
):
    stubber, pauses = greengrass
    monkeypatch.setattr(greengrass_module, "MAX_POLLS", 2)
    approved_model(registry, STATE)
    stubber.add_response("create_component_version", created("INITIATED"))
    stubber.add_response("describe_component", described("INITIATED"), {"arn": ARN})
    stubber.add_response("describe_component", described("INITIATED"), {"arn": ARN})

    with pytest.raises(ComponentNotReady, match="still INITIATED after 2 checks"):
        publish()

    assert len(pauses) == 2  # bounded


def test_other_greengrass_errors_propagate(registry, greengrass):
    stubber, _ = greengrass
    approved_model(registry, STATE)
    stubber.add_client_error("create_component_version", service_error_code="AccessDenied")

    with pytest.raises(Exception, match="AccessDenied"):
        publish()


def test_a_model_that_is_not_approved_is_never_published(registry, greengrass):
    approved_model(registry, STATE, status=ModelStatus.TRAINED)

    # No stubbed response: any Greengrass call would fail the test.
    with pytest.raises(InvalidTransition, match="from TRAINED to DEPLOYED"):
        publish()
