"""moto fixtures for the model pipeline: credentials -> mock_aws -> buckets and table -> data."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from lambdas.common.aws import client as aws_clients
from lambdas.model_pipeline import greengrass as greengrass_module
from lambdas.model_pipeline import runtime
from lambdas.model_pipeline.registry import ModelRecord, ModelRegistry, ModelStatus
from lambdas.model_pipeline.settings import EnvVar

DATASET_BUCKET = "mes-demo-datasets"
MODEL_BUCKET = "mes-demo-models"
MODELS_TABLE = "mes-demo-model-registry"
THING_GROUP_ARN_PREFIX = "arn:aws:iot:eu-central-1:123456789012:thinggroup/"
REGION = "eu-central-1"

SITE, LINE, STATION = "berlin", "body-line-1", "vision-01"
STATION_KEY = f"{SITE}/{LINE}/{STATION}"
MODEL_COMPONENT = "com.acme.mes.models.SurfaceDefects"
REQUEST = {"site": SITE, "line": LINE, "station": STATION, "requested_by": "quality.expert"}
DATASET_PREFIX = f"datasets/{SITE}/{LINE}/{STATION}/"


@pytest.fixture
def plant_file(tmp_path, demo_plant):
    path = tmp_path / "plant.json"
    path.write_text(demo_plant.model_dump_json())
    return path


@pytest.fixture
def environment(monkeypatch, plant_file, fake_credentials):
    values = {
        EnvVar.DATASET_BUCKET: DATASET_BUCKET,
        EnvVar.MODEL_BUCKET: MODEL_BUCKET,
        EnvVar.MODELS_TABLE: MODELS_TABLE,
        EnvVar.MIN_GOOD_IMAGES: "3",
        EnvVar.THING_GROUP_ARN_PREFIX: THING_GROUP_ARN_PREFIX,
        EnvVar.PLANT_FILE: str(plant_file),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    runtime.clear_caches()
    yield values
    runtime.clear_caches()


def create_models_table(dynamodb) -> None:
    dynamodb.create_table(
        TableName=MODELS_TABLE,
        KeySchema=[
            {"AttributeName": "station", "KeyType": "HASH"},
            {"AttributeName": "model_version", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "station", "AttributeType": "S"},
            {"AttributeName": "model_version", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def aws(environment):
    """Empty dataset and model buckets and the registry table, under moto.

    The handlers' cached clients are kept from test to test (moto intercepts them whenever a
    mock is active): creating an S3 client costs more than most of these tests.
    """
    with mock_aws():
        s3 = aws_clients("s3")
        for bucket in (DATASET_BUCKET, MODEL_BUCKET):
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
        create_models_table(aws_clients("dynamodb"))
        yield s3


@pytest.fixture
def registry(aws):
    return ModelRegistry(MODELS_TABLE)


def put_images(s3, folder: str, count: int, suffix: str = ".png", start: int = 0) -> list[str]:
    """``count`` small distinct objects under the station's ``folder`` (not real images)."""
    keys = []
    for i in range(start, start + count):
        key = f"{DATASET_PREFIX}{folder}/img_{i:03d}{suffix}"
        s3.put_object(Bucket=DATASET_BUCKET, Key=key, Body=f"image {folder} {i}".encode())
        keys.append(key)
    return keys


EVENTS = Path(__file__).parent / "events"


def sample_state(**overrides) -> dict:
    """The pipeline's state after the gate (events/state_after_evaluation.json), updated."""
    state = json.loads((EVENTS / "state_after_evaluation.json").read_text())
    return state | overrides


@pytest.fixture(scope="session")
def greengrass_client():
    """One greengrassv2 client for the session; each test stubs its calls."""
    return boto3.client("greengrassv2", region_name=REGION)


@pytest.fixture
def greengrass(greengrass_client, monkeypatch):
    """The handlers' Greengrass client under a Stubber, and the pauses between polls."""
    pauses = []
    monkeypatch.setattr(runtime, "greengrass", lambda: greengrass_client)
    monkeypatch.setattr(greengrass_module, "pause", pauses.append)
    with Stubber(greengrass_client) as stubber:
        yield stubber, pauses
        stubber.assert_no_pending_responses()


@pytest.fixture
def greengrass_calls(greengrass_client):
    """(operation, parameters) of every Greengrass call made, as the client sent them."""
    calls: list[tuple[str, dict]] = []

    def record(params, model, **_):
        calls.append((model.name, json.loads(json.dumps(params, default=str))))

    event = "before-parameter-build.greengrassv2"
    greengrass_client.meta.events.register(event, record)
    yield calls
    greengrass_client.meta.events.unregister(event, record)


def approved_model(registry, state, status=ModelStatus.APPROVED) -> None:
    """Register the state's model and move it to ``status`` (TRAINED, APPROVED or DEPLOYED)."""
    training = state["training"]
    registry.register(
        ModelRecord(
            station=STATION_KEY,
            model_version=training["model_version"],
            status=ModelStatus.TRAINED,
            model_bucket=MODEL_BUCKET,
            model_prefix=training["s3_prefix"],
            card=training["card"],
        )
    )
    version = training["model_version"]
    if status in (ModelStatus.APPROVED, ModelStatus.DEPLOYED):
        registry.transition(STATION_KEY, version, ModelStatus.APPROVED, approved_by="jane")
    if status is ModelStatus.DEPLOYED:
        registry.transition(STATION_KEY, version, ModelStatus.DEPLOYED, deployment_id="d-old")
