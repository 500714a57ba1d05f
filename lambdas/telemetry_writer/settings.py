"""Environment of the telemetry writer: the keys (shared with the construct and the tests) and
the model that checks them at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from lambdas.common.settings import from_environ
from lambdas.telemetry_writer.contract import EnvVar


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    timestream_database: str = Field(min_length=3)
    timestream_table: str = Field(min_length=3)
    events_table: str = Field(min_length=3)
    dead_letter_queue_url: str = Field(pattern=r"^https://")
    dead_letter_bucket: str = Field(min_length=3)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return from_environ(cls, EnvVar, environ)
