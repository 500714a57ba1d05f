"""Step 4: register the model, TRAINED when it passed the gate and REJECTED when not.

Event: the state with ``dataset``, ``training`` and ``evaluation``.
Returns ``{"status"}``: the registered status. A re-run for the same version returns the
status already registered and changes nothing.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lambdas.model_pipeline import runtime
from lambdas.model_pipeline.records import new_record
from lambdas.model_pipeline.requests import RegisterEvent, RegistrationResult
from lambdas.model_pipeline.settings import EnvVar

logger = Logger(service="model_pipeline")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = runtime.settings().require(EnvVar.MODEL_BUCKET, EnvVar.MODELS_TABLE)
    record = new_record(RegisterEvent.model_validate(event), settings.model_bucket)
    stored = runtime.registry().register(record)
    logger.info(
        "model registered",
        extra={
            "station": stored.station,
            "model_version": stored.model_version,
            "status": stored.status.value,
        },
    )
    return RegistrationResult(status=stored.status.value).model_dump(mode="json")
