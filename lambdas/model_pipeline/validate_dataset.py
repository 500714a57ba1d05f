"""Step 1: check the station and its dataset in S3, and fix the dataset's content hash.

Event: ``TrainingRequest`` (site, line, station, requested_by).
Returns ``DatasetSummary``: bucket, prefix, good_images, defect_images, content_hash.
Raises ``DatasetInvalid`` for an unknown or non-camera station or too few good images.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from lambdas.model_pipeline import runtime
from lambdas.model_pipeline.adapters import S3Dataset
from lambdas.model_pipeline.datasets import validate
from lambdas.model_pipeline.errors import DatasetInvalid
from lambdas.model_pipeline.requests import TrainingRequest
from lambdas.model_pipeline.settings import EnvVar

logger = Logger(service="model_pipeline")


def parse_request(event: dict[str, Any]) -> TrainingRequest:
    try:
        return TrainingRequest.model_validate(event)
    except ValidationError as err:
        raise DatasetInvalid(f"invalid training request: {err}") from None


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = runtime.settings().require(EnvVar.DATASET_BUCKET)
    request = parse_request(event)
    dataset = S3Dataset(settings.dataset_bucket)
    summary = validate(request, runtime.plant(), dataset, settings.min_good_images)
    logger.info("dataset valid", extra=summary.model_dump())
    return summary.model_dump(mode="json")
