"""Custom resource: the claim certificate of the fleet provisioning template.

Create makes the certificate at deploy time (never at synth: no key is in a template or asset)
and puts it and its key into the secret. Update with other properties makes a new one (a new
physical id, so CloudFormation then deletes the old one); with the same properties it keeps it.
Delete deactivates and deletes the certificate. Every request is answered.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lambdas.claim_certificate import claim
from lambdas.claim_certificate.contract import (
    CERTIFICATE_ARN,
    CERTIFICATE_ID,
    POLICY_NAME,
    SECRET_ARN,
)
from lambdas.common.aws import client
from lambdas.common.cfn_response import (
    CustomResourceRequest,
    RequestType,
    Status,
    send_response,
)

logger = Logger(service="claim_certificate")


def _properties(properties: dict[str, Any]) -> tuple[str, str]:
    policy, secret = properties.get(POLICY_NAME), properties.get(SECRET_ARN)
    if not isinstance(policy, str) or not policy or not isinstance(secret, str) or not secret:
        raise ValueError(f"needs {POLICY_NAME} and {SECRET_ARN} (non-empty strings)")
    return policy, secret


def handle(request: CustomResourceRequest, old_properties: dict[str, Any]) -> None:
    physical_id = request.physical_resource_id or request.logical_resource_id
    try:
        if request.request_type is RequestType.DELETE:
            if request.physical_resource_id and request.physical_resource_id != (
                request.logical_resource_id
            ):
                claim.retire(client("iot"), request.physical_resource_id)
            send_response(request, Status.SUCCESS, physical_resource_id=physical_id)
            return
        policy, secret = _properties(request.resource_properties)
        if request.request_type is RequestType.UPDATE and old_properties == {
            key: request.resource_properties.get(key) for key in (POLICY_NAME, SECRET_ARN)
        }:
            arn = client("iot").describe_certificate(certificateId=physical_id)[
                "certificateDescription"
            ]["certificateArn"]
            data = {CERTIFICATE_ID: physical_id, CERTIFICATE_ARN: arn}
            send_response(request, Status.SUCCESS, physical_resource_id=physical_id, data=data)
            return
        certificate = claim.create(client("iot"), client("secretsmanager"), policy, secret)
    except Exception as err:  # noqa: BLE001 - an unanswered request hangs the stack for an hour
        logger.exception("claim certificate request failed")
        reason = f"{type(err).__name__}: {err}"
        send_response(request, Status.FAILED, physical_resource_id=physical_id, reason=reason)
        return
    logger.info("claim certificate created", extra={"certificate_id": certificate.certificate_id})
    send_response(
        request,
        Status.SUCCESS,
        physical_resource_id=certificate.certificate_id,
        data={
            CERTIFICATE_ID: certificate.certificate_id,
            CERTIFICATE_ARN: certificate.certificate_arn,
        },
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> None:
    request = CustomResourceRequest.model_validate(event)  # without a ResponseURL, none to answer
    old = event.get("OldResourceProperties") or {}
    handle(request, {key: old.get(key) for key in (POLICY_NAME, SECRET_ARN)})
