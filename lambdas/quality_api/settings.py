"""Environment of the quality API, checked at cold start; the keys are in its contract."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from lambdas.common.plant import PLANT_LAYER_FILE
from lambdas.common.settings import from_environ
from lambdas.quality_api.contract import EnvVar


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset_bucket: str = Field(min_length=3, max_length=63)
    models_table: str = Field(min_length=3)
    state_machine_arn: str = Field(pattern=r"^arn:aws[a-z-]*:states:")
    upload_url_seconds: int = Field(default=900, ge=60, le=3600)
    plant_file: str = PLANT_LAYER_FILE

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return from_environ(cls, EnvVar, environ)
