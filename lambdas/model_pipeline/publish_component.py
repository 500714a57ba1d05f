"""Step 6: publish the approved model as a Greengrass component version.

Event: the state with the request fields and ``training.model_version``; the model's files
and threshold are read from its registry record.
Returns ``ComponentResult``: component_name (the station's ``camera.model_component``),
component_version (the model version), arn. An existing version is reused (idempotent).
Raises ``ComponentFailed`` (Greengrass refused it), ``ComponentNotReady`` (still checking: retry)
or ``InvalidTransition`` (the model is not approved).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lambdas.model_pipeline import runtime
from lambdas.model_pipeline.release import publish_model
from lambdas.model_pipeline.requests import PublishEvent
from lambdas.model_pipeline.settings import EnvVar

logger = Logger(service="model_pipeline")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = runtime.settings().require(EnvVar.MODELS_TABLE, EnvVar.THING_GROUP_ARN_PREFIX)
    result = publish_model(
        PublishEvent.model_validate(event),
        runtime.plant(),
        runtime.registry(),
        runtime.greengrass(),
        settings.thing_group_arn_prefix,
    )
    logger.info("component version deployable", extra=result.model_dump())
    return result.model_dump(mode="json")
