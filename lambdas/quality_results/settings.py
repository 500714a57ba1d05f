"""Environment of the quality-results consumer, checked at cold start; the keys are in its
contract."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from lambdas.common.settings import from_environ
from lambdas.quality_results.contract import EnvVar


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    records_table: str = Field(min_length=3)
    counts_table: str = Field(min_length=3)
    nonconformances_table: str = Field(min_length=3)
    event_bus_name: str = Field(min_length=1)
    window_minutes: int = Field(ge=1, le=7 * 24 * 60)
    timestream_database: str = Field(min_length=3)
    events_table: str = Field(min_length=3)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return from_environ(cls, EnvVar, environ)
