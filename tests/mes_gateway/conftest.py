"""An EdgeFleet stack as the onboarding CLI finds it: moto for DynamoDB, Secrets Manager, IoT and
SSM; botocore's Stubber for Greengrass V2, which moto lacks; and DescribeStacks answered on the
client's before-call event (moto's CloudFormation needs moto extras, openapi-spec-validator
among them, that this project does not install), its answers checked against the API model as
Stubber checks them. Fake credentials only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from mes_domain.fleet import (
    AllowListAttribute,
    ClaimSecretField,
    Output,
    Parameter,
    claim_secret_name,
    edge_fleet_stack_name,
    ssm_parameter_name,
)

REGION = "eu-central-1"
TABLE = "mes-gateway-allow-list"
TEMPLATE = "acme-fleet-template"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEONBOARDING01",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-access-key-for-onboarding-tests",
    "AWS_SESSION_TOKEN": "fake-session-token-for-onboarding-tests",
}


@pytest.fixture
def aws_credentials(monkeypatch):
    for name, value in {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def plant():
    from stacks.plant_config import load_plant
    from tests.conftest import DEMO_PLANT

    return load_plant(DEMO_PLANT)


@pytest.fixture(scope="session")
def places(plant):
    """(site, line) of the demo plant's first line and (site, line, station) of a camera."""
    site = plant.sites[0]
    camera = next(ref for ref in plant.stations() if ref.station.camera is not None)
    return (site.id, site.lines[0].id), camera.path


@dataclass
class Cloud:
    """The moto account and what the tests need to know of it."""

    clients: dict[str, Any]
    prefix: str
    stacks: dict[str, dict[str, str]]
    calls: list[str]
    claim_certificate_id: str
    claim_certificate_pem: str
    claim_private_key: str

    def item(self, serial: str) -> dict[str, str] | None:
        item = self.clients["dynamodb"].get_item(
            TableName=TABLE, Key={AllowListAttribute.SERIAL.value: {"S": serial}}
        )
        return {k: v["S"] for k, v in item["Item"].items()} if "Item" in item else None

    def mark_provisioned(self, serial: str) -> None:
        """What the pre-provisioning hook records when the gateway has provisioned."""
        self.clients["dynamodb"].update_item(
            TableName=TABLE,
            Key={AllowListAttribute.SERIAL.value: {"S": serial}},
            UpdateExpression="SET #s = :s, #p = :p",
            ExpressionAttributeNames={
                "#s": AllowListAttribute.STATUS.value,
                "#p": AllowListAttribute.PROVISIONED_AT.value,
            },
            ExpressionAttributeValues={
                ":s": {"S": "PROVISIONED"},
                ":p": {"S": "2026-01-05T06:00:00+00:00"},
            },
        )

    def describe_stacks_calls(self) -> int:
        return self.calls.count("DescribeStacks")


@pytest.fixture
def cloud(aws_credentials, plant):
    """The EdgeFleet stack's resources: allow-list table, claim certificate and secret, the
    line and camera thing groups, and the stack's outputs."""
    import boto3
    from moto import mock_aws

    prefix = plant.deployment.stack_prefix
    with mock_aws():
        clients = {
            name: boto3.client(name, region_name=REGION)
            for name in ("dynamodb", "secretsmanager", "iot", "ssm")
        }
        clients["dynamodb"].create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": AllowListAttribute.SERIAL.value, "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": AllowListAttribute.SERIAL.value, "AttributeType": "S"}
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        claim = clients["iot"].create_keys_and_certificate(setAsActive=True)
        secret = clients["secretsmanager"].create_secret(
            Name=claim_secret_name(prefix),
            SecretString=json.dumps(
                {
                    ClaimSecretField.CERTIFICATE_ID.value: claim["certificateId"],
                    ClaimSecretField.CERTIFICATE_ARN.value: claim["certificateArn"],
                    ClaimSecretField.CERTIFICATE_PEM.value: claim["certificatePem"],
                    ClaimSecretField.PRIVATE_KEY.value: claim["keyPair"]["PrivateKey"],
                }
            ),
        )
        # What the stack writes: SSM parameters and outputs.
        for key, value in {
            Parameter.ALLOW_LIST_TABLE: TABLE,
            Parameter.PROVISIONING_TEMPLATE: TEMPLATE,
            Parameter.CLAIM_SECRET_ARN: secret["ARN"],
        }.items():
            clients["ssm"].put_parameter(
                Name=ssm_parameter_name(prefix, key), Value=value, Type="String"
            )
        stacks = {
            edge_fleet_stack_name(prefix): {
                Output.ALLOW_LIST_TABLE.value: TABLE,
                Output.PROVISIONING_TEMPLATE.value: TEMPLATE,
                Output.CLAIM_SECRET_ARN.value: secret["ARN"],
                Output.CLAIM_CERTIFICATE_ID.value: claim["certificateId"],
            }
        }
        yield Cloud(
            clients=clients,
            prefix=prefix,
            stacks=stacks,
            calls=[],
            claim_certificate_id=claim["certificateId"],
            claim_certificate_pem=claim["certificatePem"],
            claim_private_key=claim["keyPair"]["PrivateKey"],
        )


