"""Custom resource: returns the ids of named properties of one SiteWise asset model.

Properties: ``AssetModelId`` and ``PropertyNames``. Attributes: one per name, its property id.
Every request is answered, a failure with its reason; deleting looks nothing up.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lambdas.common.aws import client
from lambdas.common.cfn_response import (
    CustomResourceRequest,
    RequestType,
    Status,
    send_response,
)
from lambdas.sitewise_property_ids.contract import MODEL_ID, PROPERTY_NAMES
from lambdas.sitewise_property_ids.resolve import property_ids

logger = Logger(service="sitewise_property_ids")


def _lookup(properties: dict[str, Any]) -> tuple[str, dict[str, str]]:
    model_id, names = properties.get(MODEL_ID), properties.get(PROPERTY_NAMES)
    if not isinstance(model_id, str) or not isinstance(names, list) or not names:
        raise ValueError(f"needs {MODEL_ID} (a string) and {PROPERTY_NAMES} (a non-empty list)")
    return model_id, property_ids(client("iotsitewise"), model_id, map(str, names))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> None:
    request = CustomResourceRequest.model_validate(event)  # without a ResponseURL, none to answer
    physical_id = request.physical_resource_id or request.logical_resource_id
    if request.request_type is RequestType.DELETE:
        send_response(request, Status.SUCCESS, physical_resource_id=physical_id)
        return
    try:
        model_id, ids = _lookup(request.resource_properties)
    except Exception as err:  # noqa: BLE001 - an unanswered request hangs the stack for an hour
        logger.exception("property ids not resolved")
        reason = f"{type(err).__name__}: {err}"
        send_response(request, Status.FAILED, physical_resource_id=physical_id, reason=reason)
        return
    send_response(request, Status.SUCCESS, physical_resource_id=model_id, data=ids)
