"""Step 2: train the station's model on the validated dataset (mes_vision) and store it.

Event: the state with the request fields and ``dataset`` (validate_dataset's output).
Returns ``TrainingResult``: model_version (``1.0.<epoch seconds>``), s3_prefix (in the model
bucket, holding model.onnx and model.json), card (the model card).
Raises ``DatasetInvalid`` when the dataset changed or mes_vision cannot train on it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aws_lambda_powertools import Logger

from lambdas.model_pipeline import runtime
from lambdas.model_pipeline.adapters import S3Dataset, S3ModelStore
from lambdas.model_pipeline.requests import TrainEvent
from lambdas.model_pipeline.settings import EnvVar
from lambdas.model_pipeline.training import train
from mes_vision import TrainConfig

logger = Logger(service="model_pipeline")

TRAIN_CONFIG = TrainConfig()  # mes_vision's defaults; MIN_GOOD_IMAGES overrides min_good


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = runtime.settings().require(EnvVar.DATASET_BUCKET, EnvVar.MODEL_BUCKET)
    request = TrainEvent.model_validate(event)
    config = replace(TRAIN_CONFIG, min_good=settings.min_good_images)
    result = train(
        request, S3Dataset(settings.dataset_bucket), S3ModelStore(settings.model_bucket), config
    )
    logger.info(
        "model trained",
        extra={
            "station": request.station_key,
            "model_version": result.model_version,
            "s3_prefix": result.s3_prefix,
            "validation": result.card.get("validation"),
        },
    )
    return result.model_dump(mode="json")
