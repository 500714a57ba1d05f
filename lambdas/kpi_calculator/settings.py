"""Environment of the KPI calculator, checked at cold start; the keys are in its contract."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from lambdas.common.plant import PLANT_LAYER_FILE
from lambdas.common.settings import from_environ
from lambdas.kpi_calculator.contract import EnvVar


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    timestream_database: str = Field(min_length=3)
    events_table: str = Field(min_length=3)
    kpi_table: str = Field(min_length=3)
    idempotency_table: str = Field(min_length=3)
    metrics_namespace: str = Field(min_length=1)
    plant_file: str = PLANT_LAYER_FILE
    event_bus_name: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return from_environ(cls, EnvVar, environ)
