"""The AWS adapter of the onboarding API: the only module of mes_gateway that touches boto3.

Each method is one or two AWS calls and returns plain Python values; ``mes_gateway.api``
decides what they mean.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from mes_domain.fleet import AllowListAttribute
from mes_gateway.api import OnboardingError

_DESERIALIZE = TypeDeserializer().deserialize


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


class AwsRefused(OnboardingError):
    """An AWS call failed; the message names the call and AWS's reason."""


def _refusals_explained(cls: type) -> type:
    """Each public method's ClientError becomes AwsRefused naming the operation."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not callable(method):
            continue

        def wrapped(*args: Any, __method: Any = method, **kwargs: Any) -> Any:
            try:
                return __method(*args, **kwargs)
            except ClientError as error:
                operation = error.operation_name
                reason = error.response.get("Error", {})
                raise AwsRefused(
                    f"AWS refused {operation}: {reason.get('Code')}: {reason.get('Message')}"
                ) from None

        wrapped.__name__ = name
        wrapped.__doc__ = method.__doc__
        setattr(cls, name, wrapped)
    return cls


class NoRegion(ValueError):
    """No region given and none configured."""


def connect(region: str | None, profile: str | None = None) -> AwsFleet:
    session = boto3.session.Session(profile_name=profile, region_name=region)
    if not session.region_name:
        raise NoRegion(
            "no AWS region: set deployment.region in the plant config, pass --region or set "
            "AWS_REGION"
        )
    return AwsFleet(session, session.region_name)


@_refusals_explained
class AwsFleet:
    """The fleet's AWS resources, through one boto3 session."""

    def __init__(self, session: boto3.session.Session | None = None, region: str | None = None):
        self._session = session or boto3.session.Session(region_name=region)
        self.region: str = region or self._session.region_name or ""
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, region_name=self.region)
        return self._clients[service]

    # --- discovery ---

    def stack_outputs(self, stack_name: str) -> dict[str, str] | None:
        """The stack's outputs, or None when there is no such stack."""
        try:
            (stack,) = self.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
        except ClientError as error:
            if _code(error) == "ValidationError":  # CloudFormation's "does not exist"
                return None
            raise
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def parameter(self, name: str) -> str | None:
        try:
            return self.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as error:
            if _code(error) == "ParameterNotFound":
                return None
            raise

    def endpoint(self, endpoint_type: str) -> str:
        return self.client("iot").describe_endpoint(endpointType=endpoint_type)["endpointAddress"]

    # --- the allow-list ---

    def put_new_gateway(self, table: str, item: dict[str, str]) -> bool:
        """Add ``item`` unless its serial is already there; False when it is."""
        try:
            self.client("dynamodb").put_item(
                TableName=table,
                Item={key: {"S": value} for key, value in item.items()},
                ConditionExpression="attribute_not_exists(#serial)",
                ExpressionAttributeNames={"#serial": AllowListAttribute.SERIAL.value},
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get_gateway(self, table: str, serial: str) -> dict[str, Any] | None:
        response = self.client("dynamodb").get_item(
            TableName=table,
            Key={AllowListAttribute.SERIAL.value: {"S": serial}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else {k: _DESERIALIZE(v) for k, v in item.items()}

    def list_gateways(self, table: str) -> list[dict[str, Any]]:
        pages = self.client("dynamodb").get_paginator("scan").paginate(TableName=table)
        return [
            {k: _DESERIALIZE(v) for k, v in item.items()}
            for page in pages
            for item in page.get("Items", [])
        ]

    # --- the claim certificate ---

    def secret_json(self, secret_id: str) -> dict[str, Any]:
        secret = self.client("secretsmanager").get_secret_value(SecretId=secret_id)
        return json.loads(secret["SecretString"])

    def certificate_status(self, certificate_id: str) -> str | None:
        """ACTIVE, INACTIVE, ...; None when these credentials may not describe it."""
        try:
            description = self.client("iot").describe_certificate(certificateId=certificate_id)
        except ClientError as error:
            if _code(error) in ("AccessDeniedException", "AccessDenied"):
                return None
            raise
        return description["certificateDescription"]["status"]

    def set_certificate_status(self, certificate_id: str, status: str) -> None:
        self.client("iot").update_certificate(certificateId=certificate_id, newStatus=status)

    # --- Greengrass ---

    def core_devices(self) -> list[dict[str, Any]]:
        pages = self.client("greengrassv2").get_paginator("list_core_devices").paginate()
        return [device for page in pages for device in page.get("coreDevices", [])]

    def installed_components(self, thing_name: str) -> list[dict[str, Any]]:
        pages = (
            self.client("greengrassv2")
            .get_paginator("list_installed_components")
            # ALL: the dependencies too, not only the deployments' root components
            # (docs.aws.amazon.com/greengrass/v2/APIReference/API_ListInstalledComponents.html)
            .paginate(coreDeviceThingName=thing_name, topologyFilter="ALL")
        )
        return [c for page in pages for c in page.get("installedComponents", [])]
