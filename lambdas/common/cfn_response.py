"""CloudFormation custom resources: the request fields and the response that ends a request.

A custom resource that never answers blocks its stack for an hour, so the response is sent
whatever happened, and a failure is reported with its reason.
"""

from __future__ import annotations

import json
import time
import urllib.request
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RESPONSE_ATTEMPTS = 4
RESPONSE_TIMEOUT_S = 10
MAX_REASON_CHARS = 1000  # the whole response body is limited to 4 KB


class RequestType(StrEnum):
    CREATE = "Create"
    UPDATE = "Update"
    DELETE = "Delete"


class Status(StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class CustomResourceRequest(BaseModel):
    """The fields of a CloudFormation custom resource request that a handler uses."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    request_type: RequestType = Field(alias="RequestType")
    response_url: str = Field(alias="ResponseURL", pattern=r"^https?://")
    stack_id: str = Field(alias="StackId")
    request_id: str = Field(alias="RequestId")
    logical_resource_id: str = Field(alias="LogicalResourceId")
    physical_resource_id: str | None = Field(default=None, alias="PhysicalResourceId")
    resource_properties: dict[str, Any] = Field(default_factory=dict, alias="ResourceProperties")


def send_response(
    request: CustomResourceRequest,
    status: Status,
    *,
    physical_resource_id: str,
    data: dict[str, str] | None = None,
    reason: str = "",
) -> None:
    """PUT the response to the pre-signed URL, retrying a few times on network errors."""
    body = json.dumps(
        {
            "Status": status.value,
            "Reason": reason[:MAX_REASON_CHARS] or status.value,
            "PhysicalResourceId": physical_resource_id,
            "StackId": request.stack_id,
            "RequestId": request.request_id,
            "LogicalResourceId": request.logical_resource_id,
            "Data": data or {},
        }
    ).encode()
    # The pre-signed S3 URL is signed for an empty content type.
    put = urllib.request.Request(
        request.response_url, data=body, method="PUT", headers={"Content-Type": ""}
    )
    for attempt in range(1, RESPONSE_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(put, timeout=RESPONSE_TIMEOUT_S):  # noqa: S310
                return
        except OSError:
            if attempt == RESPONSE_ATTEMPTS:
                raise
            time.sleep(2**attempt)
