"""Step 5: park the execution's task token on the TRAINED model until an expert decides.

Invoked with WAIT_FOR_TASK_TOKEN. Event: ``{"task_token", "site", "line", "station",
"model_version"}``. The approval API (``approval.decide``) releases the token.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lambdas.model_pipeline import runtime
from lambdas.model_pipeline.requests import ApprovalWaitEvent

logger = Logger(service="model_pipeline")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    wait = ApprovalWaitEvent.model_validate(event)
    runtime.registry().store_approval_token(wait.station_key, wait.model_version, wait.task_token)
    # The token is a credential for the execution: never logged.
    logger.info(
        "waiting for approval",
        extra={"station": wait.station_key, "model_version": wait.model_version},
    )
    return {"waiting_for_approval": True}
