"""The model pipeline steps' environment keys, shared with their constructs (the CDK app imports
only this module)."""

from __future__ import annotations

from enum import StrEnum


class EnvVar(StrEnum):
    DATASET_BUCKET = "DATASET_BUCKET"
    MODEL_BUCKET = "MODEL_BUCKET"
    MODELS_TABLE = "MODELS_TABLE"
    MIN_AUROC = "MIN_AUROC"
    MIN_DEFECT_RECALL = "MIN_DEFECT_RECALL"
    MIN_GOOD_IMAGES = "MIN_GOOD_IMAGES"
    THING_GROUP_ARN_PREFIX = "THING_GROUP_ARN_PREFIX"
    PLANT_FILE = "PLANT_FILE"
