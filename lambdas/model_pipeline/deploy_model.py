"""Step 7: put the new model version on its camera station's gateway and mark it DEPLOYED.

Event: the state with the request fields, ``training.model_version`` and ``component``.
Revises the deployment of the station's model group (``mes_domain.fleet``
``model_thing_group_name``) to the model component at its new version; the groups the EdgeFleet
stack deploys to (line and camera station groups) are never touched.
Returns ``DeploymentResult``: deployment_id.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lambdas.model_pipeline import runtime
from lambdas.model_pipeline.release import deploy_model
from lambdas.model_pipeline.requests import DeployEvent
from lambdas.model_pipeline.settings import EnvVar

logger = Logger(service="model_pipeline")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = runtime.settings().require(EnvVar.MODELS_TABLE, EnvVar.THING_GROUP_ARN_PREFIX)
    request = DeployEvent.model_validate(event)
    result = deploy_model(
        request,
        runtime.plant(),
        runtime.registry(),
        runtime.greengrass(),
        settings.thing_group_arn_prefix,
    )
    logger.info(
        "model deployed",
        extra={"station": request.station_key, "model_version": request.training.model_version}
        | result.model_dump(),
    )
    return result.model_dump(mode="json")