@pytest.fixture
def cloud_without_parameters(cloud):
    """The same resources, found through the stack's outputs alone."""
    for key in (Parameter.ALLOW_LIST_TABLE, Parameter.PROVISIONING_TEMPLATE,
                Parameter.CLAIM_SECRET_ARN):  # fmt: skip
        cloud.clients["ssm"].delete_parameter(Name=ssm_parameter_name(cloud.prefix, key))
    return cloud


class Greengrass:
    """Greengrass V2 responses queued on a Stubber of the adapter's client."""

    def __init__(self, fleet):
        from botocore.stub import Stubber

        self.stubber = Stubber(fleet.client("greengrassv2"))
        self.stubber.activate()

    def core_devices(self, devices: list[dict[str, Any]]) -> None:
        self.stubber.add_response("list_core_devices", {"coreDevices": devices}, {})

    def installed(self, thing_name: str, components: dict[str, str]) -> None:
        self.stubber.add_response(
            "list_installed_components",
            {
                "installedComponents": [
                    {"componentName": name, "componentVersion": version}
                    for name, version in components.items()
                ]
            },
            {"coreDeviceThingName": thing_name, "topologyFilter": "ALL"},
        )


def answer_describe_stacks(client, stacks: dict[str, dict[str, str]], calls: list[str]) -> None:
    """DescribeStacks of ``client`` answers from ``stacks`` (name -> outputs), as CloudFormation
    does: the stack with its outputs, or a ValidationError for a stack that does not exist."""
    from datetime import UTC, datetime

    from botocore.awsrequest import AWSResponse
    from botocore.validate import ParamValidator

    def answer(params, model, **_):
        calls.append(model.name)
        name = params["body"]["StackName"]  # the query protocol's request body
        if name not in stacks:
            error = {"Code": "ValidationError", "Message": f"Stack with id {name} does not exist"}
            return AWSResponse("", 400, {}, None), {"Error": error}
        response = {
            "Stacks": [
                {
                    "StackName": name,
                    "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                    "StackStatus": "CREATE_COMPLETE",
                    "Outputs": [
                        {"OutputKey": key, "OutputValue": value}
                        for key, value in stacks[name].items()
                    ],
                }
            ]
        }
        report = ParamValidator().validate(response, model.output_shape)
        assert not report.has_errors(), report.generate_report()
        return AWSResponse("", 200, {}, None), response

    client.meta.events.register("before-call.cloudformation.DescribeStacks", answer)


@pytest.fixture
def fleet(cloud):
    from mes_gateway.aws import connect

    fleet = connect(REGION)
    answer_describe_stacks(fleet.client("cloudformation"), cloud.stacks, cloud.calls)
    return fleet


@pytest.fixture
def greengrass(fleet):
    stubbed = Greengrass(fleet)
    yield stubbed
    stubbed.stubber.assert_no_pending_responses()


@pytest.fixture
def cli(fleet, capsys):
    """``python -m mes_gateway ARGS`` against the moto account: (exit code, stdout, stderr)."""
    from mes_gateway.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args), make_fleet=lambda region, profile: fleet)
        out, err = capsys.readouterr()
        return code, out, err

    return run
